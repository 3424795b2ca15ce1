//! Ctrl-C for one-shot commands (`hark classify`): SIGINT and SIGTERM trigger the command's
//! [`Shutdown`], so its work stops at the next window and cleans up after itself (no
//! half-written output file); a second signal exits at once. The command then exits with
//! 128 + the signal's number, as a shell reports a process a signal ended (130 for Ctrl-C).
//!
//! The handlers are tokio's (as in `daemon::signals`), served by a small thread of their own
//! that ends when the [`Interrupts`] is dropped.
//!
//! Must not: stop anything itself beyond triggering the shutdown (and the exit on a second
//! signal); the command decides what stopping means.

use std::io;
use std::process::ExitCode;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;

use crate::shutdown::Shutdown;

/// Watches for SIGINT and SIGTERM while it lives.
#[derive(Debug)]
pub struct Interrupts {
    /// The first signal received, 0 while none was.
    signal: Arc<AtomicI32>,
    /// Ends the watching thread (separate from the command's shutdown, which a signal triggers).
    done: Shutdown,
    thread: Option<JoinHandle<()>>,
}

impl Interrupts {
    /// Install the handlers (they are in place when this returns) and trigger `shutdown` on
    /// the first signal.
    pub fn watch(shutdown: &Shutdown) -> io::Result<Interrupts> {
        let signal = Arc::new(AtomicI32::new(0));
        let done = Shutdown::new();
        let (ready_tx, ready_rx) = mpsc::sync_channel(1);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()?;
        let thread = std::thread::Builder::new()
            .name("hark-signals".into())
            .spawn({
                let (signal, done, shutdown) = (signal.clone(), done.clone(), shutdown.clone());
                move || runtime.block_on(serve(signal, done, shutdown, ready_tx))
            })?;
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(Interrupts {
                signal,
                done,
                thread: Some(thread),
            }),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(io::Error::other("the signal thread ended at its start")),
        }
    }

    /// The signal that asked for the stop, if one did.
    pub fn signal(&self) -> Option<i32> {
        match self.signal.load(Ordering::Acquire) {
            0 => None,
            s => Some(s),
        }
    }

    /// The exit code a signal calls for: 128 + its number.
    pub fn exit_code(&self) -> Option<ExitCode> {
        self.signal().map(exit_code_for)
    }
}

impl Drop for Interrupts {
    fn drop(&mut self) {
        self.done.trigger();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn exit_code_for(signal: i32) -> ExitCode {
    ExitCode::from(u8::try_from(128 + signal).unwrap_or(255))
}

/// Wait for signals until `done`: the first triggers `shutdown`, a second exits the process.
async fn serve(
    signal: Arc<AtomicI32>,
    done: Shutdown,
    shutdown: Shutdown,
    ready: mpsc::SyncSender<io::Result<()>>,
) {
    use tokio::signal::unix::{signal as listen, SignalKind};
    let (mut int, mut term) = match (
        listen(SignalKind::interrupt()),
        listen(SignalKind::terminate()),
    ) {
        (Ok(int), Ok(term)) => (int, term),
        (Err(e), _) | (_, Err(e)) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let _ = ready.send(Ok(()));
    loop {
        let got = tokio::select! {
            () = done.wait() => return,
            _ = int.recv() => libc::SIGINT,
            _ = term.recv() => libc::SIGTERM,
        };
        if signal
            .compare_exchange(0, got, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            eprintln!("hark: second signal: exiting at once");
            std::process::exit(128 + got);
        }
        tracing::info!(signal = got, "stopping: finishing the window in flight");
        shutdown.trigger();
    }
}
