//! The socket: subscribers connect to a Unix socket and receive records as newline-delimited
//! JSON. The wire protocol is documented, with an example of every message, in
//! `docs/protocol.md`.
//!
//! Two halves meet in a [`Hub`]. The pipeline thread calls [`Hub::publish`], which serializes
//! the record once and pushes the line into each interested subscriber's bounded queue; a full
//! queue drops the record and counts it. [`serve`] runs on the tokio runtime: it accepts
//! connections (capped by a semaphore), runs one task per subscriber that writes the queue
//! out and reads the subscriber's requests, and on shutdown flushes briefly, closes every
//! connection and removes the socket file.
//!
//! Architecture invariant: `Hub::publish` never blocks on a subscriber, never does I/O and
//! allocates nothing per subscriber — a slow or stalled subscriber costs the pipeline a
//! counter increment. Only this module knows the control messages of the protocol
//! (`hello`, `subscribed`, `error`, `dropped`); records get their shape from `record`.

use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::io::AsRawFd;
use std::os::unix::net::{UnixListener as StdUnixListener, UnixStream as StdUnixStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::unix::OwnedWriteHalf;
use tokio::net::UnixStream;
use tokio::sync::{watch, Notify, Semaphore};
use tokio::task::JoinSet;
use tracing::{debug, info, warn};

use crate::record::Record;

/// The protocol version announced in `hello`. Bump it when a change could break a client.
pub const PROTOCOL_VERSION: u32 = 1;

/// The longest request line a client may send, in bytes (without the newline). Longer lines
/// are discarded and answered with an `error`.
pub const MAX_REQUEST_LINE: usize = 64 * 1024;

/// How long shutdown waits for subscribers to take what is still queued for them.
const SHUTDOWN_FLUSH: Duration = Duration::from_millis(500);

/// After a client closes its sending side, how often to check whether it hung up for good
/// (`nc` and `socat` half-close after sending a request and keep reading).
const HANGUP_POLL: Duration = Duration::from_millis(250);

/// The record types a client can subscribe to, in the order acks list them.
const KINDS: [&str; 4] = ["event_start", "event_end", "status", "prediction"];

/// Errors of binding and serving the socket.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// Another process answers on the socket path. Stop it, or give this one another path.
    #[error(
        "another hark is already listening on {}; stop it or set socket.path to another file",
        .0.display()
    )]
    InUse(PathBuf),
    /// Something that is not a socket sits at the path; hark will not delete it.
    #[error(
        "{} exists and is not a socket; remove it or set socket.path to another file",
        .0.display()
    )]
    NotASocket(PathBuf),
    /// Unix socket paths are limited by `sun_path` (108 bytes with the terminating NUL).
    #[error("socket path {} is {len} bytes long, the limit is {max}; choose a shorter socket.path", path.display())]
    PathTooLong {
        path: PathBuf,
        len: usize,
        max: usize,
    },
    /// `socket.mode` is not an octal permission.
    #[error("socket.mode {0:?} is not an octal permission such as \"0660\"")]
    InvalidMode(String),
    /// `socket.group` names no group on this system.
    #[error("socket.group {0:?} is not a group on this system")]
    UnknownGroup(String),
    /// The socket's directory belongs to someone else (only checked for the `/tmp` fallback).
    #[error("{} is not a directory owned by you; remove it or set socket.path", .0.display())]
    UnsafeDirectory(PathBuf),
    /// A system call on the path failed.
    #[error("{what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Result of this module.
pub type Result<T, E = PublishError> = std::result::Result<T, E>;

fn io_err<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> PublishError + 'a {
    move |source| PublishError::Io {
        what,
        path: path.to_owned(),
        source,
    }
}

/// The `[socket]` settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SocketSettings {
    /// Where to listen. `None` means [`default_socket_path`].
    pub path: Option<PathBuf>,
    /// Permissions of the socket file, in octal. Connecting needs write permission, so
    /// "0660" lets the owner and `group` subscribe.
    pub mode: String,
    /// Group to give the socket file, so its members may subscribe. `None` keeps the
    /// process's group.
    pub group: Option<String>,
    /// Subscribers served at once; one more gets an `error` and is closed.
    pub max_subscribers: usize,
    /// Records queued per subscriber before further records for it are dropped (and counted).
    pub queue: usize,
}

impl Default for SocketSettings {
    fn default() -> Self {
        SocketSettings {
            path: None,
            mode: "0660".into(),
            group: None,
            max_subscribers: 64,
            queue: 256,
        }
    }
}

impl SocketSettings {
    /// Checks values that deserialization cannot; the message names the key.
    pub fn validate(&self) -> Result<(), String> {
        if let Err(e) = parse_mode(&self.mode) {
            return Err(e.to_string());
        }
        if let Some(path) = &self.path {
            if path.as_os_str().is_empty() {
                return Err("socket.path: must not be empty (leave it out for the default)".into());
            }
            check_path_len(path).map_err(|e| format!("socket.path: {e}"))?;
        }
        if self.group.as_deref() == Some("") {
            return Err(
                "socket.group: must not be empty (leave it out to keep the process's group)".into(),
            );
        }
        if self.max_subscribers == 0 {
            return Err("socket.max_subscribers: must be at least 1, got 0".into());
        }
        if self.queue == 0 {
            return Err("socket.queue: must be at least 1, got 0".into());
        }
        Ok(())
    }

    /// The path to listen on: `path`, or [`default_socket_path`].
    pub fn resolved_path(&self) -> PathBuf {
        self.path.clone().unwrap_or_else(default_socket_path)
    }
}

/// Where to listen when `socket.path` is not set: `$RUNTIME_DIRECTORY/hark.sock` under
/// systemd (`RuntimeDirectory=hark` makes that `/run/hark/hark.sock`), else
/// `$XDG_RUNTIME_DIR/hark.sock`, else `/tmp/hark-$UID/hark.sock`.
pub fn default_socket_path() -> PathBuf {
    // systemd joins several runtime directories with ':'; the first is ours.
    if let Some(dir) = std::env::var_os("RUNTIME_DIRECTORY") {
        let first = dir
            .as_bytes()
            .split(|&b| b == b':')
            .next()
            .unwrap_or_default();
        if !first.is_empty() {
            return Path::new(std::ffi::OsStr::from_bytes(first)).join("hark.sock");
        }
    }
    if let Some(dir) = std::env::var_os("XDG_RUNTIME_DIR") {
        if !dir.is_empty() {
            return PathBuf::from(dir).join("hark.sock");
        }
    }
    fallback_dir().join("hark.sock")
}

fn fallback_dir() -> PathBuf {
    // SAFETY: geteuid cannot fail and touches no memory.
    let uid = unsafe { libc::geteuid() };
    PathBuf::from(format!("/tmp/hark-{uid}"))
}

/// A bound socket, ready for [`serve`]. It remembers its path so that `serve` can remove
/// the file on shutdown (and only if the file is still this socket).
#[derive(Debug)]
pub struct SocketListener {
    listener: StdUnixListener,
    path: PathBuf,
    /// (device, inode) of the socket file, to recognize it at removal.
    file_id: (u64, u64),
}

impl SocketListener {
    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Binds the socket described by `settings`.
///
/// A stale socket file (nobody accepts on it) is replaced; a live one is an error naming the
/// path, and so is any other kind of file. The socket gets `mode` and `group` before it
/// appears at its path (it is bound under a temporary name and renamed), so no client can
/// connect with the wrong permissions. Does not need a tokio runtime.
pub fn bind(settings: &SocketSettings) -> Result<SocketListener> {
    let path = settings.resolved_path();
    let mode = parse_mode(&settings.mode)?;
    let gid = settings.group.as_deref().map(group_id).transpose()?;
    check_path_len(&path)?;
    ensure_parent(&path)?;
    clear_stale(&path)?;

    let name = path.file_name().unwrap_or_default().as_bytes();
    let tmp = path.with_file_name(format!(
        ".{}.{}",
        String::from_utf8_lossy(name),
        std::process::id()
    ));
    // If the temporary name would be too long, bind in place and set the mode right after.
    let staged = check_path_len(&tmp).is_ok();
    let at = if staged { &tmp } else { &path };
    if staged {
        let _ = std::fs::remove_file(&tmp); // left behind by a crash of a process with our pid
    }
    let listener = StdUnixListener::bind(at).map_err(io_err("cannot bind", at))?;
    let placed = (|| {
        std::fs::set_permissions(at, std::fs::Permissions::from_mode(mode))
            .map_err(io_err("cannot set the mode of", at))?;
        if let Some(gid) = gid {
            std::os::unix::fs::chown(at, None, Some(gid))
                .map_err(io_err("cannot set the group of", at))?;
        }
        if staged {
            std::fs::rename(&tmp, &path).map_err(io_err("cannot move the socket to", &path))?;
        }
        let meta = std::fs::symlink_metadata(&path).map_err(io_err("cannot inspect", &path))?;
        listener
            .set_nonblocking(true)
            .map_err(io_err("cannot configure", &path))?;
        Ok((meta.dev(), meta.ino()))
    })();
    match placed {
        Ok(file_id) => Ok(SocketListener {
            listener,
            path,
            file_id,
        }),
        Err(e) => {
            let _ = std::fs::remove_file(at);
            Err(e)
        }
    }
}

/// `sun_path` holds 108 bytes including the terminating NUL.
const MAX_SOCKET_PATH: usize = 107;

fn check_path_len(path: &Path) -> Result<()> {
    let len = path.as_os_str().len();
    if len > MAX_SOCKET_PATH {
        return Err(PublishError::PathTooLong {
            path: path.to_owned(),
            len,
            max: MAX_SOCKET_PATH,
        });
    }
    Ok(())
}

fn parse_mode(mode: &str) -> Result<u32> {
    let digits = mode.strip_prefix("0o").unwrap_or(mode);
    match u32::from_str_radix(digits, 8) {
        Ok(m) if !digits.is_empty() && m <= 0o777 => Ok(m),
        _ => Err(PublishError::InvalidMode(mode.to_owned())),
    }
}

/// Looks a group up by name (thread-safe `getgrnam_r`); a number that names no group is
/// taken as a gid.
fn group_id(name: &str) -> Result<u32> {
    let unknown = || PublishError::UnknownGroup(name.to_owned());
    let cname = std::ffi::CString::new(name).map_err(|_| unknown())?;
    let mut buf = vec![0 as libc::c_char; 1024];
    loop {
        // SAFETY: every pointer refers to live, correctly sized storage for the call.
        let (rc, found) = unsafe {
            let mut grp: libc::group = std::mem::zeroed();
            let mut result: *mut libc::group = std::ptr::null_mut();
            let rc = libc::getgrnam_r(
                cname.as_ptr(),
                &mut grp,
                buf.as_mut_ptr(),
                buf.len(),
                &mut result,
            );
            (rc, (!result.is_null()).then_some(grp.gr_gid))
        };
        match (rc, found) {
            (libc::ERANGE, _) if buf.len() < 1 << 20 => buf.resize(buf.len() * 2, 0),
            (0, Some(gid)) => return Ok(gid),
            _ => return name.parse::<u32>().map_err(|_| unknown()),
        }
    }
}

fn ensure_parent(path: &Path) -> Result<()> {
    let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) else {
        return Ok(());
    };
    if !parent.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)
            .map_err(io_err("cannot create the socket directory", parent))?;
    }
    // /tmp is shared: make sure nobody else prepared our fallback directory for us.
    if parent == fallback_dir() {
        let meta = std::fs::symlink_metadata(parent).map_err(io_err("cannot inspect", parent))?;
        // SAFETY: geteuid cannot fail and touches no memory.
        if !meta.is_dir() || meta.uid() != unsafe { libc::geteuid() } {
            return Err(PublishError::UnsafeDirectory(parent.to_owned()));
        }
    }
    Ok(())
}

fn clear_stale(path: &Path) -> Result<()> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_err("cannot inspect", path)(e)),
    };
    if !meta.file_type().is_socket() {
        return Err(PublishError::NotASocket(path.to_owned()));
    }
    match StdUnixStream::connect(path) {
        Ok(_) => Err(PublishError::InUse(path.to_owned())),
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::ConnectionRefused | io::ErrorKind::NotFound
            ) =>
        {
            match std::fs::remove_file(path) {
                Ok(()) => {
                    info!(path = %path.display(), "replaced a stale socket");
                    Ok(())
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(io_err("cannot remove the stale socket", path)(e)),
            }
        }
        Err(e) => Err(io_err("cannot check the existing socket", path)(e)),
    }
}

/// The first message on every connection: what is talking and what it can say.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename = "hello")]
pub struct Hello {
    /// [`PROTOCOL_VERSION`].
    pub protocol: u32,
    pub hark_version: String,
    /// The model's name, as configured.
    pub model: String,
    /// Every label the model can report; request `labels` must be among them.
    pub labels: Vec<String>,
    /// The model's input rate, Hz.
    pub sample_rate: u32,
    /// Seconds of audio per window.
    pub window: f64,
    /// Seconds between window starts.
    pub hop: f64,
}

impl Hello {
    fn line(&self) -> Arc<str> {
        let mut s = serde_json::to_string(self).expect("hello always serializes");
        s.push('\n');
        s.into()
    }
}

/// The control messages of the protocol (records come from `Record::to_json`).
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Control<'a> {
    Subscribed {
        subscribe: Vec<&'static str>,
        labels: &'a [String],
    },
    Error {
        message: &'a str,
    },
    Dropped {
        count: u64,
    },
}

impl Control<'_> {
    fn line(&self) -> String {
        let mut s = serde_json::to_string(self).expect("control messages always serialize");
        s.push('\n');
        s
    }
}

/// What one subscriber wants: a set of record types, and for event records a set of labels
/// (empty = all).
#[derive(Debug, Clone, PartialEq)]
struct Filter {
    /// Bit i set = `KINDS[i]` wanted.
    kinds: u8,
    labels: Vec<String>,
}

impl Default for Filter {
    /// Events and status, no predictions.
    fn default() -> Self {
        Filter {
            kinds: 0b0111,
            labels: Vec::new(),
        }
    }
}

fn kind_bit(kind: &str) -> Option<u8> {
    KINDS.iter().position(|k| *k == kind).map(|i| 1 << i)
}

impl Filter {
    fn wants(&self, bit: u8, label: Option<&str>) -> bool {
        self.kinds & bit != 0
            && match label {
                Some(label) if !self.labels.is_empty() => self.labels.iter().any(|l| l == label),
                _ => true,
            }
    }

    fn kind_names(&self) -> Vec<&'static str> {
        KINDS
            .iter()
            .enumerate()
            .filter(|(i, _)| self.kinds & (1 << i) != 0)
            .map(|(_, k)| *k)
            .collect()
    }
}

/// A client's request line, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Request {
    subscribe: Option<Vec<String>>,
    labels: Option<Vec<String>>,
}

/// Parses one request line into the subscriber's new filter. `Ok(None)` for a blank line.
/// Keys left out keep their current value. `known` are the model's labels (empty = accept
/// any label).
fn parse_request(
    line: &[u8],
    current: &Filter,
    known: &[String],
) -> Result<Option<Filter>, String> {
    let text = std::str::from_utf8(line).map_err(|_| "request is not UTF-8 text".to_string())?;
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("request is not JSON: {e}"))?;
    if !value.is_object() {
        return Err(
            r#"request must be a JSON object such as {"subscribe":["event_start"],"labels":["Knock"]}"#
                .into(),
        );
    }
    let request: Request =
        serde_json::from_value(value).map_err(|e| format!("bad request: {e}"))?;
    let mut filter = current.clone();
    if let Some(kinds) = request.subscribe {
        filter.kinds = 0;
        for kind in &kinds {
            filter.kinds |= kind_bit(kind).ok_or_else(|| {
                format!(
                    "unknown record type {kind:?} in \"subscribe\"; expected some of {}",
                    KINDS.join(", ")
                )
            })?;
        }
    }
    if let Some(labels) = request.labels {
        if !known.is_empty() {
            for label in &labels {
                if !known.contains(label) {
                    let hint = known
                        .iter()
                        .find(|k| k.eq_ignore_ascii_case(label))
                        .map(|k| format!(" (did you mean {k:?}?)"))
                        .unwrap_or_default();
                    return Err(format!(
                        "unknown label {label:?} in \"labels\"{hint}; labels are case-sensitive and listed in hello"
                    ));
                }
            }
        }
        filter.labels = labels;
        filter.labels.dedup();
    }
    Ok(Some(filter))
}

/// One item of a subscriber's queue.
enum Out {
    Line(Arc<str>),
    /// This many records were dropped here because the queue was full.
    Dropped(u64),
}

/// A subscriber's queue: at most `cap` records. Records that do not fit are counted in
/// `dropped`, which stays above zero only while the queue is full, so the gap always comes
/// after everything queued. Allocated with room for the marker `take` appends, so neither
/// side ever reallocates.
struct Queue {
    items: VecDeque<Out>,
    /// Records dropped since the writer last took the queue.
    dropped: u64,
}

struct Outbox {
    queue: Mutex<Queue>,
    ready: Notify,
}

impl Outbox {
    fn push(&self, line: &Arc<str>, cap: usize) {
        {
            let mut q = lock(&self.queue);
            if q.items.len() >= cap {
                q.dropped += 1;
                return;
            }
            q.items.push_back(Out::Line(line.clone()));
        }
        self.ready.notify_one();
    }

    /// Swaps the queued items into `into`, which must be empty (and has the same capacity,
    /// so neither side ever allocates). Records dropped after the last queued one are
    /// reported at the end at once, rather than with the next record.
    fn take(&self, into: &mut VecDeque<Out>) {
        debug_assert!(into.is_empty());
        let mut q = lock(&self.queue);
        std::mem::swap(&mut q.items, into);
        if q.dropped > 0 {
            into.push_back(Out::Dropped(std::mem::take(&mut q.dropped)));
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The data under these locks stays consistent even if a holder panicked.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

struct Subscriber {
    id: u64,
    filter: Filter,
    outbox: Arc<Outbox>,
}

struct HubState {
    hello: Arc<str>,
    labels: Arc<[String]>,
    next_id: u64,
    subscribers: Vec<Subscriber>,
}

struct Shared {
    state: Mutex<HubState>,
    queue: usize,
    max_subscribers: usize,
}

/// The pipeline's handle on the subscribers: cheap to clone, usable from any thread.
#[derive(Clone)]
pub struct Hub {
    shared: Arc<Shared>,
}

impl Hub {
    /// A hub with no subscribers yet. `settings` gives the per-subscriber queue length and
    /// the subscriber cap.
    pub fn new(hello: Hello, settings: &SocketSettings) -> Hub {
        Hub {
            shared: Arc::new(Shared {
                state: Mutex::new(HubState {
                    hello: hello.line(),
                    labels: hello.labels.into(),
                    next_id: 0,
                    subscribers: Vec::new(),
                }),
                queue: settings.queue.max(1),
                max_subscribers: settings.max_subscribers.max(1),
            }),
        }
    }

    /// Hands `rec` to every subscriber that wants it. Never blocks: the record is serialized
    /// once (only if someone wants it) and queued; a subscriber whose queue is full loses it
    /// and is told how many it lost once it catches up.
    pub fn publish(&self, rec: &Record) {
        let Some(bit) = kind_bit(rec.kind()) else {
            return;
        };
        let label = rec.label();
        let state = lock(&self.shared.state);
        if !state.subscribers.iter().any(|s| s.filter.wants(bit, label)) {
            return;
        }
        let mut json = rec.to_json();
        json.push('\n');
        let line: Arc<str> = json.into();
        for s in state
            .subscribers
            .iter()
            .filter(|s| s.filter.wants(bit, label))
        {
            s.outbox.push(&line, self.shared.queue);
        }
    }

    /// Subscribers connected now.
    pub fn subscriber_count(&self) -> usize {
        lock(&self.shared.state).subscribers.len()
    }

    /// Replaces the hello (the pipeline was rebuilt with another model). New connections get
    /// the new one; connected subscribers get it too, in order with the records.
    pub fn set_hello(&self, hello: Hello) {
        let line = hello.line();
        let mut state = lock(&self.shared.state);
        state.hello = line.clone();
        state.labels = hello.labels.into();
        for s in &state.subscribers {
            s.outbox.push(&line, self.shared.queue);
        }
    }

    fn register(&self) -> Registration {
        let outbox = Arc::new(Outbox {
            queue: Mutex::new(Queue {
                items: VecDeque::with_capacity(self.shared.queue + 1),
                dropped: 0,
            }),
            ready: Notify::new(),
        });
        let mut state = lock(&self.shared.state);
        let id = state.next_id;
        state.next_id += 1;
        state.subscribers.push(Subscriber {
            id,
            filter: Filter::default(),
            outbox: outbox.clone(),
        });
        Registration {
            hub: self.clone(),
            id,
            outbox,
            hello: state.hello.clone(),
        }
    }
}

/// A connected subscriber's entry in the hub; dropping it removes the subscriber at once.
struct Registration {
    hub: Hub,
    id: u64,
    outbox: Arc<Outbox>,
    hello: Arc<str>,
}

impl Registration {
    /// Applies a request line. Returns the reply line.
    fn request(&self, line: &[u8]) -> Option<String> {
        let mut state = lock(&self.hub.shared.state);
        let labels = state.labels.clone();
        let me = state.subscribers.iter_mut().find(|s| s.id == self.id)?;
        match parse_request(line, &me.filter, &labels) {
            Ok(None) => None,
            Ok(Some(filter)) => {
                me.filter = filter;
                Some(
                    Control::Subscribed {
                        subscribe: me.filter.kind_names(),
                        labels: &me.filter.labels,
                    }
                    .line(),
                )
            }
            Err(message) => Some(Control::Error { message: &message }.line()),
        }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        lock(&self.hub.shared.state)
            .subscribers
            .retain(|s| s.id != self.id);
    }
}

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
    remove_socket(&path, file_id);
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

fn remove_socket(path: &Path, file_id: (u64, u64)) {
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

async fn refuse(mut stream: UnixStream, max: usize) {
    let message = format!("too many subscribers (max {max})");
    let line = Control::Error { message: &message }.line();
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        stream.write_all(line.as_bytes()).await?;
        stream.shutdown().await
    })
    .await;
}

/// One subscriber's connection: hello, then queued records and replies to its requests,
/// until it hangs up or the server stops.
async fn subscriber(
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
                        Line::TooLong => Some(Control::Error {
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

async fn write_batch(
    out: &mut BufWriter<OwnedWriteHalf>,
    batch: &mut VecDeque<Out>,
) -> io::Result<()> {
    for item in batch.drain(..) {
        match item {
            Out::Line(line) => out.write_all(line.as_bytes()).await?,
            Out::Dropped(count) => {
                out.write_all(Control::Dropped { count }.line().as_bytes())
                    .await?
            }
        }
    }
    out.flush().await
}

/// True once the peer has closed the connection in both directions (`POLLHUP`), as opposed
/// to a half-close after which it still reads.
fn peer_hung_up(out: &BufWriter<OwnedWriteHalf>) -> bool {
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

/// One line read by [`LineReader`].
#[derive(Debug, PartialEq)]
enum Line {
    Complete(Vec<u8>),
    /// The line passed the limit; the rest of it is being discarded.
    TooLong,
}

/// Reads lines of at most `max` bytes. Cancel-safe: all progress is kept in the struct and
/// the only await point consumes nothing.
struct LineReader<R> {
    inner: BufReader<R>,
    line: Vec<u8>,
    max: usize,
    discarding: bool,
}

impl<R: AsyncRead + Unpin> LineReader<R> {
    fn new(inner: R, max: usize) -> Self {
        LineReader {
            inner: BufReader::new(inner),
            line: Vec::new(),
            max,
            discarding: false,
        }
    }

    /// The next line without its newline; an unterminated last line counts. `None` at end
    /// of input. An over-long line is reported as soon as it passes the limit.
    async fn next_line(&mut self) -> io::Result<Option<Line>> {
        loop {
            let buf = self.inner.fill_buf().await?;
            if buf.is_empty() {
                self.discarding = false;
                if self.line.is_empty() {
                    return Ok(None);
                }
                return Ok(Some(Line::Complete(std::mem::take(&mut self.line))));
            }
            let newline = buf.iter().position(|&b| b == b'\n');
            let end = newline.unwrap_or(buf.len());
            let used = end + usize::from(newline.is_some());
            if self.discarding {
                self.discarding = newline.is_none();
                self.inner.consume(used);
                continue;
            }
            if self.line.len() + end > self.max {
                self.line = Vec::new();
                self.discarding = newline.is_none();
                self.inner.consume(used);
                return Ok(Some(Line::TooLong));
            }
            self.line.extend_from_slice(&buf[..end]);
            self.inner.consume(used);
            if newline.is_some() {
                return Ok(Some(Line::Complete(std::mem::take(&mut self.line))));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels() -> Vec<String> {
        vec!["Knock".into(), "Doorbell".into(), "Speech".into()]
    }

    #[test]
    fn default_filter_is_events_and_status() {
        let f = Filter::default();
        assert_eq!(f.kind_names(), ["event_start", "event_end", "status"]);
        assert!(!f.wants(kind_bit("prediction").unwrap(), None));
    }

    #[test]
    fn request_sets_types_and_labels() {
        let f = parse_request(
            br#"{"subscribe":["prediction","event_start"],"labels":["Knock"]}"#,
            &Filter::default(),
            &labels(),
        )
        .unwrap()
        .unwrap();
        assert_eq!(f.kind_names(), ["event_start", "prediction"]);
        assert!(f.wants(kind_bit("event_start").unwrap(), Some("Knock")));
        assert!(!f.wants(kind_bit("event_start").unwrap(), Some("Speech")));
        assert!(f.wants(kind_bit("prediction").unwrap(), None));
        assert!(!f.wants(kind_bit("status").unwrap(), None));
    }

    #[test]
    fn request_keys_left_out_keep_their_value() {
        let current = Filter {
            kinds: kind_bit("status").unwrap(),
            labels: vec!["Knock".into()],
        };
        let f = parse_request(br#"{"labels":[]}"#, &current, &labels())
            .unwrap()
            .unwrap();
        assert_eq!(f.kinds, current.kinds);
        assert!(f.labels.is_empty());
        let f = parse_request(b"{}", &current, &labels()).unwrap().unwrap();
        assert_eq!(f, current);
    }

    #[test]
    fn blank_request_is_ignored() {
        assert_eq!(parse_request(b"  \r", &Filter::default(), &[]), Ok(None));
    }

    #[test]
    fn bad_requests_say_what_is_wrong() {
        let cases: [(&[u8], &str); 8] = [
            (b"hello", "not JSON"),
            (b"[1,2]", "must be a JSON object"),
            (
                br#"{"subscribe":["event_start"],"x":1}"#,
                "unknown field `x`",
            ),
            (
                br#"{"subscribe":["events"]}"#,
                "unknown record type \"events\"",
            ),
            (br#"{"subscribe":"event_start"}"#, "invalid type"),
            (br#"{"labels":[1]}"#, "invalid type"),
            (b"\xff\xfe{", "not UTF-8"),
            (br#"{"labels":["knock"]}"#, "did you mean \"Knock\""),
        ];
        for (line, want) in cases {
            let err = parse_request(line, &Filter::default(), &labels()).unwrap_err();
            assert!(err.contains(want), "{line:?}: {err}");
        }
    }

    #[test]
    fn any_label_is_accepted_when_the_model_lists_none() {
        assert!(parse_request(br#"{"labels":["anything"]}"#, &Filter::default(), &[]).is_ok());
    }

    #[test]
    fn full_queue_drops_and_reports_the_gap_when_taken() {
        let outbox = Outbox {
            queue: Mutex::new(Queue {
                items: VecDeque::with_capacity(3),
                dropped: 0,
            }),
            ready: Notify::new(),
        };
        let line: Arc<str> = "x\n".into();
        for _ in 0..5 {
            outbox.push(&line, 2);
        }
        let mut batch = VecDeque::with_capacity(3);
        outbox.take(&mut batch);
        assert_eq!(batch.len(), 3);
        assert!(matches!(batch[0], Out::Line(_)));
        assert!(matches!(batch[1], Out::Line(_)));
        assert!(matches!(batch[2], Out::Dropped(3)));
        batch.clear();
        outbox.push(&line, 2);
        outbox.take(&mut batch);
        assert_eq!(batch.len(), 1);
        assert!(matches!(batch[0], Out::Line(_)));
    }

    #[test]
    fn hello_has_its_type() {
        let hello = Hello {
            protocol: PROTOCOL_VERSION,
            hark_version: "0.1.0".into(),
            model: "m".into(),
            labels: labels(),
            sample_rate: 16000,
            window: 0.96,
            hop: 0.48,
        };
        let v: serde_json::Value = serde_json::from_str(&hello.line()).unwrap();
        assert_eq!(v["type"], "hello");
        assert_eq!(v["protocol"], 1);
        let back: Hello = serde_json::from_value(v).unwrap();
        assert_eq!(back, hello);
    }

    #[test]
    fn mode_parses_octal_only() {
        assert_eq!(parse_mode("0660").unwrap(), 0o660);
        assert_eq!(parse_mode("600").unwrap(), 0o600);
        assert_eq!(parse_mode("0o640").unwrap(), 0o640);
        for bad in ["", "rw-rw----", "0888", "7777"] {
            assert!(parse_mode(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn settings_defaults_and_unknown_keys() {
        let s: SocketSettings = serde_json::from_str("{}").unwrap();
        assert_eq!(s, SocketSettings::default());
        assert!(s.validate().is_ok());
        let mut unknown = Vec::new();
        let mut de = serde_json::Deserializer::from_str(r#"{"queu":3}"#);
        let _: SocketSettings =
            serde_ignored::deserialize(&mut de, |p| unknown.push(p.to_string())).unwrap();
        assert_eq!(unknown, ["queu"]);
        let s = SocketSettings {
            queue: 0,
            ..SocketSettings::default()
        };
        assert!(s.validate().unwrap_err().starts_with("socket.queue"));
    }

    #[tokio::test]
    async fn line_reader_bounds_lines_and_recovers() {
        let mut input = Vec::new();
        input.extend_from_slice(b"one\n");
        input.extend(std::iter::repeat_n(b'a', 100));
        input.extend_from_slice(b"\ntwo\nthree");
        let mut r = LineReader::new(&input[..], 10);
        assert_eq!(
            r.next_line().await.unwrap(),
            Some(Line::Complete(b"one".to_vec()))
        );
        assert_eq!(r.next_line().await.unwrap(), Some(Line::TooLong));
        assert_eq!(
            r.next_line().await.unwrap(),
            Some(Line::Complete(b"two".to_vec()))
        );
        assert_eq!(
            r.next_line().await.unwrap(),
            Some(Line::Complete(b"three".to_vec()))
        );
        assert_eq!(r.next_line().await.unwrap(), None);
    }

    #[test]
    fn documented_examples_are_valid_json() {
        let doc = include_str!("../docs/protocol.md");
        let mut in_json = false;
        let mut checked = 0;
        for line in doc.lines() {
            match line.trim() {
                "```json" => in_json = true,
                "```" => in_json = false,
                l if in_json && !l.is_empty() => {
                    let v: serde_json::Value = serde_json::from_str(l)
                        .unwrap_or_else(|e| panic!("docs/protocol.md: {l}: {e}"));
                    assert!(v.is_object(), "{l}");
                    if v.get("type").is_some_and(|t| {
                        ["event_start", "event_end", "status", "prediction"]
                            .contains(&t.as_str().unwrap())
                    }) {
                        serde_json::from_value::<Record>(v)
                            .unwrap_or_else(|e| panic!("docs/protocol.md: {l}: {e}"));
                    }
                    checked += 1;
                }
                _ => {}
            }
        }
        assert!(checked >= 10, "only {checked} examples found");
    }
}
