//! `hark subscribe --mqtt URL` against a real mosquitto: the socket subscriber's lines for one
//! node, `[node]` before each line for every node, raw payloads with `--json`, label filters.

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hark::record::Record;
use serde_json::Value;

use super::{config, event_ids, run_fast, ALARM};
use crate::common::hark::command;
use crate::common::mosquitto::Mosquitto;
use crate::common::shared::shared_or_skip;

/// A running `hark subscribe`, its stdout lines collected.
struct Subscriber {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Subscriber {
    fn start(args: &[&str]) -> Subscriber {
        let mut child = command()
            .arg("subscribe")
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start hark subscribe");
        let out = child.stdout.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        Subscriber { child, lines }
    }

    /// Event lines (status lines come at times of their own).
    fn events(&self) -> Vec<String> {
        let lines = self.lines.lock().unwrap().clone();
        lines
            .into_iter()
            .filter(|l| !l.contains("status"))
            .collect()
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_until(timeout: Duration, done: impl Fn() -> bool) {
    let end = Instant::now() + timeout;
    while !done() && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn subscribe_mqtt_prints_the_socket_subscribers_lines_for_one_node_or_every_node() {
    let Some(alarm) = shared_or_skip(ALARM) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start(dir.path(), "allow_anonymous true");
    let url = broker.url();
    let one = Subscriber::start(&["--mqtt", &url, "--node", "pi"]);
    let every = Subscriber::start(&["--mqtt", &url]);
    let json = Subscriber::start(&["--mqtt", &url, "--json", "-l", "smoke_alarm"]);
    let knock = Subscriber::start(&["--mqtt", &url, "--json", "-l", "Knock"]);
    std::thread::sleep(Duration::from_millis(700));
    let run = run_fast(&config(dir.path(), &url, ""), &alarm);
    run.assert_success();
    let events: Vec<&Record> = run
        .records
        .iter()
        .filter(|r| r.event_name().is_some())
        .collect();
    assert!(!events.is_empty());
    // What the socket subscriber prints for the same records.
    let want: Vec<String> = events
        .iter()
        .map(|r| hark::subscribe::readable(&serde_json::to_string(r).unwrap()).unwrap())
        .collect();
    wait_until(Duration::from_secs(10), || {
        json.events().len() >= want.len()
    });
    wait_until(Duration::from_secs(5), || {
        every.events().len() >= want.len()
    });
    assert_eq!(
        one.events(),
        want,
        "one node: the socket subscriber's lines"
    );
    let tagged: Vec<String> = want.iter().map(|l| format!("[pi] {l}")).collect();
    assert_eq!(
        every.events(),
        tagged,
        "every node: each line with its node"
    );
    let ids: Vec<(String, u64)> = json
        .events()
        .iter()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            assert_eq!(v["node"], "pi");
            (
                v["type"].as_str().unwrap().into(),
                v["id"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        ids,
        event_ids(&run.records),
        "--json -l smoke_alarm: every event"
    );
    assert!(knock.events().is_empty(), "-l Knock: none of them");
}
