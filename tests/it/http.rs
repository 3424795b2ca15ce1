//! The web sink against a real `hark run` playing a real recording, through a real HTTP
//! client (`curl`), Prometheus' own checker (`promtool`) and a real browser (`chromium`,
//! headless): every endpoint's answer, filters, the token, `max_clients`, `/healthz` through
//! an injected stall, and the page's DOM after its scripts ran.
//!
//! Every server listens on 127.0.0.1 on a free port; every client call has a time limit.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use hark::record::Record;
use serde_json::Value;

use crate::common::chromium::Chromium;
use crate::common::daemon::{door5, knocks_after_a_second, or_skip};
use crate::common::hark::{write_config, Daemon, HarkRun};
use crate::common::mosquitto::free_port;
use crate::common::tools::require;

/// A daemon with `[http]` on, playing `input` at real time, and its base URL.
struct Web {
    daemon: Daemon,
    base: String,
    _dir: tempfile::TempDir,
}

fn start(input: &Path, http_extra: &str, env: &[(&str, &str)]) -> Web {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = write_config(
        dir.path(),
        "hark.toml",
        &format!(
            "[pipeline]\nstatus_interval = 0.5\n\n[http]\nenabled = true\nlisten = \"127.0.0.1:{port}\"\n{http_extra}\n"
        ),
    );
    let mut run = HarkRun::new(&config).arg("--input").arg(input);
    for (k, v) in env {
        run = run.env(k, v);
    }
    let daemon = run.spawn();
    let web = Web {
        daemon,
        base: format!("http://127.0.0.1:{port}"),
        _dir: dir,
    };
    web.wait_until_up();
    web
}

/// An answer: status code, headers (lower-case names) and body.
struct Answer {
    code: u16,
    headers: String,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// `curl` with `args`, at most `secs` seconds.
fn curl_raw(args: &[&str], secs: u32) -> Output {
    require("curl");
    Command::new("curl")
        .args(["-sS", "-i", "--max-time", &secs.to_string()])
        .args(args)
        .output()
        .expect("run curl")
}

fn curl(args: &[&str]) -> Answer {
    parse(&curl_raw(args, 5))
}

fn parse(out: &Output) -> Answer {
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| {
            panic!(
                "no HTTP answer: {text} {}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    Answer {
        code,
        headers: head.to_owned(),
        body: body.to_owned(),
    }
}

impl Web {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn get(&self, path: &str) -> Answer {
        curl(&[&self.url(path)])
    }

    fn wait_until_up(&self) {
        wait_answering(&self.url("/healthz"));
    }

    /// Waits for the first event of the recording; returns its name.
    fn first_event(&mut self) -> String {
        let rec = self
            .daemon
            .wait_for(Duration::from_secs(20), |r| {
                matches!(r, Record::EventStart { .. })
            })
            .expect("the recording gives an event");
        rec.event_name().unwrap().to_owned()
    }

    /// SSE messages (the `data:` payloads, parsed) read from `path` for `secs` seconds.
    fn stream(&self, path: &str, secs: u32) -> (Answer, Vec<Value>) {
        let out = curl_raw(&["-N", &self.url(path)], secs);
        let answer = parse(&out);
        let messages = answer
            .body
            .lines()
            .filter_map(|l| l.strip_prefix("data: ").or(l.strip_prefix("data:")))
            .map(|d| serde_json::from_str(d).unwrap_or_else(|e| panic!("{e}: {d}")))
            .collect();
        (answer, messages)
    }

    /// The value of sample `name` (no labels) in a `/metrics` answer.
    fn metric(&self, name: &str) -> f64 {
        let body = self.get("/metrics").body;
        body.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in:\n{body}"))
    }
}

/// Knocks 3 s apart, long enough to still play while the tests look.
fn knocks(name: &str) -> Option<PathBuf> {
    or_skip(door5()).map(|d| knocks_after_a_second(&d, 8, name))
}

#[test]
fn the_api_answers_with_its_shapes_filters_and_headers() {
    let Some(input) = knocks("http_api.wav") else {
        return;
    };
    let mut web = start(&input, "", &[]);
    let name = web.first_event();

    let page = web.get("/");
    assert_eq!(page.code, 200);
    assert!(page.body.contains("<canvas id=\"spectrogram\""));
    let csp = page.header("content-security-policy").expect("a CSP");
    assert!(
        csp.contains("script-src 'self'") && csp.contains("default-src 'none'"),
        "{csp}"
    );
    assert_eq!(page.header("x-content-type-options"), Some("nosniff"));

    let status = web.get("/api/status").json();
    assert_eq!(status["model"]["name"], "ced-tiny");
    assert!(
        status["source"].as_str().unwrap().contains("http_api.wav"),
        "{status}"
    );
    assert!(
        status["status"]["windows"].as_u64().unwrap() > 0,
        "{status}"
    );
    assert!(status["level_db"].is_number(), "{status}");
    assert!(status["uptime_seconds"].is_number());

    let events = web.get("/api/events").json();
    let list = events["events"].as_array().unwrap();
    assert!(
        list.iter()
            .any(|e| e["group"].as_str().or(e["label"].as_str()) == Some(name.as_str())),
        "{events}"
    );
    let none = web.get("/api/events?label=NoSuchLabel").json();
    assert_eq!(none["events"].as_array().unwrap().len(), 0);
    let later = web.get("/api/events?since=2999-01-01T00:00:00Z").json();
    assert_eq!(later["events"].as_array().unwrap().len(), 0);
    for bad in [
        "/api/events?limit=0",
        "/api/events?limit=x",
        "/api/events?lable=Knock",
        "/api/events?since=yesterday",
    ] {
        assert_eq!(web.get(bad).code, 400, "{bad}");
    }
    assert_eq!(web.get("/nowhere").code, 404);
    let health = web.get("/healthz");
    assert_eq!(health.code, 200);
    assert_eq!(health.json()["ok"], true);
    web.daemon
        .terminate(Duration::from_secs(15))
        .assert_success();
}

#[test]
fn the_stream_carries_the_sockets_records_in_order_with_its_filters() {
    let Some(input) = knocks("http_stream.wav") else {
        return;
    };
    let web = start(&input, "", &[]);
    let (answer, all) = web.stream("/api/stream?subscribe=prediction,status", 3);
    assert_eq!(answer.header("content-type"), Some("text/event-stream"));
    assert_eq!(all[0]["type"], "hello", "the hello comes first");
    assert_eq!(all[0]["model"], "ced-tiny");
    let starts: Vec<f64> = all
        .iter()
        .filter(|m| m["type"] == "prediction")
        .map(|m| m["start"].as_f64().unwrap())
        .collect();
    assert!(starts.len() >= 3, "predictions for 3 s: {starts:?}");
    assert!(
        starts.windows(2).all(|w| w[0] < w[1]),
        "in order: {starts:?}"
    );
    assert!(all.iter().any(|m| m["type"] == "status"));

    let (_, only_status) = web.stream("/api/stream?subscribe=status", 2);
    assert!(
        only_status[1..].iter().all(|m| m["type"] == "status"),
        "{only_status:?}"
    );
    assert!(only_status.len() >= 2);

    let bad = web.get("/api/stream?subscribe=events");
    assert_eq!(bad.code, 400);
    assert!(bad.body.contains("unknown record type"), "{}", bad.body);
    let bad = web.get("/api/stream?labels=Knok");
    assert_eq!(bad.code, 400);
    assert!(bad.body.contains("unknown label"), "{}", bad.body);
    web.daemon
        .terminate(Duration::from_secs(15))
        .assert_success();
}

#[test]
fn metrics_parse_with_promtool_and_move_as_the_recording_plays() {
    let Some(input) = knocks("http_metrics.wav") else {
        return;
    };
    require("promtool");
    let mut web = start(&input, "", &[]);
    web.first_event();
    let first = web.metric("hark_windows_total");
    let answer = web.get("/metrics");
    let mut check = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run promtool");
    use std::io::Write;
    check
        .stdin
        .take()
        .unwrap()
        .write_all(answer.body.as_bytes())
        .unwrap();
    let out = check.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        answer.body
    );
    for name in [
        "hark_skipped_windows_total",
        "hark_ring_overrun_samples_total",
        "hark_level_dbfs",
        "hark_inference_seconds_count",
        "hark_process_cpu_seconds_total",
        "hark_process_resident_memory_bytes",
    ] {
        assert!(web.metric(name) >= f64::MIN, "{name}");
    }
    assert!(
        answer.body.contains("hark_events_started_total{label="),
        "{}",
        answer.body
    );
    assert!(answer
        .body
        .contains("hark_sink_lagged_records_total{sink=\"http\"}"));
    std::thread::sleep(Duration::from_millis(1500));
    let later = web.metric("hark_windows_total");
    assert!(later > first, "windows {first} then {later}");
    assert!(web.metric("hark_inference_seconds_count") > 0.0);
    web.daemon
        .terminate(Duration::from_secs(15))
        .assert_success();
}

#[test]
fn a_token_is_required_when_set_by_header_query_or_cookie() {
    let Some(input) = knocks("http_token.wav") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "s3cret-Token\n").unwrap();
    let web = start_with_token(&input, &token);
    let status = web.url("/api/status");
    let none = curl(&[&status]);
    assert_eq!(none.code, 401);
    assert!(none.header("www-authenticate").is_some());
    assert_eq!(
        curl(&["-H", "Authorization: Bearer wrong", &status]).code,
        401
    );
    assert_eq!(curl(&[&web.url("/api/status?token=wrong")]).code, 401);
    assert_eq!(
        curl(&["-H", "Authorization: Bearer s3cret-Token", &status]).code,
        200
    );
    let by_query = curl(&[&web.url("/?token=s3cret-Token")]);
    assert_eq!(by_query.code, 200);
    let cookie = by_query
        .header("set-cookie")
        .expect("the query sets a cookie");
    assert!(
        cookie.starts_with("hark_token=s3cret-Token") && cookie.contains("HttpOnly"),
        "{cookie}"
    );
    assert_eq!(
        curl(&["-H", "Cookie: hark_token=s3cret-Token", &status]).code,
        200
    );
    assert_eq!(curl(&["-H", "Cookie: hark_token=nope", &status]).code, 401);
    web.daemon
        .terminate(Duration::from_secs(15))
        .assert_success();
}

fn start_with_token(input: &Path, token: &Path) -> Web {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = write_config(
        dir.path(),
        "hark.toml",
        &format!(
            "[http]\nenabled = true\nlisten = \"127.0.0.1:{port}\"\ntoken_file = {:?}\n",
            token.to_str().unwrap()
        ),
    );
    let daemon = HarkRun::new(&config).arg("--input").arg(input).spawn();
    let web = Web {
        daemon,
        base: format!("http://127.0.0.1:{port}"),
        _dir: dir,
    };
    // Up means answering, here with 401.
    web.wait_until_up();
    web
}

#[test]
fn bodies_are_refused_and_clip_names_cannot_leave_the_folder() {
    let Some(input) = knocks("http_refuse.wav") else {
        return;
    };
    let web = start(&input, "", &[]);
    let status = web.url("/api/status");
    assert_eq!(curl(&["-X", "POST", &status]).code, 405);
    assert_eq!(curl(&["-X", "POST", "--data", "x=1", &status]).code, 413);
    assert_eq!(curl(&["-X", "GET", "--data", "x=1", &status]).code, 413);
    assert_eq!(curl(&["-X", "DELETE", &web.url("/api/events")]).code, 405);
    for path in [
        "/clips/x.wav",
        "/clips/..%2F..%2Fetc%2Fpasswd",
        "/clips/%2e%2e%2fCargo.toml",
        "/clips/.hidden.wav",
        "/clips/..",
        "/clips/%2Fetc%2Fpasswd",
    ] {
        let a = curl(&["--path-as-is", &web.url(path)]);
        assert_eq!(a.code, 404, "{path}: {}", a.body);
        assert!(!a.body.contains("root:"), "{path}");
    }
    let a = curl(&["--path-as-is", &web.url("/clips/../Cargo.toml")]);
    assert_eq!(a.code, 404, "{}", a.body);
    web.daemon
        .terminate(Duration::from_secs(15))
        .assert_success();
}

#[test]
fn max_clients_is_enforced_with_a_clear_503() {
    let Some(input) = knocks("http_clients.wav") else {
        return;
    };
    let web = start(&input, "max_clients = 2", &[]);
    let hold = |_: usize| -> Child {
        Command::new("curl")
            .args(["-sS", "-N", "--max-time", "15", &web.url("/api/stream")])
            .stdout(Stdio::null())
            .spawn()
            .expect("run curl")
    };
    let mut streams: Vec<Child> = (0..2).map(hold).collect();
    let deadline = Instant::now() + Duration::from_secs(10);
    let refused = loop {
        let a = web.get("/api/status");
        if a.code == 503 || Instant::now() > deadline {
            break a;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(refused.code, 503, "{}", refused.body);
    assert!(
        refused.body.contains("http.max_clients"),
        "{}",
        refused.body
    );
    assert_eq!(refused.header("retry-after"), Some("5"));
    for s in &mut streams {
        s.kill().unwrap();
        s.wait().unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while web.get("/api/status").code != 200 {
        assert!(Instant::now() < deadline, "clients were not let go");
        std::thread::sleep(Duration::from_millis(100));
    }
    // Counted, and reported with the next status.
    let refused = |body: &str| {
        body.lines()
            .find_map(|l| {
                l.strip_prefix("hark_http_refused_requests_total ")?
                    .parse::<f64>()
                    .ok()
            })
            .is_some_and(|n| n >= 1.0)
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while !refused(&web.get("/metrics").body) {
        assert!(Instant::now() < deadline, "the refusal was not counted");
        std::thread::sleep(Duration::from_millis(200));
    }
    web.daemon
        .terminate(Duration::from_secs(15))
        .assert_success();
}

#[test]
fn healthz_answers_503_while_the_pipeline_stalls() {
    let Some(input) = knocks("http_stall.wav") else {
        return;
    };
    let web = start(
        &input,
        "stall_timeout = 1.0",
        &[("HARK_FAULT_STALL", "6:4")],
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut codes = Vec::new();
    while Instant::now() < deadline {
        let code = web.get("/healthz").code;
        if codes.last() != Some(&code) {
            codes.push(code);
        }
        if codes == [200, 503, 200] {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(codes, [200, 503, 200], "healthy, stalled, healthy again");
    web.daemon
        .terminate(Duration::from_secs(15))
        .assert_success();
}

#[test]
fn the_spectrogram_streams_columns_only_while_watched() {
    let Some(input) = knocks("http_spectro.wav") else {
        return;
    };
    let web = start(&input, "", &[]);
    assert_eq!(
        web.get("/api/status").json()["http"]["spectrogram_viewers"],
        0
    );
    let (answer, columns) = web.stream("/api/spectrogram", 3);
    assert!(answer.body.contains("event: mel"), "{}", answer.body);
    assert!(columns.len() >= 3, "columns for 3 s: {}", columns.len());
    let c = &columns[0];
    assert_eq!(c["n_mels"], 64);
    assert!((c["step"].as_f64().unwrap() - 0.01).abs() < 1e-9);
    let bytes = c["data"].as_str().unwrap().len() / 4 * 3;
    assert!(
        bytes >= 64 * 40,
        "about 50 columns of 64 bands: {bytes} bytes"
    );
    assert_eq!(
        web.get("/api/status").json()["http"]["spectrogram_viewers"],
        0,
        "none once closed"
    );
    web.daemon
        .terminate(Duration::from_secs(15))
        .assert_success();
}

#[test]
fn chromium_shows_the_level_a_top_label_and_an_event_while_a_recording_plays() {
    let Some(input) = knocks("http_chromium.wav") else {
        return;
    };
    let mut web = start(&input, "", &[]);
    let name = web.first_event();
    let mut browser = Chromium::open(&web.url("/"), 1100, 1500);
    let event = format!("<strong class=\"name\">{name}</strong>");
    // The page's scripts fill it from /api/status and /api/events, then follow the streams.
    let deadline = Instant::now() + Duration::from_secs(20);
    let dom = loop {
        let dom = browser.dom();
        let history = dom.split("<ul id=\"history\"").nth(1).unwrap_or("");
        let shown = level_of(&dom).is_some()
            && dom.contains("<span class=\"label\">")
            && history.contains(&event)
            && dom.contains("columns/s");
        if shown || Instant::now() > deadline {
            break dom;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    assert!(
        level_of(&dom).is_some_and(|l| l < 0.0),
        "a level in dBFS: {dom}"
    );
    assert!(dom.contains("<span class=\"label\">"), "a top label: {dom}");
    let history = dom.split("<ul id=\"history\"").nth(1).unwrap_or("");
    assert!(history.contains(&event), "the event {name}: {dom}");
    assert!(
        dom.contains("mel bands"),
        "spectrogram columns arrived: {dom}"
    );
    assert!(
        dom.contains("class=\"conn live\""),
        "the stream is live: {dom}"
    );
    let shot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png");
    browser.screenshot(&shot);
    let png = std::fs::read(&shot).expect("the screenshot was saved");
    assert_eq!(&png[1..4], b"PNG");
    eprintln!("screenshot: {}", shot.display());
    drop(browser);
    web.daemon
        .terminate(Duration::from_secs(15))
        .assert_success();
}

/// The level the page shows, in dBFS.
fn level_of(dom: &str) -> Option<f64> {
    dom.split("<span id=\"level\">")
        .nth(1)?
        .split(" dBFS")
        .next()?
        .parse()
        .ok()
}

/// Waits up to 20 s until `url` answers with any HTTP status (curl without `--fail` exits 0
/// on a 401 or a 503 too).
fn wait_answering(url: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !curl_raw(&[url], 2).status.success() {
        assert!(Instant::now() < deadline, "nothing answers at {url}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_reload_moves_the_server_and_keeps_it_when_the_new_address_is_taken() {
    let Some(input) = knocks("http_reload.wav") else {
        return;
    };
    let mut web = start(&input, "", &[]);
    let config = web._dir.path().join("hark.toml");
    let listen = |port: u16| format!("listen = \"127.0.0.1:{port}\"");
    let old_port: u16 = web.base.rsplit(':').next().unwrap().parse().unwrap();
    // SAFETY: kill(2) on the pid of our own running child.
    let hup = |pid| assert_eq!(unsafe { libc::kill(pid, libc::SIGHUP) }, 0);

    // Moved: the new port answers, the old one is closed.
    let moved = free_port();
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, text.replace(&listen(old_port), &listen(moved))).unwrap();
    hup(web.daemon.pid());
    let moved_url = format!("http://127.0.0.1:{moved}/healthz");
    wait_answering(&moved_url);
    let old = curl_raw(&[&web.url("/healthz")], 2);
    assert_eq!(old.status.code(), Some(7), "the old port still answers");

    // Taken: the reload fails, is counted, and the running server stays.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_port = taken.local_addr().unwrap().port();
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, text.replace(&listen(moved), &listen(taken_port))).unwrap();
    hup(web.daemon.pid());
    let failed = web.daemon.wait_for(Duration::from_secs(20), |r| match r {
        Record::Status { sinks: Some(s), .. } => s
            .get("http")
            .and_then(|h| h.get("reload_failed"))
            .is_some_and(|&n| n >= 1),
        _ => false,
    });
    assert!(failed.is_some(), "no status counted the failed reload");
    assert_eq!(
        curl(&[&moved_url]).code,
        200,
        "the running server was not kept"
    );
    let finished = web.daemon.terminate(Duration::from_secs(15));
    assert!(
        finished
            .stderr
            .contains(&format!("cannot listen on 127.0.0.1:{taken_port}")),
        "{}",
        finished.stderr
    );
    finished.assert_success();
    drop(taken);
}
