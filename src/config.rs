//! Configuration: layered sources, then one validation into typed settings.
//!
//! Layers, lowest first: the defaults built into the binary (`config/hark.toml`, embedded) <
//! `/etc/hark/hark.toml` or `--config FILE` < environment (`HARK_<SECTION>__<KEY>`) <
//! command-line flags. The merged tree is deserialized once (unknown keys are collected, not
//! silently ignored) and validated once; every error names its key, the value given and what
//! is allowed. Nothing else in hark reads configuration files or the environment.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use config::{Config, Environment, File, FileFormat, Map, Value, ValueKind};
use serde::{Deserialize, Serialize};

use crate::pipeline::decision::{
    active_groups, unknown_label, validate_groups, DecisionSettings, Groups,
};
use crate::pipeline::smoothing::SmoothingSettings;
use crate::pipeline::{LiveSettings, PipelineSettings};
use crate::pipeline::{MAX_INTERVAL_SECONDS, MAX_WINDOW_SECONDS};
use crate::sinks::clips::ClipsSettings;
use crate::sinks::hooks::{validate_hooks, HookSettings};
use crate::sinks::http::HttpSettings;
use crate::sinks::mqtt::MqttSettings;
use crate::sinks::socket::SocketSettings;
use crate::validate::{count_in, seconds_in, Checked, Invalid, Problems};

/// The documented default configuration, built into the binary.
pub const DEFAULT_TOML: &str = include_str!("../config/hark.toml");

/// Where the system-wide config lives when `--config` is not given.
pub const SYSTEM_PATH: &str = "/etc/hark/hark.toml";

/// Errors of loading configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {}: {msg}", path.display())]
    File { path: PathBuf, msg: String },
    #[error("config: {0}")]
    Invalid(String),
    /// Values out of range, one problem per line.
    #[error("config: {0}")]
    Problems(#[from] Problems),
    #[error("config: unknown keys (rejected by --strict): {}", .0.join(", "))]
    Unknown(Vec<String>),
}

pub type Result<T> = std::result::Result<T, ConfigError>;

/// `[model]`: which model and how to run it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ModelSettings {
    /// A manifest path, a folder holding one, or a model name under the model folders.
    pub name: String,
    /// Path of libonnxruntime.so; unset = search (ORT_DYLIB_PATH, third_party/, system).
    pub onnxruntime: Option<PathBuf>,
    /// ONNX Runtime intra-op threads.
    #[serde(deserialize_with = "crate::validate::whole_number")]
    pub threads: usize,
    /// Window override in seconds (waveform models).
    pub window: Option<f64>,
    /// Hop override in seconds.
    pub hop: Option<f64>,
}

impl Default for ModelSettings {
    fn default() -> Self {
        ModelSettings {
            name: crate::model::DEFAULT_MODEL.into(),
            onnxruntime: None,
            threads: 1,
            window: None,
            hop: None,
        }
    }
}

impl ModelSettings {
    pub fn load_options(&self) -> crate::model::LoadOptions {
        crate::model::LoadOptions {
            onnxruntime: self.onnxruntime.clone(),
            threads: self.threads,
            window: self.window,
            hop: self.hop,
            ..Default::default()
        }
    }
}

/// `[capture]`: where audio comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CaptureSettings {
    /// The audio host (API) devices are opened through; `auto` prefers a sound server's own
    /// protocol when one answers, else ALSA.
    pub host: crate::capture::HostChoice,
    /// Capture device name or a case-insensitive part of it; unset = the default input.
    pub device: Option<String>,
    /// Seconds of audio the capture ring holds.
    pub ring_seconds: f32,
    /// A device that delivers no samples for this many seconds is treated as lost and
    /// reopened (a sound server that died, a stuck driver); 0 disables.
    pub stall_timeout: f64,
    /// Device period to ask for, in seconds; 0 = the device's default. Longer periods wake the
    /// capture thread less often (less CPU) and hand audio over later (more latency): 10 ms,
    /// the file reader's block, met the latency and CPU targets through a sound server where
    /// 20 ms missed the latency one (BENCHMARKS.md 3b).
    pub period: f64,
}

impl Default for CaptureSettings {
    fn default() -> Self {
        CaptureSettings {
            host: crate::capture::HostChoice::Auto,
            device: None,
            ring_seconds: 4.0,
            stall_timeout: 5.0,
            period: 0.01,
        }
    }
}

/// Everything hark's daemon is configured with.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    pub model: ModelSettings,
    pub capture: CaptureSettings,
    pub pipeline: PipelineSettings,
    pub smoothing: SmoothingSettings,
    pub decision: DecisionSettings,
    /// `[groups]`: a name for several labels that make one event.
    pub groups: Groups,
    pub socket: SocketSettings,
    pub hooks: Vec<HookSettings>,
    /// `[mqtt]`: a broker and Home Assistant discovery; off by default.
    pub mqtt: MqttSettings,
    /// `[clips]`: a sound clip and a picture of every event; off by default.
    pub clips: ClipsSettings,
    /// `[http]`: the web page, its API and `/metrics`; off by default.
    pub http: HttpSettings,
}

impl Settings {
    /// The settings a config reload may change without rebuilding the pipeline.
    pub fn live(&self) -> LiveSettings {
        LiveSettings {
            pipeline: self.pipeline.clone(),
            smoothing: self.smoothing.clone(),
            decision: self.decision.clone(),
            groups: self.groups.clone(),
        }
    }

    /// Checks that need no model. Label checks happen once the model's labels are known.
    pub fn validate(&self) -> Checked {
        let mut problems = Problems::default();
        problems.absorb(self.model.validate());
        problems.absorb(self.capture.validate());
        problems.absorb(self.pipeline.validate());
        problems.absorb(self.smoothing.validate());
        problems.absorb(validate_groups(&self.groups, None));
        problems.absorb(self.decision.validate_values(&self.groups));
        problems.absorb(self.socket.validate());
        problems.absorb(validate_hooks(&self.hooks));
        problems.absorb(self.mqtt.validate());
        problems.absorb(self.clips.validate());
        problems.absorb(self.http.validate());
        problems.into_result()
    }

    /// Checks against the model's labels: decision labels and hook labels must exist.
    pub fn validate_labels(&self, labels: &[String]) -> Checked {
        let mut problems = Problems::default();
        problems.absorb(validate_groups(&self.groups, Some(labels)));
        problems.absorb(self.decision.validate(labels, &self.groups));
        // Hooks may name groups as well as labels.
        let names = self.event_names(labels);
        for (i, h) in self.hooks.iter().enumerate() {
            if let Some(l) = h.unknown_labels(&names).first() {
                problems.push(unknown_label(&format!("hooks[{i}].labels"), l, &names));
            }
        }
        if let Some(l) = self.clips.labels.iter().find(|l| !names.contains(l)) {
            problems.push(unknown_label("clips.labels", l, &names));
        }
        problems.into_result()
    }

    /// What events can be called with these model `labels`: the labels and the groups that
    /// are on.
    pub fn event_names(&self, labels: &[String]) -> Vec<String> {
        let mut names = labels.to_vec();
        names.extend(active_groups(&self.groups).map(|(g, _)| g.clone()));
        names
    }
}

impl ModelSettings {
    /// `threads`, `window` and `hop`.
    pub fn validate(&self) -> Checked {
        let mut problems = Problems::default();
        if let Err(p) = count_in("model.threads", self.threads, 1, 64) {
            problems.push(p);
        }
        for (key, v) in [("model.window", self.window), ("model.hop", self.hop)] {
            if let Some(Err(p)) = v.map(|v| seconds_in(key, v, false, MAX_WINDOW_SECONDS)) {
                problems.push(p);
            }
        }
        problems.into_result()
    }
}

impl CaptureSettings {
    /// `host` (built in), `ring_seconds`, `stall_timeout` and `period`.
    pub fn validate(&self) -> Checked {
        let mut problems = Problems::default();
        if !self.host.is_built_in() {
            let built: Vec<&str> = std::iter::once("auto")
                .chain(
                    crate::capture::HostChoice::built_in()
                        .iter()
                        .map(|h| h.name()),
                )
                .collect();
            problems.push(
                Invalid::new("capture.host", self.host.name(), "not built into this hark")
                    .allowed(built.join(", ")),
            );
        }
        if !(self.ring_seconds.is_finite() && (0.1..=60.0).contains(&self.ring_seconds)) {
            problems.push(
                Invalid::new("capture.ring_seconds", self.ring_seconds, "out of range")
                    .allowed("0.1 to 60 seconds"),
            );
        }
        if !(self.stall_timeout.is_finite()
            && (0.0..=MAX_INTERVAL_SECONDS).contains(&self.stall_timeout))
        {
            problems.push(
                Invalid::new("capture.stall_timeout", self.stall_timeout, "out of range")
                    .allowed("0 (off) to 86400 seconds"),
            );
        }
        if !(self.period.is_finite() && (0.0..=1.0).contains(&self.period)) {
            problems.push(
                Invalid::new("capture.period", self.period, "out of range")
                    .allowed("0 (the device's default) or up to 1 second"),
            );
        }
        problems.into_result()
    }
}

/// One layer of configuration, for reporting where a value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    Default,
    File,
    Env,
    Flag,
}

/// The loaded configuration: typed settings, unknown keys, and each key's origin.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub settings: Settings,
    /// The config file used, if any.
    pub file: Option<PathBuf>,
    /// Keys present in some layer that hark does not know.
    pub unknown: Vec<String>,
    /// Every key set by some layer, with the highest layer that set it.
    pub origins: BTreeMap<String, Origin>,
}

/// Where to read configuration from, and overrides from the command line.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// `--config FILE`: must exist. None = `/etc/hark/hark.toml` if it exists.
    pub file: Option<PathBuf>,
    /// Read `HARK_*` environment variables (tests turn this off).
    pub env: bool,
    /// Flag overrides as dotted keys (`capture.device`) with TOML-typed values.
    pub flags: Vec<(String, Value)>,
    /// Unknown keys are an error instead of a warning.
    pub strict: bool,
}

impl Loaded {
    /// The settings for a model with `labels`: label names the user wrote must exist, but the
    /// built-in listen list and per-label overrides (AudioSet names) are fitted to the model,
    /// so a model trained on your own classes runs on the defaults. If none of the built-in
    /// listen list is among its labels, every label is listened to.
    pub fn for_labels(&self, labels: &[String]) -> Result<Settings> {
        let mut s = self.settings.clone();
        let builtin = |key: &str| {
            self.origins
                .iter()
                .filter(|(k, _)| *k == key || k.starts_with(&format!("{key}.")))
                .all(|(_, o)| *o == Origin::Default)
        };
        // Built-in groups keep the model's labels; one left with none is off.
        for (name, members) in s.groups.iter_mut() {
            if builtin(&format!("groups.{name}")) {
                members.retain(|m| labels.contains(m));
            }
        }
        let names = s.event_names(labels);
        let known = |l: &String| names.contains(l);
        fit_listen(&mut s.decision.listen, builtin("decision.listen"), &known);
        s.decision
            .labels
            .retain(|l, _| known(l) || !builtin(&format!("decision.labels.{l}")));
        s.validate_labels(labels)?;
        Ok(s)
    }
}

/// The built-in listen list keeps the names this model has; if none is left, every label is
/// listened to. A listen list the user wrote is kept as written (and checked).
fn fit_listen(listen: &mut Vec<String>, builtin: bool, known: &dyn Fn(&String) -> bool) {
    if !builtin || listen.iter().all(known) {
        return;
    }
    let before = listen.len();
    listen.retain(known);
    if listen.is_empty() {
        tracing::warn!(
            builtin = before,
            "none of the built-in listen labels is a label of this model; listening \
             for every label (set decision.listen to choose)"
        );
    } else {
        tracing::info!(
            kept = listen.len(),
            of = before,
            "built-in listen labels fitted to the model's labels"
        );
    }
}

/// Load, merge, deserialize and validate the configuration.
pub fn load(src: &Sources) -> Result<Loaded> {
    let file = config_file(src)?;
    let layers = layers(src, &file)?;
    let mut origins = BTreeMap::new();
    let mut builder = Config::builder();
    for (origin, layer) in &layers {
        for key in leaf_keys(layer) {
            origins.insert(key, *origin);
        }
        builder = builder.add_source(layer.clone());
    }
    let merged = builder
        .build()
        .map_err(|e| ConfigError::Invalid(e.to_string()))?;

    let mut unknown = Vec::new();
    let settings: Settings = serde_ignored::deserialize(merged, |path| {
        unknown.push(path.to_string());
    })
    .map_err(|e| ConfigError::Invalid(describe_error(&e.to_string(), &file)))?;
    if src.strict && !unknown.is_empty() {
        return Err(ConfigError::Unknown(unknown));
    }
    settings.validate()?;
    Ok(Loaded {
        settings,
        file,
        unknown,
        origins,
    })
}

/// `--config FILE` (which must exist), else the system file if there is one.
fn config_file(src: &Sources) -> Result<Option<PathBuf>> {
    match &src.file {
        Some(p) if !p.is_file() => Err(ConfigError::File {
            path: p.clone(),
            msg: "not found (or not a file)".into(),
        }),
        Some(p) => Ok(Some(p.clone())),
        None => Ok(Some(PathBuf::from(SYSTEM_PATH)).filter(|p| p.is_file())),
    }
}

/// The layers, lowest first: defaults, file, environment, flags.
fn layers(src: &Sources, file: &Option<PathBuf>) -> Result<Vec<(Origin, Config)>> {
    let mut layers: Vec<(Origin, Config)> = Vec::new();
    layers.push((
        Origin::Default,
        one(File::from_str(DEFAULT_TOML, FileFormat::Toml), None)?,
    ));
    if let Some(p) = file {
        let text = std::fs::read_to_string(p).map_err(|e| ConfigError::File {
            path: p.clone(),
            msg: format!("cannot read it: {e}"),
        })?;
        layers.push((
            Origin::File,
            one(File::from_str(&text, FileFormat::Toml), Some(p))?,
        ));
    }
    if src.env {
        layers.push((Origin::Env, one(env_layer(), None)?));
    }
    if !src.flags.is_empty() {
        layers.push((Origin::Flag, flag_layer(&src.flags)?));
    }
    Ok(layers)
}

/// `HARK_<SECTION>__<KEY>` variables. Others (HARK_LOG, HARK_MODEL_DIR, HARK_FAULT_STALL)
/// belong to other parts of hark.
fn env_layer() -> Environment {
    let vars: Map<String, String> = std::env::vars()
        .filter(|(k, _)| {
            k.strip_prefix("HARK_")
                .is_some_and(|rest| rest.contains("__"))
        })
        .collect();
    Environment::with_prefix("HARK")
        .source(Some(vars))
        .prefix_separator("_")
        .separator("__")
        .try_parsing(true)
        .list_separator(",")
        .with_list_parse_key("decision.listen")
        .ignore_empty(true)
}

fn flag_layer(flags: &[(String, Value)]) -> Result<Config> {
    let mut b = Config::builder();
    for (k, v) in flags {
        b = b
            .set_override(k.as_str(), v.clone())
            .map_err(|e| ConfigError::Invalid(format!("{k}: {e}")))?;
    }
    b.build().map_err(|e| ConfigError::Invalid(e.to_string()))
}

fn one<S>(source: S, path: Option<&Path>) -> Result<Config>
where
    S: config::Source + Send + Sync + 'static,
{
    Config::builder()
        .add_source(source)
        .build()
        .map_err(|e| match path {
            Some(p) => ConfigError::File {
                path: p.to_path_buf(),
                msg: e.to_string(),
            },
            None => ConfigError::Invalid(e.to_string()),
        })
}

fn describe_error(msg: &str, file: &Option<PathBuf>) -> String {
    match file {
        Some(f) => format!(
            "{msg} (merged from the defaults, {}, environment and flags)",
            f.display()
        ),
        None => msg.to_string(),
    }
}

/// Dotted paths of every leaf value in a config tree (`decision.on`, `hooks`).
fn leaf_keys(c: &Config) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(map) = c.clone().try_deserialize::<Map<String, Value>>() {
        walk("", &map, &mut out);
    }
    out
}

fn walk(prefix: &str, map: &Map<String, Value>, out: &mut Vec<String>) {
    for (k, v) in map {
        let key = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match &v.kind {
            ValueKind::Table(t) if !t.is_empty() => walk(&key, t, out),
            _ => out.push(key),
        }
    }
}

/// The effective configuration as TOML, each leaf annotated with where it came from.
pub fn describe(loaded: &Loaded) -> String {
    let toml_text = toml::to_string(&loaded.settings).unwrap_or_default();
    let mut out = String::new();
    out.push_str(&format!(
        "# effective hark configuration (file: {})\n",
        loaded
            .file
            .as_ref()
            .map_or("none".into(), |p| p.display().to_string())
    ));
    let mut section = String::new();
    for line in toml_text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('[') {
            section = trimmed
                .trim_matches(|c| c == '[' || c == ']')
                .replace('"', "")
                .to_string();
            out.push_str(line);
            out.push('\n');
            continue;
        }
        let key = trimmed
            .split('=')
            .next()
            .unwrap_or("")
            .trim()
            .replace('"', "");
        let full = if section.is_empty() {
            key.clone()
        } else {
            format!("{section}.{key}")
        };
        let origin = loaded
            .origins
            .iter()
            .filter(|(k, _)| {
                **k == full
                    || full.starts_with(&format!("{k}."))
                    || k.starts_with(&format!("{full}."))
            })
            .map(|(_, o)| *o)
            .max()
            .unwrap_or(Origin::Default);
        if key.is_empty() {
            out.push_str(line);
        } else {
            out.push_str(&format!("{line:<60} # from {}", origin_name(origin)));
        }
        out.push('\n');
    }
    for u in &loaded.unknown {
        out.push_str(&format!("# unknown key (ignored): {u}\n"));
    }
    out
}

fn origin_name(o: Origin) -> &'static str {
    match o {
        Origin::Default => "default",
        Origin::File => "file",
        Origin::Env => "env",
        Origin::Flag => "flag",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_defaults_load_and_validate() {
        let l = load(&Sources::default()).unwrap();
        assert!(l.unknown.is_empty(), "{:?}", l.unknown);
        assert_eq!(l.settings.model.name, "ced-tiny");
        assert_eq!(l.settings.capture.host, crate::capture::HostChoice::Auto);
    }

    #[test]
    fn capture_host_takes_the_built_in_hosts_and_names_them_otherwise() {
        let with = |host: &str| Sources {
            flags: vec![("capture.host".into(), Value::from(host))],
            ..Sources::default()
        };
        assert_eq!(
            load(&with("alsa")).unwrap().settings.capture.host,
            crate::capture::HostChoice::Alsa
        );
        let err = load(&with("jack")).unwrap_err().to_string();
        assert!(
            err.contains("capture.host") && err.contains("pulseaudio"),
            "{err}"
        );
        let pipewire = load(&with("pipewire"));
        if cfg!(feature = "pipewire") {
            assert!(pipewire.is_ok());
        } else {
            let err = pipewire.unwrap_err().to_string();
            assert!(
                err.contains("capture.host") && err.contains("not built"),
                "{err}"
            );
        }
    }
}
