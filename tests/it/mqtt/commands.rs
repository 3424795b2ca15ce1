//! Commands on `hark/<node>/set` sent with `mosquitto_pub`, answers and mute states seen with
//! `mosquitto_sub`: a mute stops a real recording's events, bad payloads get an error reply
//! naming the key while hark keeps running, and the overrides survive a SIGHUP.

use std::io::Write;
use std::path::Path;
use std::process::ChildStdin;
use std::sync::Arc;
use std::time::Duration;

use hark::record::Record;
use serde_json::Value;

use super::{config, ALARM};
use crate::common::hark::{write_config, HarkRun};
use crate::common::mosquitto::{publish, publish_file, Mosquitto, Sub};
use crate::common::shared::shared_or_skip;
use crate::common::wav::write_sine;

const ALARM2: &str = "data/recordings/first_alert_sa302.wav";

/// `path` as 16 kHz mono s16le, for `--input -`.
pub(super) fn pcm(path: &Path) -> Vec<u8> {
    let samples = hark::audio::load_mono(path, 16_000).expect("decode the recording");
    samples
        .iter()
        .flat_map(|s| ((s.clamp(-1.0, 1.0) * 32767.0) as i16).to_le_bytes())
        .collect()
}

/// Seconds of silence as s16le at 16 kHz.
pub(super) fn silence(seconds: usize) -> Vec<u8> {
    vec![0u8; seconds * 16_000 * 2]
}

/// Publishes `payload` on `hark/pi/set` and waits for the answer carrying `id`.
fn command(port: u16, sub: &Sub, id: u64, payload: &str) -> Value {
    publish(port, "hark/pi/set", payload);
    answer(sub, id)
}

fn answer(sub: &Sub, id: u64) -> Value {
    let with_id = |p: &str| {
        serde_json::from_str::<Value>(p)
            .ok()
            .filter(|v| v["id"] == id)
    };
    assert!(
        sub.wait_for(Duration::from_secs(10), |t, p| t == "hark/pi/set/result"
            && with_id(p).is_some()),
        "no answer to command {id}: {:?}",
        sub.messages()
    );
    let payloads = sub.payloads("hark/pi/set/result");
    payloads.iter().find_map(|p| with_id(p)).unwrap()
}

fn group_starts(records: &[Record], group: &str) -> Vec<f64> {
    records
        .iter()
        .filter_map(|r| match r {
            Record::EventStart { start, .. } if r.group() == Some(group) => Some(*start),
            _ => None,
        })
        .collect()
}

/// Writes `bytes` to hark's stdin (a closed pipe ends the feed: hark has stopped).
fn feed(stdin: &mut ChildStdin, bytes: &[u8]) {
    let _ = stdin.write_all(bytes);
}

#[test]
fn a_set_command_mutes_a_group_and_bad_ones_get_an_error_naming_the_key() {
    let (Some(muted_alarm), Some(unmuted_alarm)) = (shared_or_skip(ALARM), shared_or_skip(ALARM2))
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start(dir.path(), "allow_anonymous true");
    let port = broker.port;
    let sub = Arc::new(Sub::start(port, &["hark/pi/#"]));
    let conf = config(dir.path(), &broker.url(), "commands = true");
    let huge = dir.path().join("huge.json");
    std::fs::write(
        &huge,
        format!(r#"{{"id": 9, "mute": "{}"}}"#, "x".repeat(100_000)),
    )
    .unwrap();
    let first = pcm(&muted_alarm);
    let first_len = first.len() as f64 / 32_000.0;
    let (second, s) = (pcm(&unmuted_alarm), sub.clone());
    let run = HarkRun::new(&conf)
        .args(&["--input", "-", "--exit-at-end"])
        .run_to_end_feeding(Duration::from_secs(90), move |mut stdin| {
            assert!(
                s.wait_for(Duration::from_secs(10), |t, p| t == "hark/pi/availability"
                    && p == "online")
            );
            let ok = command(port, &s, 1, r#"{"id": 1, "mute": "smoke_alarm"}"#);
            assert_eq!(ok["ok"], true, "{ok}");
            assert!(s.wait_for(Duration::from_secs(5), |t, p| t
                == "hark/pi/mute/smoke_alarm"
                && p == "ON"));
            // The first alarm while muted, then silence so that every window of it is
            // scored before the unmute (the pipe and the ring hold a few seconds).
            feed(&mut stdin, &first);
            feed(&mut stdin, &silence(12));
            check_bad_commands(port, &s, &huge);
            let ok = command(port, &s, 3, r#"{"id": 3, "unmute": ["smoke_alarm"]}"#);
            assert_eq!(ok["ok"], true, "{ok}");
            feed(&mut stdin, &second);
        });
    run.assert_success();
    let starts = group_starts(&run.records, "smoke_alarm");
    assert!(!starts.is_empty(), "the unmuted alarm gives events");
    assert!(
        starts.iter().all(|s| *s > first_len),
        "no smoke alarm event while muted (the first file is {first_len} s): {starts:?}"
    );
    assert_eq!(
        sub.payloads("hark/pi/mute/smoke_alarm")
            .last()
            .map(String::as_str),
        Some("OFF")
    );
}

/// Each bad payload gets `ok: false` with the key; the daemon keeps running.
fn check_bad_commands(port: u16, sub: &Sub, huge: &Path) {
    let cases = [
        (
            2,
            r#"{"id": 2, "labels": {"smoke_alarm": {"on": 1.5}}}"#,
            "decision.labels.\"smoke_alarm\".on = 1.5: must be between 0 and 1",
        ),
        (
            4,
            r#"{"id": 4, "mute": "Smoke alarm"}"#,
            "decision.mute = \"Smoke alarm\": unknown label",
        ),
        (5, r#"{"id": 5, "mute": 3}"#, "set.mute = 3: wrong type"),
        (
            6,
            r#"{"id": 6, "volume": 11}"#,
            "set.volume = 11: unknown key",
        ),
        (
            7,
            r#"{"id": 7, "level_gate": 20}"#,
            "pipeline.level_gate = 20",
        ),
    ];
    for (id, payload, want) in cases {
        let v = command(port, sub, id, payload);
        assert_eq!(v["ok"], false, "{v}");
        let err = v["error"].as_str().unwrap();
        assert!(err.starts_with(want), "{err}\nwanted: {want}");
    }
    publish(port, "hark/pi/set", "mute everything");
    assert!(
        sub.wait_for(Duration::from_secs(10), |t, p| t == "hark/pi/set/result"
            && p.contains("not JSON"))
    );
    publish_file(port, "hark/pi/set", huge);
    assert!(
        sub.wait_for(Duration::from_secs(10), |t, p| t == "hark/pi/set/result"
            && p.contains("payload too large"))
    );
}

#[test]
fn overrides_survive_a_sighup_and_a_reload_clears_the_discovery_of_what_it_removed() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start(dir.path(), "allow_anonymous true");
    let port = broker.port;
    let sub = Sub::start(port, &["hark/pi/#", "homeassistant/#"]);
    let wav = dir.path().join("tone.wav");
    write_sine(&wav, 16_000, 60.0, 440.0, 0.1);
    let both =
        "commands = true\n[decision]\nlisten = [\"Knock\", \"Smoke detector, smoke alarm\"]\n";
    let conf = config(dir.path(), &broker.url(), both);
    let daemon = HarkRun::new(&conf).arg("--input").arg(&wav).spawn();
    let knock_cfg = "homeassistant/binary_sensor/pi/knock/config";
    let knock_switch = "homeassistant/switch/pi/mute_knock/config";
    assert!(
        sub.wait_for(Duration::from_secs(10), |t, p| t == knock_switch
            && !p.is_empty())
    );
    let v = command(
        port,
        &sub,
        1,
        r#"{"id": 1, "mute": ["Knock", "smoke_alarm"], "level_gate": -70}"#,
    );
    assert_eq!(v["ok"], true, "{v}");
    assert!(
        sub.wait_for(Duration::from_secs(5), |t, p| t == "hark/pi/mute/knock"
            && p == "ON")
    );

    // The birth message of Home Assistant: discovery and states again.
    let before = sub.payloads(knock_cfg).len();
    publish(port, "homeassistant/status", "online");
    assert!(
        sub.wait_for(Duration::from_secs(5), |_, _| sub.payloads(knock_cfg).len()
            > before),
        "discovery sent again after the birth message"
    );

    // A reload that stops listening for Knock: its entities are cleared; the mute stays.
    let smoke_mute = "hark/pi/mute/smoke_alarm";
    assert!(sub.wait_for(Duration::from_secs(5), |t, p| t == smoke_mute && p == "ON"));
    let muted_before = sub.payloads(smoke_mute).len();
    write_config(
        dir.path(),
        "hark.toml",
        &format!(
            "[mqtt]\nenabled = true\nurl = {:?}\nnode = \"pi\"\ncommands = true\n[decision]\nlisten = [\"Smoke detector, smoke alarm\"]\n",
            broker.url()
        ),
    );
    // SAFETY: kill(2) on the pid of a child this test spawned.
    unsafe { libc::kill(daemon.pid(), libc::SIGHUP) };
    assert!(
        sub.wait_for(Duration::from_secs(10), |t, p| t == knock_cfg
            && (p.is_empty() || p == "(null)")),
        "the removed sound's config is cleared: {:?}",
        sub.payloads(knock_cfg)
    );
    assert!(sub.wait_for(Duration::from_secs(5), |_, _| sub
        .payloads(knock_switch)
        .last()
        == Some(&String::new())));
    assert!(sub.wait_for(Duration::from_secs(5), |_, _| sub
        .payloads(smoke_mute)
        .len()
        > muted_before));
    assert!(
        sub.payloads(smoke_mute)[muted_before..]
            .iter()
            .all(|p| p == "ON"),
        "the mute is applied again on top of the reloaded file: {:?}",
        sub.payloads(smoke_mute)
    );
    let late = Sub::start(port, &["homeassistant/#"]);
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        late.payloads(knock_cfg).is_empty(),
        "no retained config is left for Knock"
    );
    assert!(!late
        .payloads("homeassistant/binary_sensor/pi/smoke_alarm/config")
        .is_empty());
    let v = command(port, &sub, 2, r#"{"id": 2, "unmute": "Knock"}"#);
    assert_eq!(
        v["ok"], true,
        "the override still applies after the reload: {v}"
    );
    daemon.terminate(Duration::from_secs(15)).assert_success();
}
