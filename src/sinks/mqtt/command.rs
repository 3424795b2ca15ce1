//! Commands on `<topic_prefix>/<node>/set`: the JSON payload parsed into a [`Change`] of the
//! live settings, each problem of the payload itself (not JSON, unknown key, wrong type, too
//! large) naming its key. The change is applied and checked like the config file by the
//! daemon (`daemon::overrides`), which answers through [`Request::reply`]; the answer goes to
//! `.../set/result` ([`result_payload`]).

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};
use tokio::sync::{mpsc, oneshot};

use crate::pipeline::decision::LabelRule;
use crate::validate::{Invalid, Problems};

/// The largest payload read; a larger one gets an error reply.
pub const MAX_PAYLOAD: usize = 16 * 1024;

/// The keys a command may have.
const KEYS: &str = "id, mute, unmute, labels, level_gate, reset";

/// A change of the live settings, as a command asks for it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Change {
    /// Labels or groups to mute (`decision.mute`), as events name them.
    pub mute: Vec<String>,
    /// Labels or groups to unmute.
    pub unmute: Vec<String>,
    /// Fields of `decision.labels."<name>"` to set (`on`, `off`, `min_duration`, `hold`).
    pub labels: BTreeMap<String, LabelRule>,
    /// `pipeline.level_gate`: `Some(None)` turns the gate off.
    pub level_gate: Option<Option<f32>>,
    /// Drop every change commands made: back to the configuration as loaded.
    pub reset: bool,
}

/// A change on its way to the daemon, and where its answer goes.
#[derive(Debug)]
pub struct Request {
    pub change: Change,
    pub reply: oneshot::Sender<Result<(), Problems>>,
}

/// Where the MQTT sink sends commands: the daemon's signal handler, which applies them on the
/// path SIGHUP takes.
pub type Requests = mpsc::Sender<Request>;

/// `payload` as a change, and its `id` (any JSON value, echoed in the answer) if it has one.
pub fn parse(payload: &[u8]) -> (Option<Value>, Result<Change, Problems>) {
    if payload.len() > MAX_PAYLOAD {
        let p = Invalid::new(
            "set",
            format!("{} bytes", payload.len()),
            "payload too large",
        )
        .allowed(format!("up to {MAX_PAYLOAD} bytes"));
        return (None, Err(p.into()));
    }
    let map = match serde_json::from_slice::<Value>(payload) {
        Ok(Value::Object(map)) => map,
        Ok(other) => {
            let p = Invalid::new("set", preview(&other), "not a JSON object")
                .allowed(r#"an object, e.g. {"mute": ["Knock"]}"#);
            return (None, Err(p.into()));
        }
        Err(e) => {
            let text = String::from_utf8_lossy(&payload[..payload.len().min(60)]).into_owned();
            let p = Invalid::new("set", format!("{text:?}"), format!("not JSON: {e}"))
                .allowed(r#"a JSON object, e.g. {"mute": ["Knock"]}"#);
            return (None, Err(p.into()));
        }
    };
    let id = map.get("id").cloned();
    (id, change(&map))
}

fn change(map: &Map<String, Value>) -> Result<Change, Problems> {
    let mut c = Change::default();
    let mut problems = Problems::default();
    for (key, v) in map {
        match key.as_str() {
            "id" => {}
            "mute" => c.mute = names("set.mute", v, &mut problems),
            "unmute" => c.unmute = names("set.unmute", v, &mut problems),
            "labels" => c.labels = rules(v, &mut problems),
            "level_gate" => match v {
                Value::Null => c.level_gate = Some(None),
                Value::Number(n) => c.level_gate = n.as_f64().map(|db| Some(db as f32)),
                _ => problems.push(wrong_type("set.level_gate", v, "a number (dBFS) or null")),
            },
            "reset" => match v {
                Value::Bool(b) => c.reset = *b,
                _ => problems.push(wrong_type("set.reset", v, "true or false")),
            },
            other => problems.push(
                Invalid::new(format!("set.{other}"), preview(v), "unknown key").allowed(KEYS),
            ),
        }
    }
    for name in c.mute.iter().filter(|n| c.unmute.contains(n)) {
        problems.push(Invalid::new(
            "set.unmute",
            format!("{name:?}"),
            "also in set.mute",
        ));
    }
    if problems.is_empty() && c == Change::default() {
        problems.push(Invalid::new("set", "{}", "nothing to change").allowed(KEYS));
    }
    problems.into_result().map(|()| c)
}

/// A name or a list of names.
fn names(key: &str, v: &Value, problems: &mut Problems) -> Vec<String> {
    let list = match v {
        Value::String(s) => return vec![s.clone()],
        Value::Array(list) => list,
        _ => {
            problems.push(wrong_type(key, v, "a name or a list of names"));
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    for item in list {
        match item {
            Value::String(s) => out.push(s.clone()),
            _ => problems.push(wrong_type(key, item, "names (strings)")),
        }
    }
    out
}

/// `{"<name>": {"on": 0.6, ...}, ...}`.
fn rules(v: &Value, problems: &mut Problems) -> BTreeMap<String, LabelRule> {
    let mut out = BTreeMap::new();
    let Value::Object(map) = v else {
        problems.push(wrong_type(
            "set.labels",
            v,
            r#"an object of names, e.g. {"Knock": {"on": 0.6}}"#,
        ));
        return out;
    };
    for (name, fields) in map {
        let key = format!("set.labels.{name:?}");
        let Value::Object(fields) = fields else {
            problems.push(wrong_type(
                &key,
                fields,
                "an object of on, off, min_duration, hold",
            ));
            continue;
        };
        let mut rule = LabelRule::default();
        for (field, x) in fields {
            let key = format!("{key}.{field}");
            let Some(n) = x.as_f64() else {
                problems.push(wrong_type(&key, x, "a number"));
                continue;
            };
            match field.as_str() {
                "on" => rule.on = Some(n as f32),
                "off" => rule.off = Some(n as f32),
                "min_duration" => rule.min_duration = Some(n),
                "hold" => rule.hold = Some(n),
                _ => problems.push(
                    Invalid::new(key, preview(x), "unknown key")
                        .allowed("on, off, min_duration, hold"),
                ),
            }
        }
        out.insert(name.clone(), rule);
    }
    out
}

fn wrong_type(key: &str, v: &Value, allowed: &str) -> Invalid {
    Invalid::new(key, preview(v), "wrong type").allowed(allowed)
}

/// `v` as compact JSON, cut at 60 characters.
fn preview(v: &Value) -> String {
    let s = v.to_string();
    match s.char_indices().nth(60) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s,
    }
}

/// The answer on `.../set/result`: `{"ok": true, "id": ...}`, or `ok: false` with the error
/// as one line per problem and each problem's key, value, problem and allowed values.
pub fn result_payload(id: Option<&Value>, result: &Result<(), Problems>) -> String {
    let mut v = match result {
        Ok(()) => json!({ "ok": true }),
        Err(problems) => {
            let list: Vec<Value> = problems
                .0
                .iter()
                .map(|p| {
                    json!({
                        "key": p.key,
                        "value": p.value,
                        "problem": p.problem,
                        "allowed": p.allowed,
                    })
                })
                .collect();
            json!({ "ok": false, "error": problems.to_string(), "problems": list })
        }
    };
    if let (Some(id), Value::Object(m)) = (id, &mut v) {
        m.insert("id".into(), id.clone());
    }
    v.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(payload: &str) -> String {
        parse(payload.as_bytes()).1.unwrap_err().to_string()
    }

    #[test]
    fn a_command_becomes_a_change_with_its_id() {
        let (id, c) = parse(
            br#"{"id": 7, "mute": "Knock", "unmute": ["dog"], "labels": {"Glass": {"on": 0.6}}, "level_gate": null}"#,
        );
        let c = c.unwrap();
        assert_eq!(id, Some(json!(7)));
        assert_eq!(
            (c.mute, c.unmute),
            (vec!["Knock".into()], vec!["dog".into()])
        );
        assert_eq!(c.labels["Glass"].on, Some(0.6));
        assert_eq!(c.level_gate, Some(None));
        let (_, c) = parse(br#"{"level_gate": -60}"#);
        assert_eq!(c.unwrap().level_gate, Some(Some(-60.0)));
    }

    #[test]
    fn bad_payloads_name_the_bad_key() {
        assert!(err("mute Knock").starts_with("set = \"mute Knock\": not JSON"));
        assert!(err("[1]").starts_with("set = [1]: not a JSON object"));
        assert!(err(r#"{"colour": 1}"#).starts_with("set.colour = 1: unknown key (allowed: id,"));
        assert!(err(r#"{"mute": 3}"#).starts_with("set.mute = 3: wrong type"));
        assert!(err(r#"{"level_gate": "loud"}"#).starts_with("set.level_gate = \"loud\": wrong"));
        assert!(err(r#"{"labels": {"Knock": {"on": "x"}}}"#)
            .starts_with("set.labels.\"Knock\".on = \"x\": wrong type"));
        assert!(err(r#"{"labels": {"Knock": {"of": 0.1}}}"#)
            .starts_with("set.labels.\"Knock\".of = 0.1: unknown key"));
        assert!(err(r#"{"mute": "a", "unmute": "a"}"#).starts_with("set.unmute = \"a\""));
        assert!(err(r#"{"id": 1}"#).starts_with("set = {}: nothing to change"));
        let huge = format!(r#"{{"mute": "{}"}}"#, "x".repeat(MAX_PAYLOAD));
        assert!(err(&huge).contains("payload too large (allowed: up to 16384 bytes)"));
    }

    #[test]
    fn answers_carry_ok_or_each_problem_and_the_id() {
        let ok: Value = serde_json::from_str(&result_payload(Some(&json!("a")), &Ok(()))).unwrap();
        assert_eq!(ok, json!({"ok": true, "id": "a"}));
        let p = Problems::from(Invalid::new("decision.on", 2, "must be between 0 and 1"));
        let bad: Value = serde_json::from_str(&result_payload(None, &Err(p))).unwrap();
        assert_eq!(bad["ok"], false);
        assert_eq!(bad["error"], "decision.on = 2: must be between 0 and 1");
        assert_eq!(bad["problems"][0]["key"], "decision.on");
    }
}
