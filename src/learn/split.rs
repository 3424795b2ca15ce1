//! Honest held-out splits: which clips each evaluation round tests on.
//!
//! Windows of one recording are near-duplicates (they overlap, and share the room, the
//! microphone and the source), so a split that scatters them over training and testing
//! measures memory, not generalisation. Splits here are therefore made of whole groups
//! (see [`super::dataset::Clip::group`]), or of the dataset's own folds when it has them,
//! and every clip is tested at most once. This module decides the split only; it never
//! looks at audio or scores.

use std::collections::{BTreeMap, BTreeSet};

/// What the user asked for.
#[derive(Debug, Clone, PartialEq)]
pub enum SplitRequest {
    /// k rounds; each tests on about 1/k of the groups (or on one of the dataset's folds,
    /// when it has folds: then there is one round per fold and k is not used).
    CrossValidate { k: usize },
    /// Test on this fold of the dataset only; train on the others.
    TestFold(String),
}

/// Errors that stop evaluation; each says plainly what is missing.
#[derive(Debug, thiserror::Error)]
pub enum SplitError {
    #[error("the dataset is too small for a held-out split: {0}; add recordings, or pass --no-eval to train on everything without measuring")]
    TooSmall(String),
    #[error("--test-fold {given:?} is not a fold of the dataset; its folds are {}", .folds.join(", "))]
    UnknownFold { given: String, folds: Vec<String> },
    #[error("--test-fold needs a labels.csv with a `fold` column; without one, use --folds K for cross-validation over recording groups")]
    NoFolds,
    #[error("group {group:?} has clips in folds {} and {}; a recording must stay within one fold, or testing on one fold measures memory — fix the fold column or the grouping", .folds.0, .folds.1)]
    GroupSpansFolds {
        group: String,
        folds: (String, String),
    },
}

/// One round of evaluation.
#[derive(Debug, Clone)]
pub struct Round {
    pub name: String,
    /// Indices (into the clip list given to [`plan`]) of the clips tested in this round;
    /// all other clips are trained on.
    pub test: Vec<usize>,
}

/// The rounds, plus what the user should be told about them.
#[derive(Debug, Clone)]
pub struct Plan {
    pub description: String,
    pub rounds: Vec<Round>,
    /// Classes none of whose clips are tested (too few recordings to hold one out).
    pub untested: Vec<String>,
    pub warnings: Vec<String>,
}

/// What [`plan`] needs to know about a clip.
#[derive(Debug, Clone)]
pub struct ClipRef<'a> {
    pub label: usize,
    pub group: &'a str,
    pub fold: Option<&'a str>,
}

/// Decide the rounds for `clips` of `classes`.
pub fn plan(
    classes: &[String],
    clips: &[ClipRef],
    request: &SplitRequest,
    seed: u64,
) -> Result<Plan, SplitError> {
    if clips.iter().any(|c| c.fold.is_some()) {
        by_folds(classes, clips, request)
    } else {
        match request {
            SplitRequest::TestFold(_) => Err(SplitError::NoFolds),
            SplitRequest::CrossValidate { k } => by_groups(classes, clips, *k, seed),
        }
    }
}

fn by_folds(
    classes: &[String],
    clips: &[ClipRef],
    request: &SplitRequest,
) -> Result<Plan, SplitError> {
    check_groups_within_folds(clips)?;
    let folds = sorted_folds(clips);
    if folds.len() < 2 {
        return Err(SplitError::TooSmall(format!(
            "every clip is in fold {}; testing on a fold needs at least two",
            folds.first().copied().unwrap_or("?")
        )));
    }
    let (untested, warnings) = fold_coverage(classes, clips)?;
    let round = |f: &str| Round {
        name: format!("fold {f}"),
        test: (0..clips.len())
            .filter(|&i| clips[i].fold == Some(f))
            .collect(),
    };
    let (description, rounds) = match request {
        SplitRequest::CrossValidate { .. } => (
            format!(
                "leave-one-fold-out over the dataset's folds {}",
                folds.join(", ")
            ),
            folds.iter().map(|f| round(f)).collect(),
        ),
        SplitRequest::TestFold(f) => {
            if !folds.contains(&f.as_str()) {
                return Err(SplitError::UnknownFold {
                    given: f.clone(),
                    folds: folds.iter().map(|s| s.to_string()).collect(),
                });
            }
            let others: Vec<&str> = folds.iter().copied().filter(|o| o != f).collect();
            (
                format!("fold {f} held out; trained on folds {}", others.join(", ")),
                vec![round(f)],
            )
        }
    };
    Ok(Plan {
        description,
        rounds,
        untested,
        warnings,
    })
}

/// Refuse a group whose clips are in two folds: testing on one of them would measure memory.
fn check_groups_within_folds(clips: &[ClipRef]) -> Result<(), SplitError> {
    let mut group_fold: BTreeMap<&str, &str> = BTreeMap::new();
    for c in clips {
        let fold = c.fold.unwrap_or("");
        if let Some(prev) = group_fold.insert(c.group, fold) {
            if prev != fold {
                return Err(SplitError::GroupSpansFolds {
                    group: c.group.to_string(),
                    folds: (prev.to_string(), fold.to_string()),
                });
            }
        }
    }
    Ok(())
}

/// The dataset's folds; numeric folds sort as numbers (1, 2, 10), others as text.
fn sorted_folds<'a>(clips: &[ClipRef<'a>]) -> Vec<&'a str> {
    let mut folds: Vec<&str> = clips
        .iter()
        .filter_map(|c| c.fold)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    folds.sort_by(|a, b| match (a.parse::<f64>(), b.parse::<f64>()) {
        (Ok(x), Ok(y)) => x.total_cmp(&y),
        _ => a.cmp(b),
    });
    folds
}

/// Which classes are never tested (no clip in any fold), and a warning for each class that
/// is in one fold only; at least two classes must be tested.
fn fold_coverage(
    classes: &[String],
    clips: &[ClipRef],
) -> Result<(Vec<String>, Vec<String>), SplitError> {
    let mut warnings = Vec::new();
    let mut untested = Vec::new();
    let mut tested_classes = 0;
    for (ci, class) in classes.iter().enumerate() {
        let in_folds: BTreeSet<&str> = clips
            .iter()
            .filter(|c| c.label == ci)
            .filter_map(|c| c.fold)
            .collect();
        match in_folds.len() {
            0 => {}
            1 => {
                warnings.push(format!(
                    "class {class} is only in fold {}: when that fold is tested the model has never heard {class}",
                    in_folds.iter().next().copied().unwrap_or("?")
                ));
                tested_classes += 1;
            }
            _ => tested_classes += 1,
        }
        if in_folds.is_empty() {
            untested.push(class.clone());
        }
    }
    if tested_classes < 2 {
        return Err(SplitError::TooSmall(
            "fewer than two classes have clips in the folds".into(),
        ));
    }
    Ok((untested, warnings))
}

/// Stratified group k-fold: whole groups go to rounds, spreading each class's groups evenly.
fn by_groups(
    classes: &[String],
    clips: &[ClipRef],
    k: usize,
    seed: u64,
) -> Result<Plan, SplitError> {
    let mut groups: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, c) in clips.iter().enumerate() {
        groups.entry(c.group).or_default().push(i);
    }
    let per_class = groups_by_class(classes, clips, &groups);
    let (untested, warnings) = single_group_classes(classes, clips, &per_class);
    let testable: Vec<usize> = (0..classes.len())
        .filter(|&ci| per_class[ci].len() >= 2)
        .collect();
    if testable.len() < 2 {
        let counts: Vec<String> = classes
            .iter()
            .zip(&per_class)
            .map(|(c, g)| format!("{c}: {} group(s)", g.len()))
            .collect();
        return Err(SplitError::TooSmall(format!(
            "held-out testing needs at least two classes with two or more recording groups each ({})",
            counts.join(", ")
        )));
    }
    let n_groups: usize = testable.iter().map(|&ci| per_class[ci].len()).sum();
    let k = k.min(n_groups);
    if k < 2 {
        return Err(SplitError::TooSmall(
            "cross-validation needs at least 2 rounds".into(),
        ));
    }
    let mut rounds: Vec<Round> = (1..=k)
        .map(|r| Round {
            name: format!("round {r}"),
            test: Vec::new(),
        })
        .collect();
    for &ci in &testable {
        deal_groups(&mut rounds, &per_class[ci], &groups, seed);
    }
    for r in &mut rounds {
        r.test.sort_unstable();
    }
    Ok(Plan {
        description: format!(
            "{k}-fold cross-validation over {n_groups} recording groups, stratified by class"
        ),
        rounds,
        untested,
        warnings,
    })
}

/// The groups of each class: a group belongs to the class most of its clips have.
fn groups_by_class<'a>(
    classes: &[String],
    clips: &[ClipRef],
    groups: &BTreeMap<&'a str, Vec<usize>>,
) -> Vec<Vec<&'a str>> {
    let majority = |idx: &[usize]| {
        let mut counts = vec![0usize; classes.len()];
        for &i in idx {
            counts[clips[i].label] += 1;
        }
        (0..classes.len())
            .max_by_key(|&c| (counts[c], usize::MAX - c))
            .unwrap_or(0)
    };
    let mut per_class: Vec<Vec<&str>> = vec![Vec::new(); classes.len()];
    for (g, idx) in groups {
        per_class[majority(idx)].push(g);
    }
    per_class
}

/// Classes with clips but fewer than two groups: trained on, never tested; with a warning each.
fn single_group_classes(
    classes: &[String],
    clips: &[ClipRef],
    per_class: &[Vec<&str>],
) -> (Vec<String>, Vec<String>) {
    let mut warnings = Vec::new();
    let mut untested = Vec::new();
    for (ci, gs) in per_class.iter().enumerate() {
        if gs.len() < 2 && clips.iter().any(|c| c.label == ci) {
            untested.push(classes[ci].clone());
            let n = clips.iter().filter(|c| c.label == ci).count();
            warnings.push(format!(
                "class {} comes from {} recording group ({n} clip(s)): none of it can be held out while some is trained on, so it is trained on but never tested; record it again on another occasion to measure it",
                classes[ci],
                gs.len()
            ));
        }
    }
    (untested, warnings)
}

/// Deal one class's groups `gs` to the rounds, each to the round with the fewest clips of
/// the class so far.
fn deal_groups(rounds: &mut [Round], gs: &[&str], groups: &BTreeMap<&str, Vec<usize>>, seed: u64) {
    let k = rounds.len();
    let mut gs = gs.to_vec();
    // Largest groups first so the rounds end up even; ties in a seeded but fixed order.
    gs.sort_by_key(|g| (usize::MAX - groups[g].len(), mix(seed, g)));
    let mut class_count = vec![0usize; k];
    for g in gs {
        let r = (0..k)
            .min_by_key(|&r| (class_count[r], rounds[r].test.len(), r))
            .unwrap_or(0);
        class_count[r] += groups[g].len();
        rounds[r].test.extend(&groups[g]);
    }
}

/// A stable hash of a group name and the seed (FNV-1a), to break ties reproducibly.
fn mix(seed: u64, s: &str) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64 ^ seed;
    for b in s.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classes() -> Vec<String> {
        vec!["a".into(), "b".into()]
    }

    #[test]
    fn groups_never_straddle_rounds_and_every_clip_is_tested_once() {
        let names: Vec<String> = (0..40).map(|i| format!("g{}", i / 4)).collect();
        let clips: Vec<ClipRef> = (0..40)
            .map(|i| ClipRef {
                label: (i / 4) % 2,
                group: &names[i],
                fold: None,
            })
            .collect();
        let p = plan(&classes(), &clips, &SplitRequest::CrossValidate { k: 5 }, 1).unwrap();
        assert_eq!(p.rounds.len(), 5);
        let mut seen = [0; 40];
        for r in &p.rounds {
            let groups: BTreeSet<&str> = r.test.iter().map(|&i| clips[i].group).collect();
            for &i in &r.test {
                seen[i] += 1;
            }
            // Both classes in every round, and each group whole.
            assert!(r.test.iter().any(|&i| clips[i].label == 0));
            assert!(r.test.iter().any(|&i| clips[i].label == 1));
            for g in groups {
                let all: Vec<usize> = (0..40).filter(|&i| clips[i].group == g).collect();
                assert!(all.iter().all(|i| r.test.contains(i)));
            }
        }
        assert!(seen.iter().all(|&n| n == 1));
    }

    #[test]
    fn a_class_from_one_recording_is_trained_on_but_not_tested() {
        let names = ["x1", "x2", "x3", "y", "y", "y"];
        let clips: Vec<ClipRef> = names
            .iter()
            .enumerate()
            .map(|(i, g)| ClipRef {
                label: usize::from(i >= 3),
                group: g,
                fold: None,
            })
            .collect();
        let three = vec!["a".into(), "b".into(), "c".into()];
        let mut clips3 = clips.clone();
        clips3.push(ClipRef {
            label: 2,
            group: "z1",
            fold: None,
        });
        clips3.push(ClipRef {
            label: 2,
            group: "z2",
            fold: None,
        });
        let p = plan(&three, &clips3, &SplitRequest::CrossValidate { k: 5 }, 1).unwrap();
        assert_eq!(p.untested, vec!["b"]);
        assert!(p.warnings[0].contains("never tested"), "{:?}", p.warnings);
        assert!(p
            .rounds
            .iter()
            .all(|r| r.test.iter().all(|&i| clips3[i].label != 1)));
        // With only a and b, a single class is left to test: too small, said plainly.
        let e = plan(&classes(), &clips, &SplitRequest::CrossValidate { k: 5 }, 1)
            .unwrap_err()
            .to_string();
        assert!(e.contains("too small for a held-out split"), "{e}");
    }

    #[test]
    fn dataset_folds_are_used_as_they_are_and_sorted_as_numbers() {
        let folds = ["1", "10", "2", "1", "10", "2"];
        let groups: Vec<String> = (0..6).map(|i| format!("g{i}")).collect();
        let clips: Vec<ClipRef> = (0..6)
            .map(|i| ClipRef {
                label: i % 2,
                group: &groups[i],
                fold: Some(folds[i]),
            })
            .collect();
        let p = plan(&classes(), &clips, &SplitRequest::CrossValidate { k: 5 }, 1).unwrap();
        let names: Vec<&str> = p.rounds.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, vec!["fold 1", "fold 2", "fold 10"]);
        let p = plan(&classes(), &clips, &SplitRequest::TestFold("10".into()), 1).unwrap();
        assert_eq!(p.rounds[0].test, vec![1, 4]);
        assert!(p.description.contains("trained on folds 1, 2"));
        let e = plan(&classes(), &clips, &SplitRequest::TestFold("3".into()), 1).unwrap_err();
        assert!(e.to_string().contains("1, 2, 10"), "{e}");
    }

    #[test]
    fn a_test_fold_needs_a_fold_column() {
        let clips = vec![
            ClipRef {
                label: 0,
                group: "x",
                fold: None,
            },
            ClipRef {
                label: 1,
                group: "y",
                fold: None,
            },
        ];
        let e = plan(&classes(), &clips, &SplitRequest::TestFold("1".into()), 1).unwrap_err();
        assert!(e.to_string().contains("`fold` column"), "{e}");
    }

    #[test]
    fn a_group_in_two_folds_is_refused() {
        let clips = vec![
            ClipRef {
                label: 0,
                group: "rec",
                fold: Some("1"),
            },
            ClipRef {
                label: 1,
                group: "rec",
                fold: Some("2"),
            },
        ];
        let e = plan(&classes(), &clips, &SplitRequest::CrossValidate { k: 2 }, 1).unwrap_err();
        assert!(e.to_string().contains("\"rec\""), "{e}");
    }
}
