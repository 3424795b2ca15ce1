//! `[groups]`: user-facing names for sounds the model splits over several labels
//! (`dog = ["Dog", "Bark", "Bow-wow"]`), so that one sound is one event.
//!
//! A group's score per window is the highest smoothed score among its labels; the decision
//! stage runs on it exactly as on a label. A label belongs to one group at most; a group's
//! name is not one of the model's labels. An empty group is no group (how a config turns a
//! built-in group off).

use std::collections::BTreeMap;

use super::settings::unknown_label;
use crate::validate::{Checked, Invalid, Problems};

/// Group name → the model labels it stands for.
pub type Groups = BTreeMap<String, Vec<String>>;

/// The groups that are on (not empty).
pub fn active(groups: &Groups) -> impl Iterator<Item = (&String, &Vec<String>)> {
    groups.iter().filter(|(_, members)| !members.is_empty())
}

/// The group `label` belongs to, if any.
pub fn group_of<'a>(groups: &'a Groups, label: &str) -> Option<&'a str> {
    active(groups)
        .find(|(_, members)| members.iter().any(|m| m == label))
        .map(|(name, _)| name.as_str())
}

/// Checks the groups; with the model's `labels`, also that every member is one of them and
/// that no group is named like a label.
pub fn validate_groups(groups: &Groups, labels: Option<&[String]>) -> Checked {
    let mut problems = Problems::default();
    let mut owner: BTreeMap<&str, &str> = BTreeMap::new();
    for (name, members) in active(groups) {
        let key = format!("groups.{name:?}");
        if name.trim().is_empty() {
            problems.push(Invalid::new("groups", "\"\"", "a group needs a name"));
        }
        if labels.is_some_and(|l| l.contains(name)) {
            problems.push(
                Invalid::new(
                    &key,
                    format!("{members:?}"),
                    "is named like one of the model's labels",
                )
                .allowed("a name of its own, e.g. in lower case (smoke_alarm)"),
            );
        }
        for m in members {
            if let Some(l) = labels.filter(|l| !l.contains(m)) {
                problems.push(unknown_label(&key, m, l));
            }
            if let Some(other) = owner.insert(m, name) {
                problems.push(
                    Invalid::new(
                        &key,
                        format!("{m:?}"),
                        format!("is already in group {other:?}"),
                    )
                    .allowed("a label in one group at most"),
                );
            }
        }
    }
    problems.into_result()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn groups(pairs: &[(&str, &[&str])]) -> Groups {
        pairs
            .iter()
            .map(|(n, m)| (n.to_string(), m.iter().map(|s| s.to_string()).collect()))
            .collect()
    }

    #[test]
    fn a_label_in_two_groups_names_both_groups() {
        let g = groups(&[("dog", &["Dog", "Bark"]), ("noise", &["Bark"])]);
        let err = validate_groups(&g, None).unwrap_err().to_string();
        assert_eq!(
            err,
            "groups.\"noise\" = \"Bark\": is already in group \"dog\" (allowed: a label in one group at most)"
        );
    }

    #[test]
    fn members_must_be_labels_with_the_nearest_one_suggested() {
        let labels: Vec<String> = ["Dog", "Bark"].map(String::from).to_vec();
        let g = groups(&[("dog", &["Dog", "bark"])]);
        let err = validate_groups(&g, Some(&labels)).unwrap_err().to_string();
        assert_eq!(
            err,
            "groups.\"dog\" = \"bark\": unknown label; did you mean \"Bark\"?"
        );
        assert!(
            validate_groups(&g, None).is_ok(),
            "no model, no label check"
        );
    }

    #[test]
    fn a_group_named_like_a_label_is_refused_and_an_empty_group_is_off() {
        let labels: Vec<String> = ["Dog", "Bark"].map(String::from).to_vec();
        let err = validate_groups(&groups(&[("Dog", &["Bark"])]), Some(&labels))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("groups.\"Dog\" = [\"Bark\"]: is named like"),
            "{err}"
        );
        let off = groups(&[("Dog", &[]), ("dog", &["Dog", "Bark"])]);
        assert!(validate_groups(&off, Some(&labels)).is_ok());
        assert_eq!(group_of(&off, "Bark"), Some("dog"));
        assert_eq!(active(&off).count(), 1);
    }
}
