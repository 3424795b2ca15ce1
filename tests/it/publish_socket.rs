//! The socket, end to end: a real tokio runtime serves a real Unix socket in a fresh
//! directory; records are published from a plain thread through the `Hub`, as the pipeline
//! does; clients are blocking std sockets that talk bytes.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use hark::record::{LabelScore, Record};
use hark::sinks::socket::{bind, serve, Hello, Hub, SocketSettings};
use serde_json::Value;

const LABELS: [&str; 4] = ["Knock", "Doorbell", "Speech", "Smoke detector, smoke alarm"];

fn hello() -> Hello {
    Hello {
        protocol: 1,
        hark_version: env!("CARGO_PKG_VERSION").into(),
        model: "test-model".into(),
        labels: LABELS.iter().map(|s| s.to_string()).collect(),
        groups: Default::default(),
        sample_rate: 16000,
        window: 0.96,
        hop: 0.48,
    }
}

fn start_rec(id: u64, label: &str) -> Record {
    Record::EventStart {
        id,
        label: label.into(),
        group: None,
        start: id as f64,
        time: "2026-01-01T00:00:00.000Z".into(),
        score: 0.9,
        clip: None,
        image: None,
    }
}

fn end_rec(id: u64, label: &str) -> Record {
    Record::EventEnd {
        id,
        label: label.into(),
        group: None,
        start: id as f64,
        end: id as f64 + 1.0,
        time: "2026-01-01T00:00:01.000Z".into(),
        peak: 0.95,
        clip: None,
        image: None,
    }
}

fn status_rec(seq: u64, message: Option<String>) -> Record {
    Record::Status {
        start: seq as f64,
        time: "2026-01-01T00:00:00.000Z".into(),
        overruns: 0,
        windows: seq,
        skipped_windows: 0,
        inference_ms: 1.0,
        level_db: -40.0,
        message,
        sinks: None,
    }
}

fn prediction_rec(seq: u64) -> Record {
    Record::Prediction {
        start: seq as f64,
        end: seq as f64 + 0.96,
        time: "2026-01-01T00:00:00.000Z".into(),
        top: vec![LabelScore {
            label: "Knock".into(),
            score: 0.5,
        }],
        level_db: -20.0,
        captured: None,
        gated: false,
    }
}

/// A server on a fresh socket path, with its own runtime.
struct Server {
    rt: tokio::runtime::Runtime,
    hub: Hub,
    path: PathBuf,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<(), hark::sinks::socket::PublishError>>>,
    _dir: tempfile::TempDir,
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn settings_in(dir: &Path) -> SocketSettings {
    SocketSettings {
        path: Some(dir.join("hark.sock")),
        ..SocketSettings::default()
    }
}

fn start_with(adjust: impl FnOnce(&mut SocketSettings)) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = settings_in(dir.path());
    adjust(&mut settings);
    let rt = runtime();
    let listener = bind(&settings).unwrap();
    let hub = Hub::new(hello(), &settings);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = rt.spawn(serve(listener, hub.clone(), async {
        let _ = stopped.await;
    }));
    Server {
        rt,
        hub,
        path: settings.path.unwrap(),
        stop: Some(stop),
        task: Some(task),
        _dir: dir,
    }
}

fn start() -> Server {
    start_with(|_| {})
}

impl Server {
    fn connect(&self) -> Client {
        Client::connect(&self.path)
    }

    /// A connected client that has read its hello (so it is registered with the hub).
    fn subscriber(&self) -> Client {
        let mut c = self.connect();
        assert_eq!(c.recv()["type"], "hello");
        c
    }

    fn stop(mut self) {
        self.stop.take().unwrap().send(()).unwrap();
        let task = self.task.take().unwrap();
        self.rt
            .block_on(async { tokio::time::timeout(Duration::from_secs(5), task).await })
            .expect("serve stops within 5 s")
            .unwrap()
            .unwrap();
    }

    fn wait_for_subscribers(&self, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.hub.subscriber_count() != n {
            assert!(
                Instant::now() < deadline,
                "{} subscribers, expected {n}",
                self.hub.subscriber_count()
            );
            thread::sleep(Duration::from_millis(5));
        }
    }
}

struct Client {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Client {
    fn connect(path: &Path) -> Client {
        let stream = UnixStream::connect(path).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        Client {
            writer: stream.try_clone().unwrap(),
            reader: BufReader::new(stream),
        }
    }

    /// The next line, parsed. Panics after 10 s of silence or at end of stream.
    fn recv(&mut self) -> Value {
        self.try_recv().expect("a line, not end of stream")
    }

    /// The next line, or `None` at end of stream.
    fn try_recv(&mut self) -> Option<Value> {
        let mut line = String::new();
        let n = self
            .reader
            .read_line(&mut line)
            .expect("a line within 10 s");
        if n == 0 {
            return None;
        }
        assert!(line.ends_with('\n'), "unterminated line {line:?}");
        Some(serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line:?}: {e}")))
    }

    /// Asserts that nothing arrives for `quiet`.
    fn assert_silent(&mut self, quiet: Duration) {
        self.reader.get_ref().set_read_timeout(Some(quiet)).unwrap();
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            other => panic!("expected silence, got {other:?}: {line:?}"),
        }
        self.reader
            .get_ref()
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
    }

    fn send(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).unwrap();
    }

    fn request(&mut self, json: &str) -> Value {
        self.send(json.as_bytes());
        self.send(b"\n");
        self.recv()
    }
}

#[test]
fn hello_comes_first_then_records_in_order() {
    // Room for all 300 records the client will want: it only reads after the burst.
    let server = start_with(|s| s.queue = 300);
    let mut c = server.connect();
    let hello = c.recv();
    assert_eq!(hello["type"], "hello");
    assert_eq!(hello["protocol"], 1);
    assert_eq!(hello["model"], "test-model");
    assert_eq!(hello["labels"][0], "Knock");
    assert_eq!(hello["sample_rate"], 16000);

    let hub = server.hub.clone();
    thread::spawn(move || {
        for id in 0..100 {
            hub.publish(&start_rec(id, "Knock"));
            hub.publish(&prediction_rec(id));
            hub.publish(&end_rec(id, "Knock"));
            hub.publish(&status_rec(id, None));
        }
    })
    .join()
    .unwrap();
    for id in 0..100 {
        let r = c.recv();
        assert_eq!(
            (r["type"].as_str(), r["id"].as_u64()),
            (Some("event_start"), Some(id))
        );
        assert_eq!(r["label"], "Knock");
        // Predictions are not sent unless asked for.
        let r = c.recv();
        assert_eq!(
            (r["type"].as_str(), r["id"].as_u64()),
            (Some("event_end"), Some(id))
        );
        let r = c.recv();
        assert_eq!(r["type"], "status");
        assert_eq!(r["start"], id as f64);
    }
    c.assert_silent(Duration::from_millis(100));
    server.stop();
}

#[test]
fn filters_select_types_and_labels() {
    let server = start();
    let mut knocks = server.subscriber();
    let ack = knocks.request(r#"{"subscribe":["event_start","prediction"],"labels":["Knock"]}"#);
    assert_eq!(ack["type"], "subscribed");
    assert_eq!(
        ack["subscribe"],
        serde_json::json!(["event_start", "prediction"])
    );
    assert_eq!(ack["labels"], serde_json::json!(["Knock"]));
    let mut everything = server.subscriber();
    let ack =
        everything.request(r#"{"subscribe":["event_start","event_end","status","prediction"]}"#);
    assert_eq!(ack["labels"], serde_json::json!([]));
    let mut default = server.subscriber();

    server.hub.publish(&start_rec(1, "Knock"));
    server.hub.publish(&start_rec(2, "Doorbell"));
    server.hub.publish(&end_rec(1, "Knock"));
    server.hub.publish(&status_rec(0, None));
    server.hub.publish(&prediction_rec(0));
    server.hub.publish(&start_rec(3, "Knock"));

    let kinds = |c: &mut Client, n: usize| -> Vec<(String, Option<u64>)> {
        (0..n)
            .map(|_| {
                let r = c.recv();
                (r["type"].as_str().unwrap().to_owned(), r["id"].as_u64())
            })
            .collect()
    };
    let k = |t: &str, id: Option<u64>| (t.to_owned(), id);
    assert_eq!(
        kinds(&mut knocks, 3),
        [
            k("event_start", Some(1)),
            k("prediction", None),
            k("event_start", Some(3))
        ]
    );
    knocks.assert_silent(Duration::from_millis(100));
    assert_eq!(
        kinds(&mut everything, 6),
        [
            k("event_start", Some(1)),
            k("event_start", Some(2)),
            k("event_end", Some(1)),
            k("status", None),
            k("prediction", None),
            k("event_start", Some(3)),
        ]
    );
    assert_eq!(
        kinds(&mut default, 5),
        [
            k("event_start", Some(1)),
            k("event_start", Some(2)),
            k("event_end", Some(1)),
            k("status", None),
            k("event_start", Some(3)),
        ]
    );

    // Changing only the labels keeps the types; [] means all labels again.
    let ack = knocks.request(r#"{"labels":[]}"#);
    assert_eq!(
        ack["subscribe"],
        serde_json::json!(["event_start", "prediction"])
    );
    server.hub.publish(&start_rec(4, "Doorbell"));
    assert_eq!(knocks.recv()["id"], 4);
    server.stop();
}

#[test]
fn bad_request_gets_an_error_and_the_connection_stays_usable() {
    let server = start();
    let mut c = server.subscriber();
    let err = c.request(r#"{"subscribe":["events"]}"#);
    assert_eq!(err["type"], "error");
    assert!(err["message"].as_str().unwrap().contains("events"), "{err}");
    let err = c.request(r#"{"subscribe":["event_start"],"colour":"red"}"#);
    assert!(err["message"].as_str().unwrap().contains("colour"), "{err}");
    let err = c.request(r#"{"labels":["Knokc"]}"#);
    assert!(err["message"].as_str().unwrap().contains("Knokc"), "{err}");
    let err = c.request(r#"["event_start"]"#);
    assert_eq!(err["type"], "error");

    // The failed requests changed nothing: still the default subscription.
    server.hub.publish(&status_rec(1, None));
    assert_eq!(c.recv()["type"], "status");
    let ack = c.request(r#"{"subscribe":["event_end"]}"#);
    assert_eq!(ack["type"], "subscribed");
    server.hub.publish(&start_rec(1, "Knock"));
    server.hub.publish(&end_rec(1, "Knock"));
    assert_eq!(c.recv()["type"], "event_end");
    server.stop();
}

#[test]
fn garbage_binary_and_oversized_requests_get_errors_and_harm_no_one() {
    let server = start();
    let mut bystander = server.subscriber();
    let mut c = server.subscriber();

    c.send(b"garbage\n");
    assert!(c.recv()["message"].as_str().unwrap().contains("not JSON"));
    c.send(b"\x00\xff\xfe\x01binary\x80\x81\n");
    assert!(c.recv()["message"].as_str().unwrap().contains("not UTF-8"));
    // 1 MiB on one line: one error, the rest of the line is discarded.
    let mut big = vec![b'{'; 1 << 20];
    big.push(b'\n');
    c.send(&big);
    let err = c.recv();
    assert_eq!(err["type"], "error");
    assert!(
        err["message"].as_str().unwrap().contains("longer than"),
        "{err}"
    );
    // The next line is read normally.
    let ack = c.request(r#"{"subscribe":["event_start"]}"#);
    assert_eq!(ack["type"], "subscribed");

    server.hub.publish(&start_rec(1, "Knock"));
    assert_eq!(c.recv()["id"], 1);
    assert_eq!(bystander.recv()["id"], 1);
    bystander.assert_silent(Duration::from_millis(50));
    assert_eq!(server.hub.subscriber_count(), 2);
    server.stop();
}

#[test]
fn fifty_concurrent_subscribers_each_receive_every_event() {
    const CLIENTS: usize = 50;
    const EVENTS: u64 = 500;
    // Room for every event, so that a reader the scheduler neglects for a while still gets
    // them all (what happens when a queue overflows is the stalled-subscriber test's).
    let server = start_with(|s| s.queue = EVENTS as usize);
    let ready = Arc::new(Barrier::new(CLIENTS + 1));
    let readers: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let path = server.path.clone();
            let ready = ready.clone();
            thread::spawn(move || {
                let mut c = Client::connect(&path);
                assert_eq!(c.recv()["type"], "hello");
                ready.wait();
                for id in 0..EVENTS {
                    let r = c.recv();
                    assert_eq!(r["type"], "event_start");
                    assert_eq!(r["id"], id);
                }
            })
        })
        .collect();
    ready.wait();
    assert_eq!(server.hub.subscriber_count(), CLIENTS);
    let hub = server.hub.clone();
    thread::spawn(move || {
        for id in 0..EVENTS {
            hub.publish(&start_rec(id, LABELS[id as usize % 4]));
            if id % 64 == 63 {
                thread::sleep(Duration::from_millis(1));
            }
        }
    })
    .join()
    .unwrap();
    for r in readers {
        r.join().unwrap();
    }
    server.stop();
}

/// Publishes `count` status records (each about 1 KiB) at a steady pace while `readers`
/// clients read them. Returns the worst receive latency seen by any reader and the longest
/// single `publish` call.
fn paced_run(server: &Server, readers: usize, count: u64) -> (Duration, Duration) {
    let ready = Arc::new(Barrier::new(readers + 1));
    let t0 = Instant::now();
    let sent_at: Arc<Vec<std::sync::atomic::AtomicU64>> =
        Arc::new((0..count).map(|_| Default::default()).collect());
    let handles: Vec<_> = (0..readers)
        .map(|_| {
            let path = server.path.clone();
            let (ready, sent_at) = (ready.clone(), sent_at.clone());
            thread::spawn(move || {
                let mut c = Client::connect(&path);
                assert_eq!(c.recv()["type"], "hello");
                ready.wait();
                let mut worst = Duration::ZERO;
                for seq in 0..count {
                    let r = c.recv();
                    assert_eq!(r["type"], "status", "{r}");
                    assert_eq!(
                        r["start"], seq as f64,
                        "records arrive complete and in order"
                    );
                    let sent = sent_at[seq as usize].load(std::sync::atomic::Ordering::Acquire);
                    worst = worst.max(t0.elapsed().saturating_sub(Duration::from_nanos(sent)));
                }
                worst
            })
        })
        .collect();
    ready.wait();
    let padding = "x".repeat(1000);
    let mut longest_publish = Duration::ZERO;
    for seq in 0..count {
        let rec = status_rec(seq, Some(padding.clone()));
        let before = Instant::now();
        sent_at[seq as usize].store(
            t0.elapsed().as_nanos() as u64,
            std::sync::atomic::Ordering::Release,
        );
        server.hub.publish(&rec);
        longest_publish = longest_publish.max(before.elapsed());
        if seq % 10 == 9 {
            thread::sleep(Duration::from_millis(1));
        }
    }
    let worst = handles
        .into_iter()
        .map(|h| h.join().unwrap())
        .max()
        .unwrap();
    (worst, longest_publish)
}

#[test]
fn a_stalled_subscriber_does_not_delay_the_others_and_learns_what_it_missed() {
    const COUNT: u64 = 3000;
    // A socket buffer holds a few hundred of these records; with the queue, well under COUNT.
    let server = start_with(|s| s.queue = 512);
    let (baseline, _) = paced_run(&server, 4, COUNT);
    server.wait_for_subscribers(0);

    // A subscriber that connects and then never reads.
    let mut stalled = server.subscriber();
    let (with_stall, longest_publish) = paced_run(&server, 4, COUNT);
    eprintln!("worst latency: {baseline:?} alone, {with_stall:?} beside a stalled subscriber; longest publish {longest_publish:?}");
    assert!(
        with_stall < baseline * 10 + Duration::from_secs(1),
        "others slowed down: {with_stall:?} vs {baseline:?}"
    );
    assert!(
        longest_publish < Duration::from_millis(200),
        "publish blocked for {longest_publish:?}"
    );

    // The stalled one catches up: it gets what fitted, then how many records it lost; after
    // that it is a normal subscriber again. What it got plus what it lost is everything.
    let (mut got, mut lost) = (0u64, 0u64);
    while lost == 0 {
        let r = stalled.recv();
        match r["type"].as_str().unwrap() {
            "status" => {
                assert_eq!(r["start"], got as f64, "in order, no gap before the marker");
                got += 1;
            }
            "dropped" => lost = r["count"].as_u64().unwrap(),
            other => panic!("unexpected {other}"),
        }
    }
    assert!(lost > 0);
    assert_eq!(got + lost, COUNT);
    // And now it is a normal subscriber again.
    server.hub.publish(&status_rec(COUNT, None));
    assert_eq!(stalled.recv()["start"], COUNT as f64);
    server.stop();
}

#[test]
fn connections_over_the_cap_get_an_error_and_are_closed() {
    let server = start_with(|s| s.max_subscribers = 3);
    let mut clients: Vec<_> = (0..3).map(|_| server.subscriber()).collect();
    let mut over = server.connect();
    let err = over.recv();
    assert_eq!(err["type"], "error");
    assert_eq!(err["message"], "too many subscribers (max 3)");
    assert!(over.try_recv().is_none(), "closed after the error");
    assert_eq!(server.hub.subscriber_count(), 3);

    // A slot frees up when a subscriber leaves.
    drop(clients.pop());
    server.wait_for_subscribers(2);
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut again = loop {
        let mut c = server.connect();
        if c.recv()["type"] == "hello" {
            break c;
        }
        assert!(Instant::now() < deadline, "no slot freed");
        thread::sleep(Duration::from_millis(10));
    };
    server.hub.publish(&start_rec(1, "Knock"));
    assert_eq!(again.recv()["id"], 1);
    for c in &mut clients {
        assert_eq!(c.recv()["id"], 1);
    }
    server.stop();
}

#[test]
fn disconnected_subscribers_are_removed_at_once_but_half_closed_ones_keep_reading() {
    let server = start();
    let a = server.subscriber();
    let mut half = server.subscriber();
    assert_eq!(server.hub.subscriber_count(), 2);
    drop(a);
    server.wait_for_subscribers(1);

    // Like `echo '{...}' | nc -U`: send a request, close the sending side, keep reading.
    let ack = half.request(r#"{"subscribe":["event_end"]}"#);
    assert_eq!(ack["type"], "subscribed");
    half.writer.shutdown(std::net::Shutdown::Write).unwrap();
    thread::sleep(Duration::from_millis(300));
    assert_eq!(server.hub.subscriber_count(), 1);
    server.hub.publish(&end_rec(5, "Knock"));
    assert_eq!(half.recv()["id"], 5);
    drop(half);
    server.wait_for_subscribers(0);
    server.stop();
}

#[test]
fn shutdown_flushes_queued_records_closes_connections_and_removes_the_socket() {
    let server = start();
    let mut c = server.subscriber();
    for id in 0..20 {
        server.hub.publish(&start_rec(id, "Knock"));
    }
    let path = server.path.clone();
    server.stop();
    assert!(!path.exists(), "socket file removed");
    for id in 0..20 {
        assert_eq!(c.recv()["id"], id);
    }
    assert!(c.try_recv().is_none(), "connection closed");
}

#[test]
fn set_hello_reaches_new_and_connected_subscribers() {
    let server = start();
    let mut c = server.subscriber();
    let mut other = hello();
    other.model = "other-model".into();
    other.labels = vec!["Bark".into()];
    server.hub.set_hello(other);
    let h = c.recv();
    assert_eq!(
        (h["type"].as_str(), h["model"].as_str()),
        (Some("hello"), Some("other-model"))
    );
    let mut fresh = server.connect();
    assert_eq!(fresh.recv()["model"], "other-model");
    // Requests are checked against the new labels.
    assert_eq!(
        fresh.request(r#"{"labels":["Bark"]}"#)["type"],
        "subscribed"
    );
    assert_eq!(fresh.request(r#"{"labels":["Knock"]}"#)["type"], "error");
    server.stop();
}

#[test]
fn a_stale_socket_file_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let settings = settings_in(dir.path());
    let path = settings.path.clone().unwrap();
    drop(UnixListener::bind(&path).unwrap()); // the file stays, nobody listens
    assert!(UnixStream::connect(&path).is_err());
    let rt = runtime();
    let listener = bind(&settings).expect("stale socket replaced");
    assert_eq!(listener.path(), path);
    let hub = Hub::new(hello(), &settings);
    let _serving = rt.spawn(serve(listener, hub, std::future::pending()));
    let mut c = Client::connect(&path);
    assert_eq!(c.recv()["type"], "hello");
}

#[test]
fn binding_a_live_socket_is_refused_naming_the_path() {
    let server = start();
    let settings = SocketSettings {
        path: Some(server.path.clone()),
        ..SocketSettings::default()
    };
    let err = bind(&settings).unwrap_err().to_string();
    assert!(err.contains("already listening"), "{err}");
    assert!(err.contains(&server.path.display().to_string()), "{err}");
    // The running server is untouched.
    let mut c = server.subscriber();
    server.hub.publish(&start_rec(1, "Knock"));
    assert_eq!(c.recv()["id"], 1);
    server.stop();
}

#[test]
fn a_file_that_is_not_a_socket_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let settings = settings_in(dir.path());
    let path = settings.path.clone().unwrap();
    std::fs::write(&path, "precious").unwrap();
    let err = bind(&settings).unwrap_err().to_string();
    assert!(err.contains("not a socket"), "{err}");
    assert!(err.contains(&path.display().to_string()), "{err}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "precious");
}

fn mode_of(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn the_socket_gets_the_configured_mode() {
    for (mode, want) in [("0660", 0o660), ("0600", 0o600), ("0666", 0o666)] {
        let dir = tempfile::tempdir().unwrap();
        let settings = SocketSettings {
            mode: mode.into(),
            ..settings_in(dir.path())
        };
        let listener = bind(&settings).unwrap();
        assert_eq!(mode_of(listener.path()), want, "mode {mode}");
        // No temporary file is left beside it.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}

fn primary_group() -> (String, u32) {
    // SAFETY: getegid has no preconditions; getgrgid_r gets live buffers of the stated sizes.
    unsafe {
        let gid = libc::getegid();
        let mut grp: libc::group = std::mem::zeroed();
        let mut buf = vec![0 as libc::c_char; 16384];
        let mut result = std::ptr::null_mut();
        let rc = libc::getgrgid_r(gid, &mut grp, buf.as_mut_ptr(), buf.len(), &mut result);
        assert!(rc == 0 && !result.is_null(), "no name for gid {gid}");
        let name = std::ffi::CStr::from_ptr(grp.gr_name)
            .to_str()
            .unwrap()
            .to_owned();
        (name, gid)
    }
}

#[test]
fn the_socket_gets_the_configured_group() {
    use std::os::unix::fs::MetadataExt;
    let (name, gid) = primary_group();
    let dir = tempfile::tempdir().unwrap();
    let settings = SocketSettings {
        group: Some(name),
        ..settings_in(dir.path())
    };
    let listener = bind(&settings).unwrap();
    assert_eq!(std::fs::metadata(listener.path()).unwrap().gid(), gid);
    assert_eq!(mode_of(listener.path()), 0o660);
}

#[test]
fn an_unknown_group_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let settings = SocketSettings {
        group: Some("no-such-group-hark".into()),
        ..settings_in(dir.path())
    };
    let err = bind(&settings).unwrap_err().to_string();
    assert!(err.contains("no-such-group-hark"), "{err}");
    assert!(!dir.path().join("hark.sock").exists());
}

#[test]
fn a_missing_socket_directory_is_created() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run").join("hark").join("hark.sock");
    let settings = SocketSettings {
        path: Some(path.clone()),
        ..SocketSettings::default()
    };
    let listener = bind(&settings).unwrap();
    assert_eq!(listener.path(), path);
    assert_eq!(mode_of(path.parent().unwrap()), 0o700);
}

#[test]
fn raw_bytes_like_socat_sends_them() {
    // A client that writes a request in pieces and reads raw bytes, as `socat -` would.
    let server = start();
    let mut stream = UnixStream::connect(&server.path).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut hello = String::new();
    reader.read_line(&mut hello).unwrap();
    assert!(
        hello.starts_with(r#"{"type":"hello","protocol":1,"#),
        "{hello}"
    );
    stream.write_all(br#"{"subscri"#).unwrap();
    thread::sleep(Duration::from_millis(50));
    stream.write_all(b"be\":[\"event_start\"]}\r\n").unwrap();
    let mut ack = String::new();
    reader.read_line(&mut ack).unwrap();
    assert_eq!(
        ack,
        "{\"type\":\"subscribed\",\"subscribe\":[\"event_start\"],\"labels\":[]}\n"
    );
    server.hub.publish(&start_rec(9, "Knock"));
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    assert_eq!(line, start_rec(9, "Knock").to_json() + "\n");
    server.stop();
}

#[test]
fn a_subscriber_can_filter_on_a_group_named_in_hello() {
    let server = start();
    let mut with_groups = hello();
    with_groups
        .groups
        .insert("entrance".into(), vec!["Knock".into(), "Doorbell".into()]);
    server.hub.set_hello(with_groups);
    let mut c = server.connect();
    let hello = c.recv();
    assert_eq!(hello["groups"]["entrance"][1], "Doorbell", "{hello}");
    let ack = c.request(r#"{"labels":["entrance"]}"#);
    assert_eq!(ack["type"], "subscribed", "{ack}");
    let in_group = |id: u64, label: &str| {
        let mut r = start_rec(id, label);
        if let Record::EventStart { group, .. } = &mut r {
            *group = Some("entrance".into());
        }
        r
    };
    server.hub.publish(&start_rec(1, "Knock")); // no group: not "entrance"
    server.hub.publish(&in_group(2, "Doorbell"));
    let r = c.recv();
    assert_eq!(
        (r["id"].as_u64(), r["group"].as_str()),
        (Some(2), Some("entrance"))
    );
    assert_eq!(r["label"], "Doorbell");
    c.assert_silent(Duration::from_millis(100));
    let err = c.request(r#"{"labels":["entrnace"]}"#);
    assert_eq!(err["type"], "error", "{err}");
    server.stop();
}
