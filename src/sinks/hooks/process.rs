//! One run of a hook: a child process in its own group, its output logged, killed with its
//! group when it outlives its timeout or hark stops.

use std::os::unix::process::ExitStatusExt;
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::{watch, OwnedSemaphorePermit};
use tracing::{debug, info, warn};

use super::{KILL_GRACE, OUTPUT_GRACE, OUTPUT_LINE_MAX};
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
        let mut child = match spawn(&command, env) {
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
        let io = async {
            tokio::join!(
                async {
                    if let Some(mut input) = input {
                        // A hook that does not read stdin is fine (EPIPE is ignored).
                        let _ = input.write_all(stdin.as_bytes()).await;
                    }
                },
                log_output(&name, "stdout", output),
                log_output(&name, "stderr", errors),
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
        if !io_done {
            let _ = tokio::time::timeout(OUTPUT_GRACE, &mut io).await;
        }
        if !status.as_ref().is_ok_and(|s| s.success()) {
            health.add("failed", 1);
        }
        log_exit(&name, &label, status, started.elapsed());
    }
}

/// Start the program without a shell, in a process group of its own (so that a timeout can
/// kill whatever it started too), with the event in its environment and pipes for stdio.
fn spawn(command: &[String], env: [(&'static str, String); 10]) -> std::io::Result<Child> {
    Command::new(&command[0])
        .args(&command[1..])
        .envs(env)
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

/// Logs each line the hook prints. Lines are cut at [`OUTPUT_LINE_MAX`] bytes.
async fn log_output<R: AsyncRead + Unpin>(name: &str, stream: &'static str, pipe: Option<R>) {
    let Some(pipe) = pipe else { return };
    let mut pipe = BufReader::new(pipe);
    let mut line = Vec::new();
    let mut cut = false;
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
        cut |= end > room;
        line.extend_from_slice(&buf[..end.min(room)]);
        pipe.consume(end + usize::from(newline.is_some()));
        if newline.is_some() || (eof && !line.is_empty()) {
            let l = String::from_utf8_lossy(&line);
            let l = l.trim_end_matches('\r');
            if cut {
                info!(hook = %name, stream, line = %l, cut = true, "hook output");
            } else {
                info!(hook = %name, stream, line = %l, "hook output");
            }
            line.clear();
            cut = false;
        }
        if eof {
            return;
        }
    }
}
