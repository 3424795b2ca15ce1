//! Serving subscribers: accepting (capped), one task per connection, and the orderly close.

use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::os::unix::io::AsRawFd;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncWriteExt, BufWriter};
use tokio::net::unix::OwnedWriteHalf;
use tokio::net::UnixStream;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tracing::{debug, info, warn};

use super::hub::*;
use super::protocol::*;
use super::*;

/// How long shutdown waits for subscribers to take what is still queued for them.
const SHUTDOWN_FLUSH: Duration = Duration::from_millis(500);

/// After a client closes its sending side, how often to check whether it hung up for good
/// (`nc` and `socat` half-close after sending a request and keep reading).
const HANGUP_POLL: Duration = Duration::from_millis(250);

/// Serves subscribers on `listener` until `shutdown` resolves. Then it stops accepting,
/// removes the socket file, gives each subscriber a moment to take what is queued for it
/// and closes every connection.
pub async fn serve(
    listener: SocketListener,
    hub: Hub,
    shutdown: impl Future<Output = ()>,
) -> Result<()> {
    let SocketListener {
        listener,
        path,
        file_id,
    } = listener;
    // Removes the socket file when serving ends, also by a panic: a dead hark must not leave
    // a socket file behind.
    let socket_file = SocketFile {
        path: path.clone(),
        file_id,
    };
    let listener =
        tokio::net::UnixListener::from_std(listener).map_err(io_err("cannot listen on", &path))?;
    let max = hub.shared.max_subscribers;
    let slots = Arc::new(Semaphore::new(max));
    let (stop, stopped) = watch::channel(false);
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    info!(path = %path.display(), max_subscribers = max, "socket listening");

    loop {
        tokio::select! {
            biased;
            () = &mut shutdown => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => match slots.clone().try_acquire_owned() {
                    Ok(permit) => {
                        let (hub, stopped) = (hub.clone(), stopped.clone());
                        connections.spawn(async move {
                            if let Err(e) = subscriber(stream, hub, stopped).await {
                                debug!(error = %e, "subscriber connection ended");
                            }
                            drop(permit);
                        });
                    }
                    Err(_) => {
                        warn!(max_subscribers = max, "subscriber refused: too many subscribers");
                        connections.spawn(refuse(stream, max));
                    }
                },
                Err(e) => {
                    // Typically out of file descriptors; back off rather than spin.
                    warn!(error = %e, "cannot accept a subscriber");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }

    drop(listener);
    drop(socket_file);
    let _ = stop.send(true);
    let flush = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(SHUTDOWN_FLUSH, flush).await.is_err() {
        debug!(
            left = connections.len(),
            "subscribers did not take their records in time; closing"
        );
        connections.shutdown().await;
    }
    info!(path = %path.display(), "socket closed");
    Ok(())
}

/// The bound socket's file, removed when this is dropped.
struct SocketFile {
    path: std::path::PathBuf,
    file_id: (u64, u64),
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        remove_socket(&self.path, self.file_id);
    }
}

pub(super) fn remove_socket(path: &Path, file_id: (u64, u64)) {
    // Only remove the file if it is still ours.
    match std::fs::symlink_metadata(path) {
        Ok(meta) if (meta.dev(), meta.ino()) == file_id => {
            if let Err(e) = std::fs::remove_file(path) {
                warn!(path = %path.display(), error = %e, "cannot remove the socket file");
            }
        }
        _ => {}
    }
}

pub(super) async fn refuse(mut stream: UnixStream, max: usize) {
    let message = format!("too many subscribers (max {max})");
    let line = ControlLine::Error { message: &message }.line();
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        stream.write_all(line.as_bytes()).await?;
        stream.shutdown().await
    })
    .await;
}

/// One subscriber's connection: hello, then queued records and replies to its requests,
/// until it hangs up or the server stops.
pub(super) async fn subscriber(
    stream: UnixStream,
    hub: Hub,
    mut stopped: watch::Receiver<bool>,
) -> io::Result<()> {
    let cap = hub.shared.queue + 1;
    let reg = hub.register();
    let (read, write) = stream.into_split();
    let mut requests = LineReader::new(read, MAX_REQUEST_LINE);
    let mut out = BufWriter::with_capacity(16 * 1024, write);
    let mut batch = VecDeque::with_capacity(cap);
    let mut requests_open = true;
    let mut hangup_poll = tokio::time::interval(HANGUP_POLL);

    out.write_all(reg.hello.as_bytes()).await?;
    out.flush().await?;
    loop {
        tokio::select! {
            biased;
            // A change (or the server gone) means stop.
            _ = stopped.changed() => {
                reg.outbox.take(&mut batch);
                write_batch(&mut out, &mut batch).await?;
                out.shutdown().await?;
                return Ok(());
            }
            () = reg.outbox.ready.notified() => {
                reg.outbox.take(&mut batch);
                write_batch(&mut out, &mut batch).await?;
            }
            line = requests.next_line(), if requests_open => match line? {
                Some(line) => {
                    let reply = match line {
                        Line::Complete(bytes) => reg.request(&bytes),
                        Line::TooLong => Some(ControlLine::Error {
                            message: &format!(
                                "request line longer than {MAX_REQUEST_LINE} bytes; it was ignored"
                            ),
                        }.line()),
                    };
                    if let Some(reply) = reply {
                        out.write_all(reply.as_bytes()).await?;
                        out.flush().await?;
                    }
                }
                // The client closed its sending side; it may still be reading.
                None => {
                    requests_open = false;
                    if peer_hung_up(&out) {
                        return Ok(());
                    }
                }
            },
            _ = hangup_poll.tick(), if !requests_open => {
                if peer_hung_up(&out) {
                    return Ok(());
                }
            }
        }
    }
}

pub(super) async fn write_batch(
    out: &mut BufWriter<OwnedWriteHalf>,
    batch: &mut VecDeque<Out>,
) -> io::Result<()> {
    for item in batch.drain(..) {
        match item {
            Out::Line(line) => out.write_all(line.as_bytes()).await?,
            Out::Dropped(count) => {
                out.write_all(ControlLine::Dropped { count }.line().as_bytes())
                    .await?
            }
        }
    }
    out.flush().await
}

/// True once the peer has closed the connection in both directions (`POLLHUP`), as opposed
/// to a half-close after which it still reads.
pub(super) fn peer_hung_up(out: &BufWriter<OwnedWriteHalf>) -> bool {
    let stream: &UnixStream = out.get_ref().as_ref();
    let mut fd = libc::pollfd {
        fd: stream.as_raw_fd(),
        events: 0,
        revents: 0,
    };
    // SAFETY: one valid pollfd, zero timeout; the fd stays open while `out` is borrowed.
    let n = unsafe { libc::poll(&mut fd, 1, 0) };
    n > 0 && fd.revents & (libc::POLLHUP | libc::POLLERR) != 0
}
