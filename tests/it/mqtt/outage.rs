//! The broker stopped for 20 s while events happen, then started again: every event reaches
//! a subscriber whose session the broker kept, in order, none twice in a row.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::commands::{pcm, silence};
use super::{config, event_ids, sub_event_ids, ALARM};
use crate::common::hark::HarkRun;
use crate::common::mosquitto::{Mosquitto, Sub};
use crate::common::shared::shared_or_skip;

const ALARM2: &str = "data/recordings/first_alert_sa302.wav";

#[test]
fn a_broker_stopped_for_20_s_gets_every_queued_event_in_order_once_back() {
    let (Some(first), Some(second)) = (shared_or_skip(ALARM), shared_or_skip(ALARM2)) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // Persistence, so that the subscriber's session (and its subscription) outlives the stop.
    let broker = Mosquitto::start(
        dir.path(),
        &format!(
            "user root\nallow_anonymous true\npersistence true\npersistence_location {}/",
            dir.path().display()
        ),
    );
    let port = broker.port;
    let sub = Arc::new(Sub::start_with(
        port,
        &["hark/pi/event"],
        &["-c", "-i", "hark-test-outage"],
    ));
    let conf = config(dir.path(), &broker.url(), "");
    let (first, second) = (pcm(&first), pcm(&second));
    let (broker, s) = (Arc::new(Mutex::new(broker)), sub.clone());
    let b = broker.clone();
    let run = HarkRun::new(&conf)
        .args(&["--input", "-", "--exit-at-end"])
        .run_to_end_feeding(Duration::from_secs(120), move |mut stdin| {
            let events = |s: &Sub| s.payloads("hark/pi/event").len();
            let _ = stdin.write_all(&first);
            let _ = stdin.write_all(&silence(8));
            assert!(
                s.wait_for(Duration::from_secs(20), |_, _| events(&s) >= 2),
                "the first alarm's events arrive while the broker is up"
            );
            let before = events(&s);
            b.lock().unwrap().terminate();
            let stopped = Instant::now();
            // Events while the broker is away.
            let _ = stdin.write_all(&second);
            let _ = stdin.write_all(&silence(8));
            std::thread::sleep(Duration::from_secs(20).saturating_sub(stopped.elapsed()));
            b.lock().unwrap().restart();
            assert!(
                s.wait_for(Duration::from_secs(30), |_, _| events(&s) >= before + 2),
                "the queued events arrive once the broker is back"
            );
        });
    run.assert_success();
    let want = event_ids(&run.records);
    let got = sub_event_ids(&sub);
    assert_eq!(got, want, "every event, in order, once each");
    assert!(got.windows(2).all(|w| w[0] != w[1]), "none twice in a row");
    drop(broker);
}
