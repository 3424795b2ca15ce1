//! A real MQTT broker for tests: `mosquitto` on a free 127.0.0.1 port with a config file the
//! test writes, and `mosquitto_sub` (a client nobody here wrote) to see what reached it.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use super::tools::require;

/// A free TCP port on 127.0.0.1 (free when this returns).
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().unwrap().port()
}

/// A running `mosquitto`; killed when dropped.
pub struct Mosquitto {
    pub port: u16,
    conf: PathBuf,
    child: Option<Child>,
}

impl Mosquitto {
    /// Starts a broker on `port` with `extra` lines after the listener (e.g.
    /// `allow_anonymous true`), its config written into `dir`.
    pub fn start_on(dir: &Path, port: u16, extra: &str) -> Mosquitto {
        require("mosquitto");
        let conf = dir.join(format!("mosquitto-{port}.conf"));
        std::fs::write(&conf, format!("listener {port} 127.0.0.1\n{extra}\n")).unwrap();
        let mut m = Mosquitto {
            port,
            conf,
            child: None,
        };
        m.restart();
        m
    }

    pub fn start(dir: &Path, extra: &str) -> Mosquitto {
        Mosquitto::start_on(dir, free_port(), extra)
    }

    /// Starts the broker again (after [`Mosquitto::stop`]) and waits until it listens.
    pub fn restart(&mut self) {
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(&self.conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start mosquitto");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(5);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "mosquitto never listened on {}",
                self.port
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the broker with SIGTERM, so that it saves its persistence file first.
    pub fn terminate(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: kill(2) on the pid of a child this helper spawned and has not reaped.
            unsafe { libc::kill(c.id() as libc::pid_t, libc::SIGTERM) };
            let _ = c.wait();
        }
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Adds `user` with `password` to a new password file `dir/passwd`, for `password_file`.
pub fn password_file(dir: &Path, user: &str, password: &str) -> PathBuf {
    let path = dir.join("passwd");
    let st = Command::new("mosquitto_passwd")
        .args(["-b", "-c"])
        .arg(&path)
        .args([user, password])
        .status()
        .expect("run mosquitto_passwd");
    assert!(st.success());
    path
}

/// Publishes `payload` on `topic` with `mosquitto_pub` (QoS 1, not retained).
pub fn publish(port: u16, topic: &str, payload: &str) {
    pub_with(port, topic, &["-m", payload]);
}

/// Publishes the content of `file` on `topic` with `mosquitto_pub -f`.
pub fn publish_file(port: u16, topic: &str, file: &Path) {
    pub_with(port, topic, &["-f", file.to_str().unwrap()]);
}

fn pub_with(port: u16, topic: &str, args: &[&str]) {
    require("mosquitto_pub");
    let st = Command::new("mosquitto_pub")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-q",
            "1",
            "-t",
            topic,
        ])
        .args(args)
        .status()
        .expect("run mosquitto_pub");
    assert!(st.success(), "mosquitto_pub on {topic}");
}

/// A `mosquitto_sub -v` on `topics`: every message as (topic, payload), in arrival order.
pub struct Sub {
    child: Child,
    lines: Arc<Mutex<Vec<(String, String)>>>,
}

impl Sub {
    /// Subscribes and returns once the subscription is in place (a probe message on the
    /// same broker arrives).
    pub fn start(port: u16, topics: &[&str]) -> Sub {
        Sub::start_with(port, topics, &[])
    }

    /// As [`Sub::start`], with more `mosquitto_sub` arguments (`-c -i ID`: a session the
    /// broker keeps while the client is away).
    pub fn start_with(port: u16, topics: &[&str], extra: &[&str]) -> Sub {
        require("mosquitto_sub");
        let mut cmd = Command::new("mosquitto_sub");
        cmd.args(["-h", "127.0.0.1", "-p", &port.to_string(), "-v", "-q", "1"]);
        cmd.args(extra);
        for t in topics {
            cmd.args(["-t", t]);
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start mosquitto_sub");
        let out = child.stdout.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                let (t, p) = line.split_once(' ').unwrap_or((line.as_str(), ""));
                sink.lock().unwrap().push((t.to_owned(), p.to_owned()));
            }
        });
        // mosquitto_sub has no "subscribed" signal; give it the time a local connection takes.
        thread::sleep(Duration::from_millis(300));
        Sub { child, lines }
    }

    pub fn messages(&self) -> Vec<(String, String)> {
        self.lines.lock().unwrap().clone()
    }

    /// The payloads that arrived on `topic`, in order (an empty payload as "").
    pub fn payloads(&self, topic: &str) -> Vec<String> {
        self.messages()
            .into_iter()
            .filter(|(t, _)| t == topic)
            .map(|(_, p)| if p == "(null)" { String::new() } else { p })
            .collect()
    }

    /// Waits up to `timeout` for a message for which `wanted` is true.
    pub fn wait_for(&self, timeout: Duration, wanted: impl Fn(&str, &str) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.messages().iter().any(|(t, p)| wanted(t, p)) {
                return true;
            }
            thread::sleep(Duration::from_millis(20));
        }
        false
    }
}

impl Drop for Sub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
