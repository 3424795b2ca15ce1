//! `daemon::run` inside the test process: the real daemon (ONNX Runtime, CED-tiny, the socket)
//! started on a thread and stopped on demand through its `Shutdown`, as a supervisor would.

use std::io::{BufRead, BufReader};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use hark::config::Sources;
use hark::daemon::{self, Input, Print, RunOptions};
use hark::record::Record;
use hark::shutdown::Shutdown;

/// A mono 16 kHz WAV of `seconds` of a quiet 440 Hz tone.
fn tone(path: &Path, seconds: f32) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 16_000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for i in 0..(seconds * 16_000.0) as usize {
        let x = (2.0 * std::f32::consts::PI * 440.0 * i as f32 / 16_000.0).sin() * 0.1;
        w.write_sample((x * 32767.0) as i16).unwrap();
    }
    w.finalize().unwrap();
}

fn connect(path: &Path) -> UnixStream {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match UnixStream::connect(path) {
            Ok(s) => return s,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("the daemon never listened on {}: {e}", path.display()),
        }
    }
}

#[test]
fn the_daemon_runs_in_process_and_stops_on_demand_with_every_sink_in_the_last_status() {
    let dir = tempfile::tempdir().unwrap();
    let (wav, sock, conf) = (
        dir.path().join("tone.wav"),
        dir.path().join("hark.sock"),
        dir.path().join("hark.toml"),
    );
    tone(&wav, 30.0);
    std::fs::write(
        &conf,
        format!("[socket]\npath = {:?}\n", sock.display().to_string()),
    )
    .unwrap();
    let opts = RunOptions {
        config: Sources {
            file: Some(conf),
            env: false,
            flags: Vec::new(),
            strict: true,
        },
        input: Input::File {
            path: wav,
            realtime: true,
        },
        exit_at_end: false,
        print: Print::None,
        no_socket: false,
    };
    let shutdown = Shutdown::new();
    let stop = shutdown.clone();
    let daemon = std::thread::spawn(move || daemon::run(opts, stop));

    let stream = connect(&sock);
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut lines = BufReader::new(stream).lines();
    let hello = lines.next().expect("a hello").unwrap();
    assert!(hello.contains(r#""type":"hello""#), "{hello}");

    let asked = Instant::now();
    shutdown.trigger();
    daemon
        .join()
        .expect("no panic")
        .expect("an orderly stop is a success");
    assert!(
        asked.elapsed() < Duration::from_secs(10),
        "stopped in {:?}",
        asked.elapsed()
    );
    assert!(!sock.exists(), "the socket file is removed");

    // The subscriber got everything up to the final status, then the end of the stream.
    let records: Vec<Record> = lines
        .map(|l| serde_json::from_str(&l.expect("a line")).expect("a record"))
        .collect();
    let Some(Record::Status { message, sinks, .. }) = records.last() else {
        panic!("the last record is a status: {records:?}")
    };
    assert_eq!(message.as_deref(), Some("stopping"));
    let sinks = sinks
        .as_ref()
        .expect("the daemon's status reports its sinks");
    for (sink, counter) in [
        ("socket", "subscribers"),
        ("hooks", "runs"),
        ("stdout", "written"),
    ] {
        assert!(
            sinks
                .get(sink)
                .is_some_and(|c| c.contains_key(counter) && c.contains_key("lagged")),
            "{sink}.{counter} in {sinks:?}"
        );
    }
    assert_eq!(sinks["socket"]["subscribers"], 1, "{sinks:?}");
}
