//! Topics and payloads: what is published where, under `<topic_prefix>/<node>/`. Only this
//! file knows the topic names (docs/mqtt.md lists them with example payloads).

use serde_json::{json, Value};

use crate::pipeline::decision::Groups;
use crate::record::Record;

/// The topics of one hark.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topics {
    /// `<topic_prefix>/<node>`.
    pub base: String,
    pub node: String,
}

impl Topics {
    pub fn new(prefix: &str, node: &str) -> Topics {
        Topics {
            base: format!("{prefix}/{node}"),
            node: node.to_owned(),
        }
    }

    /// `online` / `offline`, retained; `offline` is the Last Will.
    pub fn availability(&self) -> String {
        format!("{}/availability", self.base)
    }
    /// Every event record, with `node`.
    pub fn event(&self) -> String {
        format!("{}/event", self.base)
    }
    /// Home Assistant's event entity: `event_type` = the name, on starts only.
    pub fn detected(&self) -> String {
        format!("{}/detected", self.base)
    }
    /// The last event start, retained.
    pub fn last(&self) -> String {
        format!("{}/last", self.base)
    }
    /// `ON` / `OFF` of one listened name, retained.
    pub fn state(&self, slug: &str) -> String {
        format!("{}/label/{slug}", self.base)
    }
    /// `ON` while one listened name is muted, retained: its Home Assistant switch's state.
    pub fn mute(&self, slug: &str) -> String {
        format!("{}/mute/{slug}", self.base)
    }
    /// Commands (`commands = true`).
    pub fn set(&self) -> String {
        format!("{}/set", self.base)
    }
    /// The answer to each command.
    pub fn set_result(&self) -> String {
        format!("{}/set/result", self.base)
    }
    /// Min / mean / max dBFS over `level_interval`.
    pub fn level(&self) -> String {
        format!("{}/level", self.base)
    }
    /// The status record.
    pub fn status(&self) -> String {
        format!("{}/status", self.base)
    }
    /// One figure of the status record (`overruns`, `inference_ms`), for one entity each.
    pub fn status_field(&self, field: &str) -> String {
        format!("{}/status/{field}", self.base)
    }
}

/// `name` as a topic level and id part: lower-case ASCII letters and digits, runs of
/// anything else as one `_` (`Smoke detector, smoke alarm` → `smoke_detector_smoke_alarm`).
pub fn slug(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('_') {
            out.push('_');
        }
    }
    let out = out.trim_matches('_');
    if out.is_empty() {
        "x".into()
    } else {
        out.into()
    }
}

/// One listened sound: a group, or a label in no group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listened {
    pub name: String,
    pub slug: String,
    /// A smoke or fire alarm: Home Assistant's `smoke` device class.
    pub smoke: bool,
}

fn is_smoke(label: &str) -> bool {
    let l = label.to_ascii_lowercase();
    l.contains("smoke") || l.contains("fire alarm")
}

/// The sounds hark listens for, by the names its events carry: each `listen` entry, a label
/// replaced by its group; an empty list is every group and every label in none.
pub fn listened(listen: &[String], labels: &[String], groups: &Groups) -> Vec<Listened> {
    let group_of = |l: &str| {
        groups
            .iter()
            .find(|(_, m)| m.iter().any(|x| x == l))
            .map(|(g, _)| g.clone())
    };
    let names: Vec<String> = if listen.is_empty() {
        let mut all: Vec<String> = groups.keys().cloned().collect();
        all.extend(labels.iter().filter(|l| group_of(l).is_none()).cloned());
        all
    } else {
        listen
            .iter()
            .map(|l| group_of(l).unwrap_or_else(|| l.clone()))
            .collect()
    };
    let mut out: Vec<Listened> = Vec::new();
    for name in names {
        if out.iter().any(|o| o.name == name) {
            continue;
        }
        let members = groups.get(&name);
        let smoke = is_smoke(&name) || members.is_some_and(|m| m.iter().any(|l| is_smoke(l)));
        let mut s = slug(&name);
        // Two names with one slug (`Glass` and `glass!`) keep distinct topics.
        while out.iter().any(|o| o.slug == s) {
            s.push('_');
        }
        out.push(Listened {
            slug: s,
            name,
            smoke,
        });
    }
    out
}

/// Whether the listened `name` (a group or a lone label) is muted by `mute`: by its name or,
/// for a group, by one of its labels.
pub fn is_muted(name: &str, mute: &[String], groups: &Groups) -> bool {
    mute.iter().any(|m| m == name)
        || groups
            .get(name)
            .is_some_and(|members| members.iter().any(|l| mute.contains(l)))
}

/// The event record as the socket sends it, plus `node`.
pub fn event_payload(rec: &Record, node: &str) -> String {
    let mut v = serde_json::to_value(rec).expect("records always serialize");
    if let Value::Object(m) = &mut v {
        m.insert("node".into(), json!(node));
    }
    v.to_string()
}

/// For Home Assistant's event entity and the last-heard sensor: `event_type` (the name)
/// with the event's id, score, start, label and group.
pub fn detected_payload(rec: &Record, node: &str) -> Option<String> {
    let Record::EventStart {
        id,
        label,
        group,
        start,
        time,
        score,
        ..
    } = rec
    else {
        return None;
    };
    let name = group.as_deref().unwrap_or(label);
    Some(
        json!({
            "event_type": name,
            "name": name,
            "id": id,
            "label": label,
            "group": group,
            "score": score,
            "start": start,
            "time": time,
            "node": node,
        })
        .to_string(),
    )
}

/// Min, mean and max of the levels of the windows in one `level_interval`.
#[derive(Debug, Default, Clone)]
pub struct LevelStats {
    min: f32,
    max: f32,
    sum: f64,
    n: u64,
}

impl LevelStats {
    pub fn add(&mut self, db: f32) {
        if !db.is_finite() {
            return;
        }
        if self.n == 0 {
            (self.min, self.max) = (db, db);
        }
        self.min = self.min.min(db);
        self.max = self.max.max(db);
        self.sum += f64::from(db);
        self.n += 1;
    }

    /// The summary so far, and a fresh start; None when no window came.
    pub fn take(&mut self) -> Option<String> {
        if self.n == 0 {
            return None;
        }
        let mean = self.sum / self.n as f64;
        let round = |x: f64| (x * 10.0).round() / 10.0;
        let out = json!({
            "min": round(f64::from(self.min)),
            "mean": round(mean),
            "max": round(f64::from(self.max)),
            "windows": self.n,
        });
        *self = LevelStats::default();
        Some(out.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn slugs_are_plain_and_listened_names_follow_groups() {
        assert_eq!(
            slug("Smoke detector, smoke alarm"),
            "smoke_detector_smoke_alarm"
        );
        assert_eq!(slug("Baby cry, infant cry"), "baby_cry_infant_cry");
        assert_eq!(slug("!!"), "x");
        let labels = strings(&["Dog", "Bark", "Knock", "Smoke detector, smoke alarm"]);
        let mut groups = Groups::new();
        groups.insert("dog".into(), strings(&["Dog", "Bark"]));
        groups.insert("alarm".into(), strings(&["Smoke detector, smoke alarm"]));
        let l = listened(&strings(&["Bark", "Knock", "Dog"]), &labels, &groups);
        let names: Vec<_> = l.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["dog", "Knock"], "one entity per group");
        let all = listened(&[], &labels, &groups);
        let names: Vec<_> = all.iter().map(|l| (l.name.as_str(), l.smoke)).collect();
        assert_eq!(names, [("alarm", true), ("dog", false), ("Knock", false)]);
    }

    #[test]
    fn payloads_carry_node_and_event_type_and_levels_summarise() {
        let rec = Record::EventStart {
            id: 7,
            label: "Bark".into(),
            group: Some("dog".into()),
            start: 1.5,
            time: "t".into(),
            score: 0.5,
            clip: None,
            image: None,
        };
        let v: Value = serde_json::from_str(&event_payload(&rec, "pi")).unwrap();
        assert_eq!(
            (v["type"].as_str(), v["node"].as_str(), v["id"].as_u64()),
            (Some("event_start"), Some("pi"), Some(7))
        );
        let v: Value = serde_json::from_str(&detected_payload(&rec, "pi").unwrap()).unwrap();
        assert_eq!(v["event_type"], "dog");
        let mut s = LevelStats::default();
        assert!(s.take().is_none());
        for db in [-60.0, -40.0, -50.0] {
            s.add(db);
        }
        let v: Value = serde_json::from_str(&s.take().unwrap()).unwrap();
        assert_eq!(
            (v["min"].as_f64(), v["mean"].as_f64(), v["max"].as_f64()),
            (Some(-60.0), Some(-50.0), Some(-40.0))
        );
        assert!(s.take().is_none(), "each interval starts afresh");
    }
}
