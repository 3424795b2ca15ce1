//! One run of a hook: a child process in its own group, its output logged (the first
//! [`OUTPUT_LINES`] lines of a run, then a count), killed with its group when it outlives its
//! timeout or hark stops, and whatever it left running ended when it ends (`orphans`).

use std::os::unix::process::ExitStatusExt;
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::{watch, OwnedSemaphorePermit};
use tracing::{debug, info, warn};

use super::orphans::{self, Marked};
use super::{KILL_GRACE, OUTPUT_GRACE, OUTPUT_LINES, OUTPUT_LINE_MAX};
use crate::sinks::SinkHealth;

/// One run of a hook.
pub(super) struct Run {
    pub(super) name: Arc<str>,
    pub(super) label: Arc<str>,
    pub(super) command: Arc<[String]>,
    pub(super) env: [(&'static str, String); 10],
    pub(super) stdin: Arc<str>,
    pub(super) timeout: Duration,
    pub(super) health: Arc<SinkHealth>,
}

impl Run {
    pub(super) async fn execute(
        self,
        _slot: OwnedSemaphorePermit,
        mut killed: watch::Receiver<bool>,
    ) {
        let Run {
            name,
            label,
            command,
            env,
            stdin,
            timeout,
            health,
        } = self;
        health.add("runs", 1);
        let started = Instant::now();
        let token = orphans::run_token();
        let mut child = match spawn(&command, env, &token) {
            Ok(child) => child,
            Err(e) => {
                warn!(hook = %name, program = %command[0], error = %e, "cannot start hook");
                health.add("failed", 1);
                return;
            }
        };
        let pgid = child.id().and_then(|id| i32::try_from(id).ok());
        debug!(hook = %name, %label, pid = pgid, "hook started");

        let (input, output, errors) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take());
        let budget = OutputBudget::default();
        let io = async {
            tokio::join!(
                async {
                    if let Some(mut input) = input {
                        // A hook that does not read stdin is fine (EPIPE is ignored).
                        let _ = input.write_all(stdin.as_bytes()).await;
                    }
                },
                log_output(&name, "stdout", output, &budget),
                log_output(&name, "stderr", errors, &budget),
            )
        };
        tokio::pin!(io);
        let mut io_done = false;
        let outcome = loop {
            tokio::select! {
                _ = &mut io, if !io_done => io_done = true,
                status = child.wait() => break Ok(status),
                () = tokio::time::sleep_until((started + timeout).into()) => break Err("timed out"),
                _ = killed.wait_for(|k| *k) => break Err("hark is stopping"),
            }
        };
        let status = match outcome {
            Ok(status) => status,
            Err(why) => {
                warn!(
                    hook = %name,
                    %label,
                    timeout_s = timeout.as_secs_f64(),
                    reason = why,
                    "killing hook's process group"
                );
                kill_group(&mut child, pgid).await
            }
        };
        // The run is over: whatever it started ends too, which also closes the pipes a
        // background child held open.
        let marked = Marked::Run(token);
        let _ = tokio::task::spawn_blocking(move || orphans::sweep(&marked)).await;
        if !io_done {
            let _ = tokio::time::timeout(OUTPUT_GRACE, &mut io).await;
        }
        budget.report(&name, &label);
        if !status.as_ref().is_ok_and(|s| s.success()) {
            health.add("failed", 1);
        }
        log_exit(&name, &label, status, started.elapsed());
    }
}

/// Start the program without a shell, in a process group of its own (so that a timeout can
/// kill whatever it started too), with the event in its environment and pipes for stdio.
fn spawn(
    command: &[String],
    env: [(&'static str, String); 10],
    token: &str,
) -> std::io::Result<Child> {
    Command::new(&command[0])
        .args(&command[1..])
        .envs(env)
        .env(orphans::RUN_VAR, token)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
}

/// SIGTERM to the group, a grace, SIGKILL to the group, then reap the leader.
async fn kill_group(child: &mut Child, pgid: Option<i32>) -> std::io::Result<ExitStatus> {
    let Some(pgid) = pgid else {
        child.start_kill()?;
        return child.wait().await;
    };
    signal_group(pgid, libc::SIGTERM);
    // The leader is not reaped before the SIGKILL: while it is a zombie its pid, which is the
    // group's id, cannot be reused, so the SIGKILL cannot reach a stranger.
    tokio::time::sleep(KILL_GRACE).await;
    signal_group(pgid, libc::SIGKILL);
    child.wait().await
}

fn signal_group(pgid: i32, signal: libc::c_int) {
    // SAFETY: kill(2) has no memory-safety preconditions.
    if unsafe { libc::kill(-pgid, signal) } != 0 {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::ESRCH) {
            warn!(pgid, signal, error = %e, "cannot signal hook's process group");
        }
    }
}

fn log_exit(name: &str, label: &str, status: std::io::Result<ExitStatus>, took: Duration) {
    let elapsed_ms = took.as_millis() as u64;
    match status {
        Ok(s) if s.success() => info!(hook = %name, label, code = 0, elapsed_ms, "hook finished"),
        Ok(s) => match (s.code(), s.signal()) {
            (Some(code), _) => warn!(hook = %name, label, code, elapsed_ms, "hook failed"),
            (None, Some(signal)) => {
                warn!(hook = %name, label, signal, elapsed_ms, "hook killed by signal")
            }
            _ => warn!(hook = %name, label, status = %s, elapsed_ms, "hook ended"),
        },
        Err(e) => warn!(hook = %name, label, error = %e, "cannot wait for hook"),
    }
}

/// How much of a run's output is logged: the first [`OUTPUT_LINES`] lines of stdout and
/// stderr together; the rest is read (so the hook never blocks on a full pipe) and counted.
#[derive(Debug, Default)]
struct OutputBudget {
    logged: AtomicUsize,
    suppressed_lines: AtomicU64,
    suppressed_bytes: AtomicU64,
}

impl OutputBudget {
    /// Whether a line of `len` bytes may be logged; if not, it is counted.
    fn take(&self, len: usize) -> bool {
        if self.logged.fetch_add(1, Ordering::Relaxed) < OUTPUT_LINES {
            return true;
        }
        self.suppressed_lines.fetch_add(1, Ordering::Relaxed);
        self.suppressed_bytes
            .fetch_add(len as u64 + 1, Ordering::Relaxed);
        false
    }

    /// One line saying what was not logged, if anything was not.
    fn report(&self, name: &str, label: &str) {
        let lines = self.suppressed_lines.load(Ordering::Relaxed);
        if lines > 0 {
            let bytes = self.suppressed_bytes.load(Ordering::Relaxed);
            warn!(hook = %name, label, lines, bytes, logged = OUTPUT_LINES, "hook output not logged");
        }
    }
}

/// Logs each line the hook prints, within `budget`. Lines are cut at [`OUTPUT_LINE_MAX`]
/// bytes; control characters in them are escaped, so a hook cannot forge log lines.
async fn log_output<R: AsyncRead + Unpin>(
    name: &str,
    stream: &'static str,
    pipe: Option<R>,
    budget: &OutputBudget,
) {
    let Some(pipe) = pipe else { return };
    let mut pipe = BufReader::new(pipe);
    let mut line = Vec::new();
    let mut len = 0usize;
    loop {
        let buf = match pipe.fill_buf().await {
            Ok(buf) => buf,
            Err(e) => {
                debug!(hook = %name, stream, error = %e, "cannot read hook output");
                return;
            }
        };
        let eof = buf.is_empty();
        let newline = buf.iter().position(|&b| b == b'\n');
        let end = newline.unwrap_or(buf.len());
        let room = OUTPUT_LINE_MAX.saturating_sub(line.len());
        line.extend_from_slice(&buf[..end.min(room)]);
        len += end;
        pipe.consume(end + usize::from(newline.is_some()));
        if newline.is_some() || (eof && len > 0) {
            if budget.take(len) {
                log_line(name, stream, &line, len > OUTPUT_LINE_MAX);
            }
            line.clear();
            len = 0;
        }
        if eof {
            return;
        }
    }
}

fn log_line(name: &str, stream: &'static str, line: &[u8], cut: bool) {
    let l = String::from_utf8_lossy(line);
    let l = crate::text::escape_control(l.trim_end_matches('\r'));
    if cut {
        info!(hook = %name, stream, line = %l, cut = true, "hook output");
    } else {
        info!(hook = %name, stream, line = %l, "hook output");
    }
}
