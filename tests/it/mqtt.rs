//! The MQTT sink against a real `mosquitto`, seen through `mosquitto_sub`: discovery, events
//! from a real recording, states, the Last Will, a broker that comes late, a wrong password,
//! and `check-config` on bad values. Commands, the birth message, TLS, a broker outage and
//! `hark subscribe --mqtt` are in the modules below.

mod commands;
mod outage;
mod subscribe;
mod tls;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hark::record::Record;
use serde_json::Value;

use crate::common::cli::{hark, stderr};
use crate::common::hark::{write_config, HarkRun};
use crate::common::mosquitto::{password_file, Mosquitto, Sub};
use crate::common::shared::shared_or_skip;
use crate::common::wav::write_sine;

const ALARM: &str = "data/recordings/first_alert_7010b.wav";

fn config(dir: &Path, url: &str, extra: &str) -> PathBuf {
    write_config(
        dir,
        "hark.toml",
        &format!("[mqtt]\nenabled = true\nurl = {url:?}\nnode = \"pi\"\n{extra}\n"),
    )
}

/// `hark run --input FILE --exit-at-end --fast` with `config`, to its end.
fn run_fast(config: &Path, input: &Path) -> crate::common::hark::Finished {
    HarkRun::new(config)
        .arg("--input")
        .arg(input)
        .args(&["--exit-at-end", "--fast"])
        .run_to_end(Duration::from_secs(25))
}

fn event_ids(records: &[Record]) -> Vec<(String, u64)> {
    records
        .iter()
        .filter_map(|r| match r {
            Record::EventStart { id, .. } | Record::EventEnd { id, .. } => {
                Some((r.kind().to_owned(), *id))
            }
            _ => None,
        })
        .collect()
}

fn sub_event_ids(sub: &Sub) -> Vec<(String, u64)> {
    sub.messages()
        .iter()
        .filter(|(t, _)| t == "hark/pi/event")
        .map(|(_, p)| {
            let v: Value = serde_json::from_str(p).expect("event payload is JSON");
            assert_eq!(v["node"], "pi", "{p}");
            (
                v["type"].as_str().unwrap().to_owned(),
                v["id"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn a_recording_gives_discovery_events_in_order_and_states_on_then_off() {
    let Some(alarm) = shared_or_skip(ALARM) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start(dir.path(), "allow_anonymous true");
    let sub = Sub::start(broker.port, &["hark/#", "homeassistant/#"]);
    let conf = config(dir.path(), &broker.url(), "");
    let run = run_fast(&conf, &alarm);
    run.assert_success();
    let want = event_ids(&run.records);
    assert!(!want.is_empty(), "the alarm recording gives events");
    assert!(
        sub.wait_for(Duration::from_secs(5), |t, p| t == "hark/pi/availability"
            && p == "offline")
    );
    assert_eq!(
        sub_event_ids(&sub),
        want,
        "every event, in order, with node"
    );
    let smoke: Vec<String> = sub
        .messages()
        .into_iter()
        .filter(|(t, _)| t == "hark/pi/label/smoke_alarm")
        .map(|(_, p)| p)
        .collect();
    assert_eq!(
        smoke,
        ["OFF", "ON", "OFF"],
        "state starts OFF, goes ON, then OFF"
    );

    // Retained discovery: a client that comes later still gets every config.
    let late = Sub::start(broker.port, &["homeassistant/#"]);
    std::thread::sleep(Duration::from_millis(500));
    let configs = late.messages();
    assert!(configs.len() >= 6, "{configs:?}");
    let mut ids = HashSet::new();
    for (topic, payload) in &configs {
        let v: Value = serde_json::from_str(payload).unwrap_or_else(|e| panic!("{topic}: {e}"));
        let component = topic.split('/').nth(1).unwrap();
        let required: &[&str] = match component {
            "binary_sensor" | "sensor" => &["state_topic"],
            "event" => &["state_topic", "event_types"],
            other => panic!("unexpected component {other}"),
        };
        for key in required
            .iter()
            .chain(&["unique_id", "availability_topic", "device", "origin"])
        {
            assert!(!v[key].is_null(), "{topic} lacks {key}");
        }
        assert!(
            ids.insert(v["unique_id"].as_str().unwrap().to_owned()),
            "unique ids"
        );
        assert!(topic.ends_with("/pi/") || topic.contains("/pi/"), "{topic}");
    }
    let smoke_cfg = configs
        .iter()
        .find(|(t, _)| t == "homeassistant/binary_sensor/pi/smoke_alarm/config")
        .expect("the smoke alarm's binary sensor");
    assert!(smoke_cfg.1.contains("\"device_class\":\"smoke\""));
}

#[test]
fn kill_9_makes_the_broker_publish_the_last_will() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start(dir.path(), "allow_anonymous true");
    let sub = Sub::start(broker.port, &["hark/pi/availability"]);
    let wav = dir.path().join("tone.wav");
    write_sine(&wav, 16_000, 30.0, 440.0, 0.1);
    let conf = config(dir.path(), &broker.url(), "keepalive = 5.0");
    let mut daemon = HarkRun::new(&conf).arg("--input").arg(&wav).spawn();
    assert!(
        sub.wait_for(Duration::from_secs(10), |_, p| p == "online"),
        "online"
    );
    // SAFETY: kill(2) on the pid of a child this test spawned.
    unsafe { libc::kill(daemon.pid(), libc::SIGKILL) };
    assert!(
        sub.wait_for(Duration::from_secs(10), |_, p| p == "offline"),
        "the broker published the Last Will: {:?}",
        sub.messages()
    );
    assert!(!daemon.is_running());
}

#[test]
fn events_while_the_broker_is_down_arrive_in_order_once_it_starts() {
    let Some(alarm) = shared_or_skip(ALARM) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // The subscriber's session is made first and kept (persistence) while the broker is
    // down, so it gets every event whenever hark delivers it.
    let mut broker = Mosquitto::start(
        dir.path(),
        &format!(
            "user root\nallow_anonymous true\npersistence true\npersistence_location {}/",
            dir.path().display()
        ),
    );
    let sub = std::sync::Arc::new(Sub::start_with(
        broker.port,
        &["hark/pi/event"],
        &["-c", "-i", "hark-test-late"],
    ));
    broker.terminate();
    let conf = config(dir.path(), &broker.url(), "");
    let audio = commands::pcm(&alarm);
    let broker = std::sync::Arc::new(std::sync::Mutex::new(broker));
    let (b, s) = (broker.clone(), sub.clone());
    let run = HarkRun::new(&conf)
        .args(&["--input", "-", "--exit-at-end"])
        .run_to_end_feeding(Duration::from_secs(90), move |mut stdin| {
            // The write returns once hark has read most of it: it is running, and its
            // first connection was refused.
            let _ = std::io::Write::write_all(&mut stdin, &audio);
            b.lock().unwrap().restart();
            assert!(
                s.wait_for(Duration::from_secs(30), |_, _| s
                    .payloads("hark/pi/event")
                    .len()
                    >= 2),
                "the queued events arrive once the broker is up"
            );
        });
    run.assert_success();
    let want = event_ids(&run.records);
    assert!(!want.is_empty());
    assert_eq!(
        sub_event_ids(&sub),
        want,
        "queued events, in order, once each"
    );
    let warned = run.stderr.matches("MQTT connection failed").count();
    assert_eq!(warned, 1, "one line for the cause:\n{}", run.stderr);
    assert!(run.stderr.contains("connection refused"), "{}", run.stderr);
    drop(broker);
}

#[test]
fn a_wrong_password_is_one_clear_line_and_the_other_sinks_keep_running() {
    let Some(alarm) = shared_or_skip(ALARM) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let passwd = password_file(dir.path(), "hark", "right");
    let broker = Mosquitto::start(
        dir.path(),
        &format!("allow_anonymous false\npassword_file {}", passwd.display()),
    );
    let conf = config(
        dir.path(),
        &broker.url(),
        "username = \"hark\"\npassword = \"wrong\"",
    );
    let run = run_fast(&conf, &alarm);
    run.assert_success();
    assert!(
        !event_ids(&run.records).is_empty(),
        "stdout still got its events"
    );
    let lines: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.contains("MQTT connection failed") && l.contains("refused the login"))
        .collect();
    assert_eq!(
        lines.len(),
        1,
        "one line, not one per retry:\n{}",
        run.stderr
    );
}

#[test]
fn check_config_names_each_bad_mqtt_key() {
    let dir = tempfile::tempdir().unwrap();
    let conf = write_config(
        dir.path(),
        "bad.toml",
        "[mqtt]\nenabled = true\nurl = \"http://broker\"\nqos = 2\nqueue = 0\nnode = \"Kitchen Pi\"\nca_file = \"/nonexistent/ca.pem\"\n",
    );
    let out = hark(&["check-config", conf.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = stderr(&out);
    for key in [
        "mqtt.url = \"http://broker\"",
        "mqtt.qos = 2",
        "mqtt.queue = 0",
        "mqtt.node = ",
        "mqtt.ca_file = ",
    ] {
        assert!(err.contains(key), "{key} in:\n{err}");
    }
    let conf = write_config(
        dir.path(),
        "tls.toml",
        "[mqtt]\nenabled = true\nurl = \"mqtts://broker\"\nca_file = \"/nonexistent/ca.pem\"\n",
    );
    let err = stderr(&hark(&["check-config", conf.to_str().unwrap()]));
    assert!(
        err.contains("mqtt.ca_file = /nonexistent/ca.pem: cannot be read"),
        "{err}"
    );
}
