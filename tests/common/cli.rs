//! One-shot `hark` commands (`classify`, `features`, `model info`, `train`, `eval`, ...): run to
//! their end with [`super::hark::command`] (the crate's root, a clean environment), their output
//! read back as text or JSON.

use std::process::Output;

use serde_json::Value;

use super::hark::command;

/// `hark ARGS`, run to its end.
pub fn hark(args: &[&str]) -> Output {
    hark_with_env(args, &[])
}

/// `hark ARGS` with the extra environment `env`, run to its end.
pub fn hark_with_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    command()
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("run hark")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Every line of stdout, parsed as JSON.
pub fn json_lines(o: &Output) -> Vec<Value> {
    stdout(o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// `hark ARGS` whose stdout is one JSON object; panics with stderr when it fails.
pub fn hark_json(args: &[&str]) -> Value {
    let out = hark(args);
    assert!(
        out.status.success(),
        "hark {args:?} failed:\n{}",
        stderr(&out)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("hark {args:?}: stdout is not JSON ({e}):\n{}", stdout(&out)))
}

/// Asserts that the run of `what` (a case name, for the message) failed, with a stderr that
/// mentions every one of `needles`.
#[track_caller]
pub fn assert_fails_with(what: &str, o: &Output, needles: &[&str]) {
    let err = stderr(o);
    assert!(
        !o.status.success(),
        "{what}: expected failure, got success; stderr: {err}"
    );
    for n in needles {
        assert!(err.contains(n), "{what}: stderr lacks {n:?}: {err}");
    }
}
