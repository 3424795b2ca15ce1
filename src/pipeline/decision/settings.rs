//! The `[decision]` section: thresholds, durations, the listen list and per-label
//! overrides, and their validation against the model's labels.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::groups::{active, group_of, Groups};
use super::Rule;
use crate::validate::{Checked, Invalid, Problems};

/// Per-label overrides of the defaults in [`DecisionSettings`]; `None` keeps the default.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LabelRule {
    pub on: Option<f32>,
    pub off: Option<f32>,
    pub min_duration: Option<f64>,
    pub hold: Option<f64>,
}

/// The `[decision]` section of the config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DecisionSettings {
    /// A sound may start once its smoothed score is >= `on`.
    pub on: f32,
    /// A sound may end once its score is < `off`. Keeping `off` below `on` (hysteresis)
    /// stops a score hovering around one threshold from flickering events on and off.
    pub off: f32,
    /// Seconds a candidate must stay >= `off`, measured from the start of its first window,
    /// before `event_start` is emitted; shorter candidates are never reported.
    pub min_duration: f64,
    /// Seconds the score must stay below `off` before `event_end`, so that short gaps (a
    /// dog between barks) do not split one sound into several events.
    pub hold: f64,
    /// Labels and groups to follow; empty means all of the model's labels. Naming a label
    /// of a group follows the whole group.
    pub listen: Vec<String>,
    /// Labels and groups that make no event even when listened to (muted); naming a label of
    /// a group mutes the whole group. MQTT commands change it at run time (docs/mqtt.md).
    pub mute: Vec<String>,
    /// Per-label and per-group overrides, keyed by the label's display name as the model
    /// spells it, or by the group's name.
    pub labels: BTreeMap<String, LabelRule>,
}

impl Default for DecisionSettings {
    fn default() -> Self {
        // The same numbers as config/hark.toml, chosen from measurements on real recordings
        // (docs/defaults.md, scripts/measure_defaults.py); its listen list and per-label
        // overrides live only there.
        DecisionSettings {
            on: 0.5,
            off: 0.35,
            min_duration: 0.0,
            hold: 1.0,
            listen: Vec::new(),
            mute: Vec::new(),
            labels: BTreeMap::new(),
        }
    }
}

impl DecisionSettings {
    /// Checks every value against `known_labels` (the model's display names) and the
    /// groups. The error names each bad key, the value given and what is allowed, one
    /// problem per line.
    pub fn validate(&self, known_labels: &[String], groups: &Groups) -> Checked {
        self.check(Some(known_labels), groups)
    }

    /// The checks that need no model: thresholds, their order, durations, overrides of
    /// grouped labels. `hark check-config` runs these; label names are checked once the model
    /// is loaded.
    pub fn validate_values(&self, groups: &Groups) -> Checked {
        self.check(None, groups)
    }

    fn check(&self, known_labels: Option<&[String]>, groups: &Groups) -> Checked {
        let mut problems = Problems::default();
        // Listen lists and overrides may name groups as well as labels.
        let names: Option<Vec<String>> = known_labels.map(|l| {
            let mut n = l.to_vec();
            n.extend(active(groups).map(|(g, _)| g.clone()));
            n
        });
        let known_labels = names.as_deref();
        let on_ok = check_threshold("decision.on", self.on, &mut problems);
        let off_ok = check_threshold("decision.off", self.off, &mut problems);
        if on_ok && off_ok && self.off > self.on {
            problems.push(
                Invalid::new(
                    "decision.off",
                    self.off,
                    format!("is above decision.on = {}", self.on),
                )
                .allowed("off <= on"),
            );
        }
        check_seconds("decision.min_duration", self.min_duration, &mut problems);
        check_seconds("decision.hold", self.hold, &mut problems);

        if let Some(known_labels) = known_labels {
            for (key, list) in [
                ("decision.listen", &self.listen),
                ("decision.mute", &self.mute),
            ] {
                for name in list.iter().filter(|n| !known_labels.contains(n)) {
                    problems.push(unknown_label(key, name, known_labels));
                }
            }
        }
        for (name, rule) in &self.labels {
            if let Some(known_labels) = known_labels.filter(|k| !k.contains(name)) {
                problems.push(unknown_label("decision.labels", name, known_labels));
            }
            let key = format!("decision.labels.{name:?}");
            if let Some(g) = group_of(groups, name) {
                problems.push(
                    Invalid::new(
                        &key,
                        "{...}",
                        format!("{name:?} is in group {g:?}, whose events it makes"),
                    )
                    .allowed(format!("the override on decision.labels.{g:?}")),
                );
            }
            let mut fields_ok = true;
            if let Some(on) = rule.on {
                fields_ok &= check_threshold(&format!("{key}.on"), on, &mut problems);
            }
            if let Some(off) = rule.off {
                fields_ok &= check_threshold(&format!("{key}.off"), off, &mut problems);
            }
            if let Some(d) = rule.min_duration {
                check_seconds(&format!("{key}.min_duration"), d, &mut problems);
            }
            if let Some(h) = rule.hold {
                check_seconds(&format!("{key}.hold"), h, &mut problems);
            }
            // Only worth checking when this label changes a threshold and every threshold
            // involved is valid; otherwise the problem has been reported above.
            let (on, off) = (rule.on.unwrap_or(self.on), rule.off.unwrap_or(self.off));
            if (rule.on.is_some() || rule.off.is_some()) && fields_ok && on_ok && off_ok && off > on
            {
                problems.push(
                    Invalid::new(
                        format!("{key}.off"),
                        off,
                        format!("is above on = {on} (after filling in decision.on/decision.off)"),
                    )
                    .allowed("off <= on"),
                );
            }
        }

        problems.into_result()
    }

    /// The thresholds that apply to `label`: its overrides, else the defaults.
    pub(super) fn rule_for(&self, label: &str) -> Rule {
        let o = self.labels.get(label);
        Rule {
            on: o.and_then(|o| o.on).unwrap_or(self.on),
            off: o.and_then(|o| o.off).unwrap_or(self.off),
            min_duration: o.and_then(|o| o.min_duration).unwrap_or(self.min_duration),
            hold: o.and_then(|o| o.hold).unwrap_or(self.hold),
        }
    }
}

fn check_threshold(key: &str, value: f32, problems: &mut Problems) -> bool {
    let ok = (0.0..=1.0).contains(&value);
    if !ok {
        problems.push(Invalid::new(key, value, "must be between 0 and 1"));
    }
    ok
}

/// The longest `min_duration` or `hold`: an hour. Longer is a typo, not a sound.
const MAX_SECONDS: f64 = 3600.0;

fn check_seconds(key: &str, value: f64, problems: &mut Problems) {
    if !(value.is_finite() && value >= 0.0) {
        problems.push(Invalid::new(
            key,
            value,
            "must be a finite number of seconds >= 0",
        ));
    } else if value > MAX_SECONDS {
        problems.push(
            Invalid::new(key, value, "out of range").allowed(format!("0 to {MAX_SECONDS} seconds")),
        );
    }
}

/// A name that is not among the model's labels, with the nearest one when there is one.
pub(crate) fn unknown_label(key: &str, name: &str, known: &[String]) -> Invalid {
    let problem = match closest_label(name, known) {
        Some(s) => format!("unknown label; did you mean {s:?}?"),
        None => "unknown label; labels must be spelled exactly as the model's label list (see `hark model info`)".into(),
    };
    Invalid::new(key, format!("{name:?}"), problem)
}

/// A known label the user probably meant: the same name ignoring case and surrounding
/// spaces, else the shortest known label containing what was written, else the longest
/// known label contained in it.
pub(crate) fn closest_label<'a>(name: &str, known: &'a [String]) -> Option<&'a str> {
    let wanted = name.trim().to_lowercase();
    if wanted.is_empty() {
        return None;
    }
    let lower: Vec<(&str, String)> = known
        .iter()
        .map(|k| (k.as_str(), k.to_lowercase()))
        .collect();
    if let Some((k, _)) = lower.iter().find(|(_, l)| *l == wanted) {
        return Some(k);
    }
    if let Some((k, _)) = lower
        .iter()
        .filter(|(_, l)| l.contains(&wanted))
        .min_by_key(|(k, _)| k.len())
    {
        return Some(k);
    }
    lower
        .iter()
        .filter(|(_, l)| !l.is_empty() && wanted.contains(l.as_str()))
        .max_by_key(|(k, _)| k.len())
        .map(|(k, _)| *k)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::decision::test_support::{base, labels};

    #[test]
    fn validate_accepts_defaults_and_names_each_bad_key() {
        let known = labels();
        assert!(DecisionSettings::default()
            .validate(&known, &Groups::new())
            .is_ok());

        let err = DecisionSettings { on: 1.5, ..base() }
            .validate(&known, &Groups::new())
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "decision.on = 1.5: must be between 0 and 1"
        );

        let err = DecisionSettings { off: 0.6, ..base() }
            .validate(&known, &Groups::new())
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "decision.off = 0.6: is above decision.on = 0.5 (allowed: off <= on)"
        );

        let err = DecisionSettings {
            hold: -1.0,
            min_duration: f64::INFINITY,
            ..base()
        }
        .validate(&known, &Groups::new())
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "decision.min_duration = inf: must be a finite number of seconds >= 0\n\
             decision.hold = -1: must be a finite number of seconds >= 0"
        );
    }

    #[test]
    fn validate_checks_per_label_rules_after_merging_defaults() {
        let mut settings = base();
        settings.labels.insert(
            "Knock".into(),
            LabelRule {
                off: Some(0.6),
                ..LabelRule::default()
            },
        );
        settings.labels.insert(
            "Dog".into(),
            LabelRule {
                hold: Some(f64::NAN),
                ..LabelRule::default()
            },
        );
        let err = settings.validate(&labels(), &Groups::new()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "decision.labels.\"Dog\".hold = NaN: must be a finite number of seconds >= 0\n\
             decision.labels.\"Knock\".off = 0.6: is above on = 0.5 (after filling in decision.on/decision.off) (allowed: off <= on)"
        );
    }

    #[test]
    fn validate_suggests_the_closest_known_label() {
        let known: Vec<String> = ["Knock", "Dog", "Smoke detector, smoke alarm"]
            .map(String::from)
            .to_vec();
        let mut settings = DecisionSettings {
            listen: vec!["knock".into()],
            ..base()
        };
        settings
            .labels
            .insert("Smoke detector".into(), LabelRule::default());
        let err = settings.validate(&known, &Groups::new()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "decision.listen = \"knock\": unknown label; did you mean \"Knock\"?\n\
             decision.labels = \"Smoke detector\": unknown label; did you mean \"Smoke detector, smoke alarm\"?"
        );

        let err = DecisionSettings {
            listen: vec!["Cat".into()],
            ..base()
        }
        .validate(&known, &Groups::new())
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with("decision.listen = \"Cat\": unknown label; labels must"),
            "{err}"
        );
    }

    #[test]
    fn settings_deserialize_from_toml_with_quoted_label_keys() {
        let s: DecisionSettings = toml::from_str(
            "on = 0.6\nlisten = [\"Knock\"]\n[labels.\"Smoke detector\"]\non = 0.3\n",
        )
        .unwrap();
        assert_eq!(s.on, 0.6);
        assert_eq!(s.off, DecisionSettings::default().off);
        assert_eq!(s.labels["Smoke detector"].on, Some(0.3));
        assert_eq!(s.labels["Smoke detector"].hold, None);
        assert!(
            toml::from_str::<DecisionSettings>("[labels.Knock]\nthreshold = 0.3").is_ok(),
            "unknown keys are reported by config::load, not rejected here"
        );
        assert!(toml::from_str::<DecisionSettings>("hysteresis = 0.1").is_ok());
    }

    #[test]
    fn groups_are_names_for_listen_and_overrides_but_their_labels_take_no_override() {
        let known = labels();
        let groups = Groups::from([("pets".to_string(), vec!["Dog".to_string()])]);
        let mut s = DecisionSettings {
            listen: vec!["pets".into(), "Knock".into()],
            ..base()
        };
        s.labels.insert("pets".into(), LabelRule::default());
        assert!(s.validate(&known, &groups).is_ok());
        s.labels.insert("Dog".into(), LabelRule::default());
        let err = s.validate_values(&groups).unwrap_err().to_string();
        assert_eq!(
            err,
            "decision.labels.\"Dog\" = {...}: \"Dog\" is in group \"pets\", whose events it makes (allowed: the override on decision.labels.\"pets\")"
        );
        let err = DecisionSettings {
            listen: vec!["pet".into()],
            ..base()
        }
        .validate(&known, &groups)
        .unwrap_err()
        .to_string();
        assert!(err.contains("did you mean \"pets\"?"), "{err}");
    }
}
