//! Finding and loading the ONNX Runtime shared library.
//!
//! hark links ONNX Runtime at run time (ort's `load-dynamic`), so the binary builds without
//! downloading anything. This module owns the search for `libonnxruntime.so` and the one
//! process-wide ort `Environment`. It must not know about models or audio.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ort::environment::Environment;

use super::ModelError;

/// The ONNX Runtime version the setup step installs and this build of ort was made for.
pub const ORT_VERSION: &str = "1.31.1";

/// Where a project-local install (made by `scripts/setup.sh`) lives, relative to the project root.
const LOCAL_DIR: &str = "third_party/onnxruntime";

const INSTALL_HINT: &str = "install it with `scripts/setup.sh` (unpacks the PyPI wheel \
onnxruntime==1.31.1 into third_party/onnxruntime/), or point ORT_DYLIB_PATH or the config key \
`model.onnxruntime` at a libonnxruntime.so (>= 1.31)";

static ENVIRONMENT: OnceLock<Result<(Environment, PathBuf), RuntimeError>> = OnceLock::new();

/// Why ONNX Runtime could not be loaded. Cloneable: the first attempt's outcome is kept for the
/// life of the process and handed to every later caller.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RuntimeError {
    /// No candidate path exists.
    #[error("ONNX Runtime library not found (looked for {tried}); {INSTALL_HINT}")]
    NotFound {
        /// The paths tried, comma-separated, in order.
        tried: String,
    },
    /// The library exists but would not load (wrong version, wrong architecture, …).
    #[error("could not load ONNX Runtime from {}: {reason}; {INSTALL_HINT}", path.display())]
    Load { path: PathBuf, reason: String },
    /// The library loaded but its environment would not start.
    #[error("ONNX Runtime from {} failed to start: {reason}", path.display())]
    Start { path: PathBuf, reason: String },
}

/// The candidates, in the order they are tried: the explicit path (config key or flag),
/// `ORT_DYLIB_PATH`, a project-local install beside the working directory or any ancestor of
/// the executable, then the system's library paths.
pub fn candidates(explicit: Option<&Path>) -> Vec<PathBuf> {
    if let Some(p) = explicit {
        return vec![p.to_path_buf()];
    }
    if let Some(p) = std::env::var_os("ORT_DYLIB_PATH").filter(|p| !p.is_empty()) {
        return vec![PathBuf::from(p)];
    }
    let mut out = Vec::new();
    let mut roots: Vec<PathBuf> = Vec::new();
    if let Ok(cwd) = std::env::current_dir() {
        roots.push(cwd);
    }
    if let Ok(exe) = std::env::current_exe() {
        roots.extend(exe.ancestors().skip(1).map(Path::to_path_buf));
    }
    for root in roots {
        let p = root.join(LOCAL_DIR).join("libonnxruntime.so");
        if !out.contains(&p) {
            out.push(p);
        }
    }
    for dir in ["/usr/lib/hark", "/usr/local/lib", "/usr/lib"] {
        out.push(Path::new(dir).join("libonnxruntime.so"));
    }
    out
}

/// Load ONNX Runtime once per process and return the shared environment.
///
/// Later calls return the environment made by the first one, whatever path they name:
/// a process can hold only one ONNX Runtime library.
pub fn environment(explicit: Option<&Path>) -> Result<Environment, ModelError> {
    let result = ENVIRONMENT.get_or_init(|| load(explicit));
    match result {
        Ok((env, _)) => Ok(env.clone()),
        Err(err) => Err(ModelError::Runtime(err.clone())),
    }
}

/// The library the process loaded, if it has loaded one.
pub fn loaded_path() -> Option<PathBuf> {
    ENVIRONMENT.get()?.as_ref().ok().map(|(_, p)| p.clone())
}

fn load(explicit: Option<&Path>) -> Result<(Environment, PathBuf), RuntimeError> {
    let tried = candidates(explicit);
    let found = tried.iter().find(|p| p.exists());
    let Some(path) = found else {
        let list: Vec<String> = tried.iter().map(|p| p.display().to_string()).collect();
        return Err(RuntimeError::NotFound {
            tried: list.join(", "),
        });
    };
    let builder = ort::init_from(path).map_err(|e| RuntimeError::Load {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    let env = builder
        .with_name("hark")
        .build()
        .map_err(|e| RuntimeError::Start {
            path: path.clone(),
            reason: e.to_string(),
        })?;
    tracing::debug!(path = %path.display(), "loaded ONNX Runtime");
    Ok((env, path.clone()))
}

/// A session builder with hark's ONNX Runtime settings, shared by every model hark loads and
/// by the inference-floor benchmark, so both measure the same sessions.
///
/// `threads` intra-op threads (one by default: a Pi's other cores stay free for capture and
/// the rest of the machine); no inter-op pool, sequential execution (the graphs are chains);
/// every graph optimisation; memory patterns on, so that steady-state runs of one input shape
/// reuse one arena plan instead of allocating.
pub fn session_builder(
    env: &Environment,
    threads: usize,
) -> ort::Result<ort::session::builder::SessionBuilder> {
    let b = ort::session::Session::builder(env)?
        .with_intra_threads(threads.max(1))?
        .with_inter_threads(1)?
        .with_parallel_execution(false)?
        .with_optimization_level(ort::session::builder::GraphOptimizationLevel::All)?
        .with_memory_pattern(true)?;
    Ok(b)
}

/// Give the C heap's free pages back to the system. Loading a model parses the whole ONNX file
/// and builds the graph more than once; once the session is made, those buffers are free but
/// glibc keeps their pages, about 5 MB of resident memory for CED-tiny (see BENCHMARKS.md).
pub fn release_free_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free memory to the kernel; it touches no live block.
    unsafe {
        libc::malloc_trim(0);
    }
}
