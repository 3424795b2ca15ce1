//! The `[[hooks]]` entries: what runs on which events, and their validation; the
//! environment a hook gets.

use serde::{Deserialize, Serialize};

use super::HookEvent;
use crate::record::Record;
use crate::validate::{count_in, Checked, Invalid, Problems};

/// One `[[hooks]]` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HookSettings {
    /// Names the hook in logs; unique.
    pub name: String,
    /// Labels that trigger the hook, exactly as the model spells them; `["*"]` for all.
    pub labels: Vec<String>,
    /// Which event records trigger it.
    #[serde(default = "default_on")]
    pub on: Vec<HookEvent>,
    /// Program and arguments, run without a shell. The event is in the environment and on
    /// stdin, never in the arguments.
    pub command: Vec<String>,
    /// Seconds after a run during which the same label and event type do not run the hook
    /// again.
    #[serde(default)]
    pub cooldown: f64,
    /// Seconds a run may take before its process group is killed.
    #[serde(default = "default_timeout")]
    pub timeout: f64,
    /// Runs of this hook at once; an event arriving beyond that is skipped (and logged).
    #[serde(
        default = "default_max_concurrent",
        deserialize_with = "crate::validate::whole_number"
    )]
    pub max_concurrent: usize,
}

fn default_on() -> Vec<HookEvent> {
    vec![HookEvent::EventStart]
}

fn default_timeout() -> f64 {
    10.0
}

fn default_max_concurrent() -> usize {
    1
}

/// The longest timeout or cooldown accepted, a day; anything longer is a typo.
const MAX_SECONDS: f64 = 86_400.0;

impl HookSettings {
    /// Checks what deserialization cannot; each problem names `hooks[i].key`, `i` being the
    /// hook's place in the list.
    pub fn validate(&self, i: usize) -> Checked {
        let key = |k: &str| format!("hooks[{i}].{k}");
        let mut problems = Problems::default();
        if self.name.trim().is_empty() {
            problems.push(Invalid::new(
                key("name"),
                format!("{:?}", self.name),
                "must not be empty",
            ));
        }
        if self.labels.is_empty() {
            problems.push(
                Invalid::new(key("labels"), "[]", "must list at least one label")
                    .allowed(r#"label names, or ["*"] for all"#),
            );
        } else if self.labels.iter().any(|l| l.is_empty()) {
            problems.push(Invalid::new(
                key("labels"),
                format!("{:?}", self.labels),
                "a label is empty",
            ));
        }
        if self.on.is_empty() {
            problems.push(
                Invalid::new(key("on"), "[]", "must list at least one event")
                    .allowed("event_start, event_end or both"),
            );
        }
        if let Some(p) = self.command_problem() {
            problems.push(Invalid::new(
                key("command"),
                format!("{:?}", self.command),
                p,
            ));
        }
        if !(self.cooldown.is_finite() && (0.0..=MAX_SECONDS).contains(&self.cooldown)) {
            problems.push(
                Invalid::new(key("cooldown"), self.cooldown, "out of range")
                    .allowed(format!("0 to {MAX_SECONDS} seconds")),
            );
        }
        if !(self.timeout.is_finite() && self.timeout > 0.0 && self.timeout <= MAX_SECONDS) {
            problems.push(
                Invalid::new(key("timeout"), self.timeout, "out of range")
                    .allowed(format!("more than 0, at most {MAX_SECONDS} seconds")),
            );
        }
        if let Err(p) = count_in(&key("max_concurrent"), self.max_concurrent, 1, 64) {
            problems.push(p);
        }
        problems.into_result()
    }

    fn command_problem(&self) -> Option<&'static str> {
        match self.command.first() {
            None => Some(
                r#"must not be empty; give the program and its arguments, e.g. ["notify-send", "hark"]"#,
            ),
            Some(program) if program.is_empty() => Some("the program (first element) is empty"),
            Some(_) if self.command.iter().any(|a| a.contains('\0')) => {
                Some("an argument contains a NUL byte")
            }
            Some(_) => None,
        }
    }

    /// Whether `event` of `label` (in `group`, if any) triggers this hook: its labels may
    /// name the label or the group.
    pub fn matches(&self, event: HookEvent, label: &str, group: Option<&str>) -> bool {
        self.on.contains(&event)
            && self
                .labels
                .iter()
                .any(|l| l == "*" || l == label || Some(l.as_str()) == group)
    }

    /// The hook's labels the model does not know (always empty for `"*"`), for a warning at
    /// startup: a misspelt label would otherwise never fire.
    pub fn unknown_labels<'a>(&'a self, known: &[String]) -> Vec<&'a str> {
        self.labels
            .iter()
            .filter(|l| *l != "*" && !known.contains(l))
            .map(String::as_str)
            .collect()
    }
}

/// Validates every hook and that names are unique; each problem names `hooks[i].key`.
pub fn validate_hooks(hooks: &[HookSettings]) -> Checked {
    let mut problems = Problems::default();
    for (i, hook) in hooks.iter().enumerate() {
        problems.absorb(hook.validate(i));
        if let Some(j) = hooks[..i].iter().position(|h| h.name == hook.name) {
            problems.push(Invalid::new(
                format!("hooks[{i}].name"),
                format!("{:?}", hook.name),
                format!("is already the name of hooks[{j}]"),
            ));
        }
    }
    problems.into_result()
}

/// The environment a hook gets for `rec` (on top of hark's own): `HARK_EVENT`, `HARK_LABEL`,
/// `HARK_GROUP` (empty for a label in no group), `HARK_SCORE` (the score for a start, the peak
/// for an end), `HARK_START`, `HARK_END` (empty for a start), `HARK_ID`, `HARK_TIME`, and
/// `HARK_CLIP` / `HARK_IMAGE` (the event's clip and picture, `[clips]`; empty without one).
/// `None` for records that are not events.
pub fn hook_env(rec: &Record) -> Option<[(&'static str, String); 10]> {
    let (clip, image) = match rec {
        Record::EventStart { clip, image, .. } | Record::EventEnd { clip, image, .. } => {
            (clip.clone(), image.clone())
        }
        _ => (None, None),
    };
    let (event, id, label, score, start, end, time) = match rec {
        Record::EventStart {
            id,
            label,
            start,
            time,
            score,
            ..
        } => ("event_start", id, label, score, start, None, time),
        Record::EventEnd {
            id,
            label,
            start,
            end,
            time,
            peak,
            ..
        } => ("event_end", id, label, peak, start, Some(end), time),
        _ => return None,
    };
    Some([
        ("HARK_EVENT", event.to_owned()),
        ("HARK_LABEL", label.clone()),
        ("HARK_GROUP", rec.group().unwrap_or_default().to_owned()),
        ("HARK_SCORE", score.to_string()),
        ("HARK_START", start.to_string()),
        ("HARK_END", end.map(f64::to_string).unwrap_or_default()),
        ("HARK_ID", id.to_string()),
        ("HARK_TIME", time.clone()),
        ("HARK_CLIP", clip.unwrap_or_default()),
        ("HARK_IMAGE", image.unwrap_or_default()),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::ignored_keys as ignored;
    use std::collections::HashMap;

    fn hook() -> HookSettings {
        HookSettings {
            name: "n".into(),
            labels: vec!["Knock".into()],
            on: default_on(),
            command: vec!["true".into()],
            cooldown: 0.0,
            timeout: 10.0,
            max_concurrent: 1,
        }
    }

    #[test]
    fn validate_names_the_key() {
        let with = |f: fn(&mut HookSettings)| {
            let mut h = hook();
            f(&mut h);
            h
        };
        let cases = [
            (with(|h| h.command = vec![]), "command:"),
            (with(|h| h.command = vec!["".into()]), "command:"),
            (with(|h| h.timeout = 0.0), "timeout:"),
            (with(|h| h.timeout = f64::NAN), "timeout:"),
            (with(|h| h.cooldown = -1.0), "cooldown:"),
            (with(|h| h.max_concurrent = 0), "max_concurrent:"),
            (with(|h| h.labels = vec![]), "labels:"),
            (with(|h| h.on = vec![]), "on:"),
            (with(|h| h.name = " ".into()), "name:"),
        ];
        for (h, key) in cases {
            let err = h.validate(2).unwrap_err().to_string();
            let want = format!("hooks[2].{} = ", key.trim_end_matches(':'));
            assert!(err.starts_with(&want), "{err}");
        }
        assert!(hook().validate(0).is_ok());
        let err = validate_hooks(&[hook(), hook()]).unwrap_err().to_string();
        assert!(err.starts_with("hooks[1].name = "), "{err}");
        let err = validate_hooks(&[
            hook(),
            HookSettings {
                timeout: 0.0,
                ..hook()
            },
        ])
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("hooks[1].timeout = "), "{err}");
    }

    #[test]
    fn matches_labels_and_events() {
        let h = hook();
        assert!(h.matches(HookEvent::EventStart, "Knock", None));
        assert!(!h.matches(HookEvent::EventEnd, "Knock", None));
        assert!(!h.matches(HookEvent::EventStart, "knock", None));
        let all = HookSettings {
            labels: vec!["*".into()],
            on: vec![HookEvent::EventEnd],
            ..hook()
        };
        assert!(all.matches(HookEvent::EventEnd, "Anything", None));
        assert_eq!(hook().unknown_labels(&["Speech".into()]), ["Knock"]);
        assert!(all.unknown_labels(&[]).is_empty());
    }

    #[test]
    fn env_of_start_and_end() {
        let start = Record::EventStart {
            id: 4,
            label: "Door".into(),
            group: None,
            start: 1.5,
            time: "t".into(),
            score: 0.75,
            clip: None,
            image: None,
        };
        let env: HashMap<_, _> = hook_env(&start).unwrap().into_iter().collect();
        assert_eq!(env["HARK_EVENT"], "event_start");
        assert_eq!(env["HARK_SCORE"], "0.75");
        assert_eq!(env["HARK_START"], "1.5");
        assert_eq!(env["HARK_END"], "");
        assert_eq!(env["HARK_ID"], "4");
        let end = Record::EventEnd {
            id: 4,
            label: "Door".into(),
            group: None,
            start: 1.5,
            end: 2.25,
            time: "t".into(),
            peak: 0.5,
            clip: None,
            image: None,
        };
        let env: HashMap<_, _> = hook_env(&end).unwrap().into_iter().collect();
        assert_eq!(env["HARK_EVENT"], "event_end");
        assert_eq!(env["HARK_SCORE"], "0.5");
        assert_eq!(env["HARK_END"], "2.25");
        assert_eq!(env["HARK_CLIP"], "");
        let mut with_clip = end.clone();
        if let Record::EventEnd { clip, image, .. } = &mut with_clip {
            *clip = Some("/c/a.flac".into());
            *image = Some("/c/a.png".into());
        }
        let env: HashMap<_, _> = hook_env(&with_clip).unwrap().into_iter().collect();
        assert_eq!(
            (env["HARK_CLIP"].as_str(), env["HARK_IMAGE"].as_str()),
            ("/c/a.flac", "/c/a.png")
        );
    }

    #[test]
    fn defaults_and_unknown_keys() {
        #[derive(Deserialize)]
        struct File {
            hooks: Vec<HookSettings>,
        }
        let f: File =
            toml::from_str("[[hooks]]\nname = \"a\"\nlabels = [\"Knock\"]\ncommand = [\"true\"]\n")
                .unwrap();
        let h = &f.hooks[0];
        assert_eq!(h.on, [HookEvent::EventStart]);
        assert_eq!((h.cooldown, h.timeout, h.max_concurrent), (0.0, 10.0, 1));
        let bad =
            "[[hooks]]\nname = \"a\"\nlabels = [\"Knock\"]\ncommand = [\"true\"]\nshell = true\n";
        assert_eq!(ignored::<File>(bad), ["hooks.0.shell"]);
        let bad = "[[hooks]]\nname = \"a\"\nlabels = [\"Knock\"]\ncommand = [\"true\"]\non = [\"start\"]\n";
        assert!(toml::from_str::<File>(bad).is_err());
    }

    #[test]
    fn example_config_is_valid() {
        #[derive(Deserialize)]
        struct File {
            hooks: Vec<HookSettings>,
        }
        let f: File = toml::from_str(include_str!("../../../config/hooks.example.toml"))
            .unwrap_or_else(|e| panic!("config/hooks.example.toml: {e}"));
        assert!(f.hooks.len() >= 3);
        validate_hooks(&f.hooks).unwrap();
    }
}
