//! Runtime overrides: what MQTT commands changed in the live settings, kept apart from the
//! configuration as loaded so that a reload can apply them again.
//!
//! The rule (docs/mqtt.md, "Commands and SIGHUP"): a command's change holds until another
//! command undoes it (or `reset` drops them all) or hark restarts. SIGHUP reloads the file
//! and applies the overrides again on top of it, and says so in the log; if the reloaded
//! configuration makes them invalid (a muted label is no longer a label), they are all dropped
//! with a warning naming why, so the running settings are always the file's plus the
//! overrides, never an older mix.

use std::collections::BTreeMap;
use std::fmt;

use crate::config::Settings;
use crate::pipeline::decision::{group_of, Groups, LabelRule};
use crate::sinks::mqtt::Change;
use crate::validate::Problems;

/// Every change commands made, against the configuration as loaded.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Overrides {
    /// Name → muted (true) or unmuted (false).
    mute: BTreeMap<String, bool>,
    /// `decision.labels."<name>"` fields set by commands.
    labels: BTreeMap<String, LabelRule>,
    /// `pipeline.level_gate` (`Some(None)`: off).
    level_gate: Option<Option<f32>>,
}

impl Overrides {
    pub fn is_empty(&self) -> bool {
        *self == Overrides::default()
    }

    /// These overrides with `c` on top (`reset` first drops them all).
    pub fn with(&self, c: &Change) -> Overrides {
        let mut o = if c.reset {
            Overrides::default()
        } else {
            self.clone()
        };
        for name in &c.mute {
            o.mute.insert(name.clone(), true);
        }
        for name in &c.unmute {
            o.mute.insert(name.clone(), false);
        }
        for (name, rule) in &c.labels {
            let r = o.labels.entry(name.clone()).or_default();
            merge(r, rule);
        }
        if let Some(gate) = c.level_gate {
            o.level_gate = Some(gate);
        }
        o
    }

    /// `base` with the overrides applied, checked like a reload's live settings.
    pub fn apply(&self, base: &Settings, labels: &[String]) -> Result<Settings, Problems> {
        let mut s = base.clone();
        for (name, muted) in &self.mute {
            if *muted {
                if !s.decision.mute.contains(name) {
                    s.decision.mute.push(name.clone());
                }
            } else {
                // Whatever mutes this name's event: the name, its group or a fellow member.
                let related = related(name, &s.groups);
                s.decision.mute.retain(|m| !related.contains(m));
            }
        }
        for (name, rule) in &self.labels {
            merge(s.decision.labels.entry(name.clone()).or_default(), rule);
        }
        if let Some(gate) = self.level_gate {
            s.pipeline.level_gate = gate;
        }
        s.live().validate(labels)?;
        Ok(s)
    }
}

/// `name`, the group it is in and that group's labels, or a group's labels.
fn related(name: &str, groups: &Groups) -> Vec<String> {
    let group = group_of(groups, name).unwrap_or(name);
    let mut out = vec![name.to_owned(), group.to_owned()];
    out.extend(groups.get(group).into_iter().flatten().cloned());
    out
}

fn merge(into: &mut LabelRule, from: &LabelRule) {
    into.on = from.on.or(into.on);
    into.off = from.off.or(into.off);
    into.min_duration = from.min_duration.or(into.min_duration);
    into.hold = from.hold.or(into.hold);
}

/// One line for the log: `mute=[..] unmute=[..] labels=[..] level_gate=..`.
impl fmt::Display for Overrides {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pick = |m: bool| -> Vec<&str> {
            (self.mute.iter())
                .filter(|(_, v)| **v == m)
                .map(|(k, _)| k.as_str())
                .collect()
        };
        write!(f, "mute={:?} unmute={:?}", pick(true), pick(false))?;
        for (name, r) in &self.labels {
            write!(f, " labels.{name:?}={r:?}")?;
        }
        match self.level_gate {
            Some(Some(g)) => write!(f, " level_gate={g}"),
            Some(None) => write!(f, " level_gate=off"),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels() -> Vec<String> {
        ["Dog", "Bark", "Knock"].map(String::from).to_vec()
    }

    fn base() -> Settings {
        let mut s = Settings::default();
        s.groups
            .insert("dog".into(), vec!["Dog".into(), "Bark".into()]);
        s.decision.mute = vec!["Bark".into()];
        s
    }

    fn change(f: impl FnOnce(&mut Change)) -> Change {
        let mut c = Change::default();
        f(&mut c);
        c
    }

    #[test]
    fn overrides_apply_on_top_of_the_loaded_settings_and_reset_drops_them() {
        let o = Overrides::default()
            .with(&change(|c| c.mute = vec!["Knock".into()]))
            .with(&change(|c| c.unmute = vec!["dog".into()]))
            .with(&change(|c| c.level_gate = Some(Some(-60.0))));
        let s = o.apply(&base(), &labels()).unwrap();
        assert_eq!(
            s.decision.mute,
            ["Knock"],
            "unmuting the group unmutes its member"
        );
        assert_eq!(s.pipeline.level_gate, Some(-60.0));
        let mut knock = LabelRule {
            on: Some(0.7),
            ..LabelRule::default()
        };
        let o = o.with(&change(|c| {
            c.labels.insert("Knock".into(), knock.clone());
        }));
        knock.off = Some(0.2);
        let o = o.with(&change(|c| {
            c.labels.insert("Knock".into(), knock);
        }));
        let s = o.apply(&base(), &labels()).unwrap();
        let rule = &s.decision.labels["Knock"];
        assert_eq!((rule.on, rule.off), (Some(0.7), Some(0.2)));
        let o = o.with(&change(|c| c.reset = true));
        assert!(o.is_empty());
        assert_eq!(o.apply(&base(), &labels()).unwrap(), base());
    }

    #[test]
    fn overrides_are_checked_like_the_config_file() {
        let o = Overrides::default().with(&change(|c| c.mute = vec!["Cat".into()]));
        let e = o.apply(&base(), &labels()).unwrap_err().to_string();
        assert!(
            e.starts_with("decision.mute = \"Cat\": unknown label"),
            "{e}"
        );
        let rule = LabelRule {
            on: Some(1.5),
            ..LabelRule::default()
        };
        let o = Overrides::default().with(&change(|c| {
            c.labels.insert("Knock".into(), rule);
        }));
        let e = o.apply(&base(), &labels()).unwrap_err().to_string();
        assert_eq!(
            e,
            "decision.labels.\"Knock\".on = 1.5: must be between 0 and 1"
        );
        let o = Overrides::default().with(&change(|c| c.level_gate = Some(Some(5.0))));
        let e = o.apply(&base(), &labels()).unwrap_err().to_string();
        assert!(e.starts_with("pipeline.level_gate = 5"), "{e}");
    }
}
