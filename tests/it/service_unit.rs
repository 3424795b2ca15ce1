//! `systemd/hark.service` and the Debian packaging around it.
//!
//! The unit is parsed as systemd reads it (sections, `Key=value`, repeated keys, comments) and
//! checked for what running hark for months on a Raspberry Pi needs: the notify protocol with
//! a watchdog, restart on failure, a non-root user in `audio`, the runtime directory the
//! socket defaults to, and the sandbox. A copy of the unit whose ExecStart is the binary under
//! test must pass `systemd-analyze verify`, and `systemd-analyze security --offline=true` must
//! rate it at most 2.0 ("OK" or better); `systemd-analyze` (package systemd) is installed by
//! the test setup, and its absence fails these tests.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

const UNIT: &str = include_str!("../../systemd/hark.service");

/// Section name → key → every value assigned, in order.
type Unit = BTreeMap<String, BTreeMap<String, Vec<String>>>;

fn parse_unit(text: &str) -> Unit {
    let mut unit = Unit::new();
    let mut section = String::new();
    let mut pending = String::new();
    for raw in text.lines() {
        let line = raw.trim_end();
        // systemd joins a line ending in a backslash with the next one.
        if let Some(head) = line.strip_suffix('\\') {
            pending.push_str(head);
            pending.push(' ');
            continue;
        }
        let full = std::mem::take(&mut pending) + line;
        let t = full.trim();
        if t.is_empty() || t.starts_with('#') || t.starts_with(';') {
            continue;
        }
        if t.starts_with('[') && t.ends_with(']') {
            section = t[1..t.len() - 1].to_string();
            unit.entry(section.clone()).or_default();
            continue;
        }
        let (k, v) = t
            .split_once('=')
            .unwrap_or_else(|| panic!("not Key=value in [{section}]: {t}"));
        assert!(!section.is_empty(), "{k}= outside any section");
        unit.entry(section.clone())
            .or_default()
            .entry(k.trim().to_string())
            .or_default()
            .push(v.trim().to_string());
    }
    unit
}

fn unit() -> Unit {
    parse_unit(UNIT)
}

/// The last value of `key` in `[section]` (what systemd uses for single-valued settings).
fn last<'a>(unit: &'a Unit, section: &str, key: &str) -> Option<&'a str> {
    unit.get(section)?.get(key)?.last().map(String::as_str)
}

fn service(key: &str) -> Option<String> {
    last(&unit(), "Service", key).map(str::to_string)
}

#[track_caller]
fn assert_service(key: &str, want: &str) {
    assert_eq!(
        service(key).as_deref(),
        Some(want),
        "[Service] {key}= should be {want:?}"
    );
}

/// systemd's time spans as used here: "30s", "1min", "500ms", or plain seconds.
fn seconds(span: &str) -> f64 {
    let span = span.trim();
    let split = span
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(span.len());
    let (n, unit) = span.split_at(split);
    let n: f64 = n.parse().unwrap_or_else(|_| panic!("time span {span:?}"));
    n * match unit.trim() {
        "" | "s" | "sec" => 1.0,
        "ms" | "msec" => 0.001,
        "m" | "min" => 60.0,
        other => panic!("unit {other:?} in {span:?}"),
    }
}

#[test]
fn parser_reads_repeated_keys_and_continuations() {
    let u = parse_unit("[A]\n# c\nX=1\nX=2 \\\n  3\n; c\n[B]\nY=\n");
    assert_eq!(u["A"]["X"], vec!["1", "2    3"]);
    assert_eq!(u["B"]["Y"], vec![""]);
}

#[test]
fn runs_hark_with_the_notify_protocol_and_reloads_on_sighup() {
    assert_service("Type", "notify");
    assert_service("NotifyAccess", "main");
    assert_service("ExecStart", "/usr/bin/hark run");
    assert_service("ExecReload", "/bin/kill -HUP $MAINPID");
}

#[test]
fn a_failed_or_wedged_hark_is_restarted() {
    assert_service("Restart", "on-failure");
    let watchdog = seconds(&service("WatchdogSec").expect("WatchdogSec="));
    // hark pings at half the interval from the consumer loop; a window takes well under 1 s
    // on a Pi, so anything from 10 s up leaves room without letting a wedge last long.
    assert!(
        (10.0..=120.0).contains(&watchdog),
        "WatchdogSec={watchdog}s"
    );
    // SIGTERM must get the 2 s hark needs to stop in order, with room to spare.
    if let Some(stop) = service("TimeoutStopSec") {
        assert!(seconds(&stop) >= 5.0, "TimeoutStopSec={stop}");
    }
}

#[test]
fn runs_as_an_unprivileged_user_in_the_audio_group() {
    let u = unit();
    let dynamic = last(&u, "Service", "DynamicUser") == Some("yes");
    let user = last(&u, "Service", "User");
    assert!(
        dynamic || user.is_some_and(|u| u != "root" && u != "0"),
        "needs a dedicated User= or DynamicUser=yes"
    );
    let groups: Vec<&str> = u["Service"]
        .get("SupplementaryGroups")
        .into_iter()
        .flatten()
        .flat_map(|v| v.split_whitespace())
        .collect();
    assert!(groups.contains(&"audio"), "SupplementaryGroups={groups:?}");
}

#[test]
fn the_socket_lives_in_the_runtime_directory_only_the_hark_group_can_enter() {
    // hark's default socket path under systemd is $RUNTIME_DIRECTORY/hark.sock.
    assert_service("RuntimeDirectory", "hark");
    if let Some(mode) = service("RuntimeDirectoryMode") {
        let m = u32::from_str_radix(&mode, 8).expect("octal RuntimeDirectoryMode");
        assert_eq!(m & 0o007, 0, "others must not reach the socket: {mode}");
        assert_eq!(m & 0o050, 0o050, "the group must be able to enter: {mode}");
    }
    assert_service("ConfigurationDirectory", "hark");
}

#[test]
fn the_sandbox_is_in_place() {
    for (key, want) in [
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("NoNewPrivileges", "yes"),
        ("CapabilityBoundingSet", ""),
        ("RestrictAddressFamilies", "AF_UNIX"),
        ("DevicePolicy", "closed"),
        ("DeviceAllow", "char-alsa rw"),
        ("MemoryDenyWriteExecute", "yes"),
        ("ProtectKernelTunables", "yes"),
        ("ProtectKernelModules", "yes"),
        ("ProtectControlGroups", "yes"),
        ("RestrictNamespaces", "yes"),
        ("LockPersonality", "yes"),
        ("RestrictSUIDSGID", "yes"),
        ("SystemCallArchitectures", "native"),
    ] {
        assert_service(key, want);
    }
    let u = unit();
    let filters = &u["Service"]["SystemCallFilter"];
    assert!(
        filters
            .iter()
            .any(|f| f.split_whitespace().any(|s| s == "@system-service")),
        "SystemCallFilter={filters:?}"
    );
    // Only one RestrictAddressFamilies= line: a second would add to the list.
    assert_eq!(u["Service"]["RestrictAddressFamilies"].len(), 1);
}

#[test]
fn nothing_hides_the_sound_devices_from_alsa() {
    // PrivateDevices=yes would hide /dev/snd whatever DeviceAllow= says; ProcSubset=pid would
    // hide /proc/asound, which ALSA reads.
    assert_ne!(service("PrivateDevices").as_deref(), Some("yes"));
    assert_ne!(service("ProcSubset").as_deref(), Some("pid"));
}

#[test]
fn starts_at_boot_once_enabled() {
    assert_eq!(
        last(&unit(), "Install", "WantedBy"),
        Some("multi-user.target")
    );
}

/// The `[package.metadata.deb]` table of Cargo.toml.
fn deb_metadata() -> toml::Value {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"))
        .expect("read Cargo.toml");
    let manifest: toml::Value = text.parse().expect("Cargo.toml is TOML");
    manifest["package"]["metadata"]["deb"].clone()
}

#[test]
fn the_package_installs_what_the_unit_expects() {
    let deb = deb_metadata();
    let assets: Vec<(String, String)> = deb["assets"]
        .as_array()
        .expect("assets")
        .iter()
        .map(|a| {
            let a = a.as_array().expect("[source, dest, mode]");
            (
                a[0].as_str().unwrap().to_string(),
                a[1].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let installs = |src: &str, dest: &str| {
        assets
            .iter()
            .any(|(s, d)| s == src && (d == dest || format!("{d}{}", file_name(s)) == dest))
    };
    // ExecStart=/usr/bin/hark; the daemon reads /etc/hark/hark.toml and finds models in
    // /usr/share/hark/models.
    assert!(installs("target/release/hark", "usr/bin/hark"));
    assert!(installs(
        "systemd/hark.service",
        "usr/lib/systemd/system/hark.service"
    ));
    assert!(installs("config/hark.toml", "etc/hark/hark.toml"));
    assert!(installs(
        "models/ced-tiny.toml",
        "usr/share/hark/models/ced-tiny.toml"
    ));
    for (src, _) in &assets {
        if !src.starts_with("target/") {
            let p = Path::new(env!("CARGO_MANIFEST_DIR")).join(src);
            assert!(p.is_file(), "asset {src} does not exist");
        }
    }
}

fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

#[test]
fn the_maintainer_scripts_create_the_user_and_group_the_unit_runs_as() {
    let deb = deb_metadata();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(
        deb["maintainer-scripts"]
            .as_str()
            .expect("maintainer-scripts"),
    );
    let postinst = std::fs::read_to_string(dir.join("postinst")).expect("debian/postinst");
    let user = service("User").expect("User=");
    let group = service("Group").unwrap_or_else(|| user.clone());
    assert!(postinst.contains(&format!("addgroup --quiet --system {group}")));
    assert!(
        postinst.contains(&format!("--ingroup {group}"))
            && postinst.contains(&format!(" {user}\n"))
    );
    assert!(postinst.contains("fetch-assets.sh"));
    #[cfg(unix)]
    for script in ["postinst", "prerm", "postrm", "fetch-assets.sh"] {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join(script))
            .unwrap_or_else(|e| panic!("debian/{script}: {e}"))
            .permissions()
            .mode();
        assert!(mode & 0o111 != 0, "debian/{script} is not executable");
    }
}

/// A copy of the unit, named hark.service, whose ExecStart runs the binary under test.
fn unit_for_this_build() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temporary directory");
    let bin = env!("CARGO_BIN_EXE_hark");
    let text = UNIT.replace(
        "ExecStart=/usr/bin/hark run",
        &format!("ExecStart={bin} run"),
    );
    assert_ne!(text, UNIT, "ExecStart=/usr/bin/hark run not found");
    std::fs::write(dir.path().join("hark.service"), text).expect("write the unit copy");
    dir
}

#[test]
fn systemd_analyze_verify_accepts_the_unit() {
    crate::common::tools::require("systemd-analyze");
    let dir = unit_for_this_build();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(dir.path().join("hark.service"))
        .output()
        .expect("run systemd-analyze verify");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "systemd-analyze verify failed:\n{stderr}"
    );
    // verify exits 0 on some warnings; any line naming the unit is one.
    let about_us: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("hark.service"))
        .collect();
    assert!(about_us.is_empty(), "warnings:\n{}", about_us.join("\n"));
}

#[test]
fn systemd_analyze_security_rates_the_unit_ok_or_better() {
    crate::common::tools::require("systemd-analyze");
    let dir = unit_for_this_build();
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--no-pager"])
        .arg(dir.path().join("hark.service"))
        .output()
        .expect("run systemd-analyze security");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() && stderr.contains("offline") {
        eprintln!("SKIPPED systemd-analyze security: this systemd has no --offline (needs >= 250)");
        return;
    }
    let line = stdout
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or_else(|| panic!("no exposure level in:\n{stdout}\n{stderr}"));
    let score: f64 = line
        .split(':')
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("cannot read the score in {line:?}"));
    eprintln!("{line}");
    assert!(score <= 2.0, "exposure {score} > 2.0:\n{stdout}");
}
