//! `mqtts://` against a mosquitto TLS listener whose CA and server certificate `openssl` makes
//! here: the right CA connects and delivers a real recording's events; a wrong CA is one clear
//! log line with the cause, retried, while stdout keeps its events.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::{config, event_ids, run_fast, sub_event_ids, ALARM};
use crate::common::mosquitto::{free_port, Mosquitto, Sub};
use crate::common::shared::shared_or_skip;
use crate::common::tools::require;

fn openssl(dir: &Path, args: &[&str]) {
    require("openssl");
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA `name.pem` (with its key `name.key`) in `dir`.
fn make_ca(dir: &Path, name: &str) -> PathBuf {
    let (key, pem) = (format!("{name}.key"), format!("{name}.pem"));
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &pem,
            "-days",
            "2",
            "-subj",
            &format!("/CN={name}"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
    dir.join(pem)
}

/// `server.pem` / `server.key` for 127.0.0.1, signed by the CA `ca`.
fn make_server_cert(dir: &Path, ca: &str) {
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    );
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            &format!("{ca}.pem"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
        ],
    );
}

#[test]
fn mqtts_connects_with_the_right_ca_and_a_wrong_one_is_one_clear_line() {
    let Some(alarm) = shared_or_skip(ALARM) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = make_ca(d, "ca");
    let other_ca = make_ca(d, "other-ca");
    make_server_cert(d, "ca");
    // A TLS listener for hark, a plain one for mosquitto_sub.
    let plain = free_port();
    let broker = Mosquitto::start(
        d,
        &format!(
            "user root\ncafile {}\ncertfile {}\nkeyfile {}\nallow_anonymous true\nlistener {plain} 127.0.0.1",
            ca.display(),
            d.join("server.pem").display(),
            d.join("server.key").display()
        ),
    );
    let url = format!("mqtts://127.0.0.1:{}", broker.port);
    let sub = Sub::start(plain, &["hark/pi/event"]);
    let conf = config(
        d,
        &url,
        &format!("ca_file = {:?}", ca.display().to_string()),
    );
    let run = run_fast(&conf, &alarm);
    run.assert_success();
    let want = event_ids(&run.records);
    assert!(!want.is_empty());
    assert!(
        !run.stderr.contains("MQTT connection failed"),
        "{}",
        run.stderr
    );
    assert_eq!(sub_event_ids(&sub), want, "every event over TLS, in order");

    let conf = config(
        d,
        &url,
        &format!("ca_file = {:?}", other_ca.display().to_string()),
    );
    let run = run_fast(&conf, &alarm);
    run.assert_success();
    assert_eq!(event_ids(&run.records), want, "stdout keeps its events");
    let lines: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.contains("MQTT connection failed"))
        .collect();
    assert_eq!(
        lines.len(),
        1,
        "one line, not one per retry:\n{}",
        run.stderr
    );
    assert!(
        lines[0].contains("TLS") && lines[0].contains("mqtt.ca_file"),
        "the cause, naming the key: {}",
        lines[0]
    );
}
