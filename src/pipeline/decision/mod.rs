//! Turning smoothed scores into sound events.
//!
//! Owns, for every label or group of labels (`groups`), the hysteresis state machine that
//! decides when a sound begins and ends: it starts when the score reaches `on`, must last
//! `min_duration` before it is reported, and ends once the score has stayed below `off` for
//! `hold` seconds. A group's score is its best label's. Thresholds can be overridden per
//! label or group and the ones followed can be limited (Frigate-style filters). It is pure: no I/O, no threads and no clocks — stream times and the wall-clock
//! string come in with each call — and it emits [`Record`]s without knowing how they are
//! printed, published or handed to hooks.

use std::collections::HashSet;

use crate::record::Record;

mod groups;
mod settings;

pub use groups::{active as active_groups, group_of, validate_groups, Groups};
pub(crate) use settings::unknown_label;
pub use settings::{DecisionSettings, LabelRule};

/// The effective thresholds of one label or group, after overrides.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Rule {
    pub(crate) on: f32,
    pub(crate) off: f32,
    pub(crate) min_duration: f64,
    pub(crate) hold: f64,
}

/// Where one label or group is in its life cycle.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    Idle,
    /// Reached `on` at `onset` but has not lasted `min_duration` yet; nothing emitted.
    Candidate {
        onset: f64,
        peak: f32,
    },
    /// `event_start` has been emitted.
    Active {
        id: u64,
        onset: f64,
        peak: f32,
        /// End of the last window whose score was >= `off`: where the sound is reported
        /// to end, and where the `hold` countdown starts.
        last_above_end: f64,
        /// The latest window was below `off`, i.e. the event is inside a possible gap.
        below: bool,
    },
}

/// What one state machine follows: a group of labels, or one label alone.
#[derive(Debug, Clone)]
struct Track {
    /// The group's name, for a group.
    group: Option<String>,
    /// Indices of its labels in the score vector (one for a lone label).
    members: Vec<usize>,
    rule: Rule,
    /// Whether new events may start. A label dropped from `listen` by a reload keeps its
    /// open event until that ends, so every `event_start` still gets its `event_end`.
    listened: bool,
    phase: Phase,
    /// The member whose score was the event's (or candidate's) peak.
    peak_member: usize,
}

impl Track {
    /// The name overrides and the listen list know it by.
    fn name<'a>(&'a self, labels: &'a [String]) -> &'a str {
        self.group.as_deref().unwrap_or(&labels[self.members[0]])
    }

    /// The track's score (its best member's) and that member.
    fn score(&self, scores: &[f32]) -> (f32, usize) {
        let mut best = (f32::NEG_INFINITY, self.members[0]);
        for &m in &self.members {
            // A missing score counts as 0; NaN never wins, so it is treated as silence.
            let s = scores.get(m).copied().unwrap_or(0.0);
            if s > best.0 {
                best = (s, m);
            }
        }
        if best.0 == f32::NEG_INFINITY {
            best.0 = f32::NAN;
        }
        best
    }
}

/// Follows every label's (or group's) score and reports when sounds begin and end.
#[derive(Debug, Clone)]
pub struct Decider {
    labels: Vec<String>,
    groups: Groups,
    tracks: Vec<Track>,
    /// Tracks a reload of the groups removed while their event was open: ended at the next
    /// window, where their sound was last heard.
    retired: Vec<Track>,
    /// Id of the next `event_start`; ids are unique across labels for the daemon's life.
    next_id: u64,
}

impl Decider {
    /// A decider for a model with these `labels` (index = position in the score vector), no
    /// groups. `settings` should have passed [`DecisionSettings::validate`].
    pub fn new(settings: &DecisionSettings, labels: &[String]) -> Self {
        Decider::with_groups(settings, &Groups::new(), labels)
    }

    /// A decider whose `groups` (validated against `labels`) each make one event.
    pub fn with_groups(settings: &DecisionSettings, groups: &Groups, labels: &[String]) -> Self {
        let mut d = Decider {
            labels: labels.to_vec(),
            groups: groups.clone(),
            tracks: build_tracks(groups, labels),
            retired: Vec::new(),
            next_id: 1,
        };
        // Decides rules and `listened` the same way a reload does.
        d.set_settings(settings);
        d
    }

    /// Feeds one smoothed score vector for the window `[start, end)` in stream seconds.
    /// Returns what happened, `event_end`s before `event_start`s, each in the order of the
    /// tracks' first labels. `time` is the wall clock to stamp on the records. A missing
    /// score counts as 0.
    pub fn update(&mut self, start: f64, end: f64, scores: &[f32], time: &str) -> Vec<Record> {
        let mut ends = self.end_retired(time);
        let mut starts = Vec::new();
        for track in self.tracks.iter_mut() {
            if !track.listened && track.phase == Phase::Idle {
                continue;
            }
            let (score, best) = track.score(scores);
            let (phase, ended) = step(track.phase, &track.rule, score, start, end);
            if peak_rose(&track.phase, &phase) {
                track.peak_member = best;
            }
            track.phase = phase;
            if let Some(e) = ended {
                ends.push(end_record(
                    track,
                    &self.labels,
                    e.id,
                    e.onset,
                    e.end,
                    e.peak,
                    time,
                ));
            }
            // Checked in the same window the candidate appeared in, so that with
            // `min_duration = 0` an event starts at once.
            if let Phase::Candidate { onset, peak } = track.phase {
                if end - onset >= track.rule.min_duration {
                    let id = self.next_id;
                    self.next_id += 1;
                    starts.push(Record::EventStart {
                        id,
                        label: self.labels[best].clone(),
                        group: track.group.clone(),
                        start: onset,
                        time: time.to_string(),
                        score,
                    });
                    track.phase = Phase::Active {
                        id,
                        onset,
                        peak,
                        last_above_end: end,
                        below: false,
                    };
                }
            }
        }
        ends.extend(starts);
        ends
    }

    /// Ends every open event because the stream stopped at `at` (stream seconds). An event
    /// still sounding ends at `at`; one already in its `hold` gap ends where its sound
    /// stopped, as it would have anyway. Candidates that have not lasted `min_duration` are
    /// dropped unreported.
    pub fn finish(&mut self, at: f64, time: &str) -> Vec<Record> {
        let mut ends = self.end_retired(time);
        for track in self.tracks.iter_mut() {
            if let Phase::Active {
                id,
                onset,
                peak,
                last_above_end,
                below,
            } = track.phase
            {
                let end = if below { last_above_end } else { at.max(onset) };
                ends.push(end_record(track, &self.labels, id, onset, end, peak, time));
            }
            track.phase = Phase::Idle;
        }
        ends
    }

    /// Events of tracks a reload removed, ended where their sound was last heard.
    fn end_retired(&mut self, time: &str) -> Vec<Record> {
        let mut ends = Vec::new();
        for track in self.retired.drain(..) {
            if let Phase::Active {
                id,
                onset,
                peak,
                last_above_end,
                ..
            } = track.phase
            {
                let end = end_record(&track, &self.labels, id, onset, last_above_end, peak, time);
                ends.push(end);
            }
        }
        ends
    }

    /// Applies reloaded settings. Open events stay open and continue under the new
    /// thresholds; a label no longer listened to keeps its open event until it ends, and
    /// loses any candidate that has not been reported yet.
    pub fn set_settings(&mut self, s: &DecisionSettings) {
        let listen: HashSet<&str> = s.listen.iter().map(String::as_str).collect();
        for track in self.tracks.iter_mut() {
            let name = track.name(&self.labels).to_owned();
            let name = name.as_str();
            track.rule = s.rule_for(name);
            track.listened = listen.is_empty()
                || listen.contains(name)
                || track
                    .members
                    .iter()
                    .any(|&m| listen.contains(self.labels[m].as_str()));
            if !track.listened {
                if let Phase::Candidate { .. } = track.phase {
                    track.phase = Phase::Idle;
                }
            }
        }
    }

    /// Applies reloaded settings and groups. A label or group whose membership is unchanged
    /// keeps its state; one that is gone ends its open event at the next window.
    pub fn set_settings_and_groups(&mut self, s: &DecisionSettings, groups: &Groups) {
        if *groups != self.groups {
            let mut old = std::mem::replace(&mut self.tracks, build_tracks(groups, &self.labels));
            for track in self.tracks.iter_mut() {
                let same = old
                    .iter()
                    .position(|o| o.group == track.group && o.members == track.members);
                if let Some(i) = same {
                    *track = old.swap_remove(i);
                }
            }
            self.retired.extend(old);
            self.groups = groups.clone();
        }
        self.set_settings(s);
    }

    /// Labels and groups with an open event (reported by `event_start`, not yet by
    /// `event_end`).
    pub fn active(&self) -> Vec<&str> {
        self.tracks
            .iter()
            .filter(|t| matches!(t.phase, Phase::Active { .. }))
            .map(|t| t.name(&self.labels))
            .collect()
    }
}

/// One track per group that is on, one per label in no group, ordered by their first label.
fn build_tracks(groups: &Groups, labels: &[String]) -> Vec<Track> {
    let index = |l: &String| labels.iter().position(|x| x == l);
    let mut tracks: Vec<Track> = groups::active(groups)
        .map(|(name, members)| {
            (
                Some(name.clone()),
                members.iter().filter_map(index).collect(),
            )
        })
        .filter(|(_, m): &(Option<String>, Vec<usize>)| !m.is_empty())
        .chain(
            (0..labels.len())
                .filter(|&i| group_of(groups, &labels[i]).is_none())
                .map(|i| (None, vec![i])),
        )
        .map(|(group, members)| Track {
            peak_member: members[0],
            group,
            members,
            rule: DecisionSettings::default().rule_for(""),
            listened: false,
            phase: Phase::Idle,
        })
        .collect();
    tracks.sort_by_key(|t| t.members.iter().min().copied());
    tracks
}

/// Whether the step from `before` to `after` set a new peak (or began a candidate).
fn peak_rose(before: &Phase, after: &Phase) -> bool {
    let peak = |p: &Phase| match p {
        Phase::Idle => None,
        Phase::Candidate { peak, .. } | Phase::Active { peak, .. } => Some(*peak),
    };
    match (peak(before), peak(after)) {
        (_, None) => false,
        (None, Some(_)) => true,
        (Some(b), Some(a)) => a > b,
    }
}

fn end_record(
    track: &Track,
    labels: &[String],
    id: u64,
    start: f64,
    end: f64,
    peak: f32,
    time: &str,
) -> Record {
    Record::EventEnd {
        id,
        label: labels[track.peak_member].clone(),
        group: track.group.clone(),
        start,
        end,
        time: time.to_string(),
        peak,
    }
}

/// An event that ended in this window.
struct Ended {
    id: u64,
    onset: f64,
    end: f64,
    peak: f32,
}

/// One label's next phase for a window `[start, end)` with `score`, and the event it ended,
/// if any. NaN fails every `>=`, so it is treated as silence.
fn step(phase: Phase, rule: &Rule, score: f32, start: f64, end: f64) -> (Phase, Option<Ended>) {
    let next = match phase {
        Phase::Idle if score >= rule.on => Phase::Candidate {
            onset: start,
            peak: score,
        },
        Phase::Candidate { onset, peak } if score >= rule.off => Phase::Candidate {
            onset,
            peak: peak.max(score),
        },
        // Dropped below `off` before lasting `min_duration`: never reported.
        Phase::Candidate { .. } => Phase::Idle,
        Phase::Active {
            id, onset, peak, ..
        } if score >= rule.off => Phase::Active {
            id,
            onset,
            peak: peak.max(score),
            last_above_end: end,
            below: false,
        },
        Phase::Active {
            id,
            onset,
            peak,
            last_above_end,
            ..
        } if end - last_above_end >= rule.hold => {
            let ended = Ended {
                id,
                onset,
                end: last_above_end,
                peak,
            };
            return (Phase::Idle, Some(ended));
        }
        Phase::Active {
            id,
            onset,
            peak,
            last_above_end,
            ..
        } => Phase::Active {
            id,
            onset,
            peak,
            last_above_end,
            below: true,
        },
        Phase::Idle => Phase::Idle,
    };
    (next, None)
}

/// Labels and settings the decision tests share.
#[cfg(test)]
pub(crate) mod test_support {
    use super::DecisionSettings;

    pub(crate) fn labels() -> Vec<String> {
        ["Speech", "Knock", "Dog"].map(String::from).to_vec()
    }

    pub(crate) fn base() -> DecisionSettings {
        DecisionSettings {
            on: 0.5,
            off: 0.35,
            min_duration: 0.0,
            hold: 0.0,
            ..DecisionSettings::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::{base, labels};
    use super::*;

    const T: &str = "2026-01-01T00:00:00.000Z";
    /// Windows are 1 s long and hop by 0.5 s, like a typical model's framing.
    const HOP: f64 = 0.5;
    const LEN: f64 = 1.0;

    /// Feeds windows `first..` with one score per window for "Knock" (others 0) and
    /// returns each window's records.
    fn feed_knock(d: &mut Decider, first: usize, knock: &[f32]) -> Vec<Vec<Record>> {
        knock
            .iter()
            .enumerate()
            .map(|(k, &s)| {
                let start = (first + k) as f64 * HOP;
                d.update(start, start + LEN, &[0.0, s, 0.0], T)
            })
            .collect()
    }

    fn all(per_window: Vec<Vec<Record>>) -> Vec<Record> {
        per_window.into_iter().flatten().collect()
    }

    fn start(id: u64, label: &str, start: f64, score: f32) -> Record {
        Record::EventStart {
            id,
            label: label.into(),
            group: None,
            start,
            time: T.into(),
            score,
        }
    }

    fn end(id: u64, label: &str, start: f64, end: f64, peak: f32) -> Record {
        Record::EventEnd {
            id,
            label: label.into(),
            group: None,
            start,
            end,
            time: T.into(),
            peak,
        }
    }

    #[test]
    fn event_starts_in_the_window_that_reaches_on_with_its_start_time() {
        let mut d = Decider::new(&base(), &labels());
        let out = feed_knock(&mut d, 0, &[0.1, 0.49, 0.6, 0.7]);
        assert!(out[0].is_empty() && out[1].is_empty());
        assert_eq!(out[2], vec![start(1, "Knock", 1.0, 0.6)]);
        assert!(out[3].is_empty());
        assert_eq!(d.active(), vec!["Knock"]);
    }

    #[test]
    fn event_ends_at_the_end_of_the_last_window_above_off_after_hold() {
        let mut d = Decider::new(
            &DecisionSettings {
                hold: 1.0,
                ..base()
            },
            &labels(),
        );
        // Windows 0..2 are above off (the last ends at 2.0); the hold of 1 s runs out in
        // window 4, [2.0, 3.0).
        let out = feed_knock(&mut d, 0, &[0.6, 0.8, 0.4, 0.2, 0.2, 0.2]);
        assert_eq!(out[0], vec![start(1, "Knock", 0.0, 0.6)]);
        assert!(out[3].is_empty(), "hold not yet over: {:?}", out[3]);
        assert_eq!(out[4], vec![end(1, "Knock", 0.0, 2.0, 0.8)]);
        assert!(out[5].is_empty());
        assert!(d.active().is_empty());
    }

    #[test]
    fn event_ends_in_the_first_window_below_off_when_hold_is_zero() {
        let mut d = Decider::new(&base(), &labels());
        let out = feed_knock(&mut d, 0, &[0.6, 0.7, 0.2]);
        assert_eq!(out[2], vec![end(1, "Knock", 0.0, 1.5, 0.7)]);
    }

    #[test]
    fn score_flickering_between_off_and_on_stays_one_event() {
        let mut d = Decider::new(&base(), &labels());
        let out = all(feed_knock(
            &mut d,
            0,
            &[0.6, 0.4, 0.55, 0.36, 0.45, 0.4, 0.1],
        ));
        assert_eq!(
            out,
            vec![start(1, "Knock", 0.0, 0.6), end(1, "Knock", 0.0, 3.5, 0.6)]
        );
    }

    #[test]
    fn dip_below_off_shorter_than_hold_does_not_split_the_event() {
        let mut d = Decider::new(
            &DecisionSettings {
                hold: 1.0,
                ..base()
            },
            &labels(),
        );
        // One window below off ([0.5, 1.5) is 0.5 s past the last end 1.0) is within hold.
        let out = all(feed_knock(&mut d, 0, &[0.6, 0.1, 0.9, 0.1, 0.1, 0.1]));
        assert_eq!(
            out,
            vec![start(1, "Knock", 0.0, 0.6), end(1, "Knock", 0.0, 2.0, 0.9)]
        );
    }

    #[test]
    fn min_duration_suppresses_a_one_window_blip() {
        let settings = DecisionSettings {
            min_duration: 1.5,
            ..base()
        };
        let mut d = Decider::new(&settings, &labels());
        assert!(all(feed_knock(&mut d, 0, &[0.1, 0.9, 0.1, 0.1])).is_empty());
        assert!(d.finish(2.5, T).is_empty());
    }

    #[test]
    fn min_duration_reports_start_from_onset_with_the_score_at_emission() {
        let settings = DecisionSettings {
            min_duration: 1.5,
            ..base()
        };
        let mut d = Decider::new(&settings, &labels());
        // Onset in window 1 at 0.5 s; window 2 ends at 2.0, 1.5 s after the onset.
        let out = feed_knock(&mut d, 0, &[0.1, 0.6, 0.8, 0.9, 0.1]);
        assert!(out[1].is_empty());
        assert_eq!(out[2], vec![start(1, "Knock", 0.5, 0.8)]);
        assert_eq!(out[4], vec![end(1, "Knock", 0.5, 2.5, 0.9)]);
    }

    #[test]
    fn candidate_that_drops_below_off_starts_over() {
        let settings = DecisionSettings {
            min_duration: 1.5,
            ..base()
        };
        let mut d = Decider::new(&settings, &labels());
        let out = all(feed_knock(&mut d, 0, &[0.6, 0.2, 0.6, 0.6, 0.6]));
        assert_eq!(out, vec![start(1, "Knock", 1.0, 0.6)]);
    }

    #[test]
    fn per_label_override_beats_the_default() {
        let mut settings = base();
        settings.labels.insert(
            "Knock".into(),
            LabelRule {
                on: Some(0.3),
                off: Some(0.2),
                ..LabelRule::default()
            },
        );
        let mut d = Decider::new(&settings, &labels());
        let out = d.update(0.0, 1.0, &[0.4, 0.4, 0.4], T);
        assert_eq!(out, vec![start(1, "Knock", 0.0, 0.4)]);
        // 0.25 is below the default off but above Knock's.
        assert!(d.update(0.5, 1.5, &[0.0, 0.25, 0.0], T).is_empty());
        assert_eq!(d.active(), vec!["Knock"]);
    }

    #[test]
    fn listen_ignores_labels_not_in_the_allow_list() {
        let settings = DecisionSettings {
            listen: vec!["Knock".into()],
            ..base()
        };
        let mut d = Decider::new(&settings, &labels());
        let out = d.update(0.0, 1.0, &[0.9, 0.9, 0.9], T);
        assert_eq!(out, vec![start(1, "Knock", 0.0, 0.9)]);
        assert_eq!(d.active(), vec!["Knock"]);
    }

    #[test]
    fn ends_come_before_starts_and_ids_increase_across_labels() {
        let mut d = Decider::new(&base(), &labels());
        assert_eq!(
            d.update(0.0, 1.0, &[0.0, 0.9, 0.0], T),
            vec![start(1, "Knock", 0.0, 0.9)]
        );
        assert_eq!(
            d.update(0.5, 1.5, &[0.8, 0.1, 0.7], T),
            vec![
                end(1, "Knock", 0.0, 1.0, 0.9),
                start(2, "Speech", 0.5, 0.8),
                start(3, "Dog", 0.5, 0.7),
            ]
        );
    }

    #[test]
    fn finish_closes_open_events_and_drops_pending_candidates() {
        let mut settings = base();
        settings.hold = 2.0;
        settings.labels.insert(
            "Dog".into(),
            LabelRule {
                min_duration: Some(10.0),
                ..LabelRule::default()
            },
        );
        let mut d = Decider::new(&settings, &labels());
        d.update(0.0, 1.0, &[0.9, 0.9, 0.9], T);
        // Knock falls into its hold gap; Speech keeps sounding; Dog is still a candidate.
        d.update(0.5, 1.5, &[0.9, 0.1, 0.9], T);
        assert_eq!(
            d.finish(1.7, T),
            vec![
                end(1, "Speech", 0.0, 1.7, 0.9),
                end(2, "Knock", 0.0, 1.0, 0.9),
            ]
        );
        assert!(d.active().is_empty());
        assert!(d.finish(2.0, T).is_empty());
    }

    #[test]
    fn set_settings_keeps_open_events_under_new_thresholds() {
        let mut d = Decider::new(&base(), &labels());
        assert_eq!(feed_knock(&mut d, 0, &[0.6])[0].len(), 1);
        d.set_settings(&DecisionSettings {
            on: 0.8,
            off: 0.65,
            ..base()
        });
        assert_eq!(d.active(), vec!["Knock"]);
        let out = feed_knock(&mut d, 1, &[0.7, 0.6]);
        assert!(out[0].is_empty());
        assert_eq!(out[1], vec![end(1, "Knock", 0.0, 1.5, 0.7)]);
    }

    #[test]
    fn label_dropped_from_listen_finishes_its_event_then_stays_quiet() {
        let mut d = Decider::new(&base(), &labels());
        feed_knock(&mut d, 0, &[0.9]);
        d.set_settings(&DecisionSettings {
            listen: vec!["Dog".into()],
            ..base()
        });
        let out = all(feed_knock(&mut d, 1, &[0.9, 0.1, 0.9]));
        assert_eq!(out, vec![end(1, "Knock", 0.0, 1.5, 0.9)]);
    }

    fn dog_group() -> (Vec<String>, Groups) {
        let labels: Vec<String> = ["Speech", "Dog", "Bark", "Bow-wow"]
            .map(String::from)
            .to_vec();
        let groups = Groups::from([(
            "dog".to_string(),
            vec!["Dog".to_string(), "Bark".to_string(), "Bow-wow".to_string()],
        )]);
        (labels, groups)
    }

    fn group_records(records: &[Record]) -> Vec<(&'static str, String, Option<String>)> {
        records
            .iter()
            .map(|r| {
                (
                    r.kind(),
                    r.label().unwrap().to_string(),
                    r.group().map(String::from),
                )
            })
            .collect()
    }

    #[test]
    fn a_group_makes_one_event_named_by_its_best_label_and_its_peak_label() {
        let (labels, groups) = dog_group();
        let mut d = Decider::with_groups(&base(), &groups, &labels);
        let w = |k: usize| k as f64 * HOP;
        let mut out = Vec::new();
        // Dog and Bark both above `on` at once, Bark peaks later, then silence.
        for (k, scores) in [
            [0.0, 0.6, 0.7, 0.55],
            [0.0, 0.5, 0.9, 0.6],
            [0.0, 0.95, 0.2, 0.1],
            [0.0, 0.0, 0.0, 0.0],
        ]
        .iter()
        .enumerate()
        {
            out.extend(d.update(w(k), w(k) + LEN, scores, T));
        }
        let dog = Some("dog".to_string());
        assert_eq!(
            group_records(&out),
            [
                ("event_start", "Bark".into(), dog.clone()),
                ("event_end", "Dog".into(), dog.clone()),
            ],
            "one event for three labels: {out:?}"
        );
        let Record::EventEnd { peak, .. } = out[1] else {
            panic!()
        };
        assert_eq!(peak, 0.95, "the group's peak is its best label's");
    }

    #[test]
    fn groups_take_their_own_overrides_and_listen_by_group_or_member() {
        let (labels, groups) = dog_group();
        let mut s = base();
        s.labels.insert(
            "dog".into(),
            LabelRule {
                on: Some(0.8),
                ..LabelRule::default()
            },
        );
        let mut d = Decider::with_groups(&s, &groups, &labels);
        assert!(d.update(0.0, LEN, &[0.0, 0.7, 0.7, 0.7], T).is_empty());
        assert_eq!(d.update(HOP, HOP + LEN, &[0.0, 0.85, 0.0, 0.0], T).len(), 1);

        for listen in ["dog", "Bow-wow"] {
            let s = DecisionSettings {
                listen: vec![listen.into()],
                ..base()
            };
            let mut d = Decider::with_groups(&s, &groups, &labels);
            let out = d.update(0.0, LEN, &[0.9, 0.0, 0.9, 0.0], T);
            assert_eq!(
                group_records(&out),
                [("event_start", "Bark".into(), Some("dog".into()))],
                "listen = [{listen:?}] follows the group, and only it"
            );
        }
    }

    #[test]
    fn with_no_groups_every_label_is_its_own_event_as_before() {
        let (labels, _) = dog_group();
        let mut d = Decider::with_groups(&base(), &Groups::new(), &labels);
        let out = d.update(0.0, LEN, &[0.0, 0.6, 0.7, 0.55], T);
        assert_eq!(
            group_records(&out),
            [
                ("event_start", "Dog".into(), None),
                ("event_start", "Bark".into(), None),
                ("event_start", "Bow-wow".into(), None),
            ]
        );
    }

    #[test]
    fn a_reload_that_groups_labels_ends_their_open_events_and_keeps_the_rest() {
        let (labels, groups) = dog_group();
        let mut d = Decider::new(&base(), &labels);
        let first = d.update(0.0, LEN, &[0.9, 0.9, 0.0, 0.0], T);
        assert_eq!(first.len(), 2, "Speech and Dog start: {first:?}");
        d.set_settings_and_groups(&base(), &groups);
        let out = d.update(HOP, HOP + LEN, &[0.9, 0.0, 0.9, 0.0], T);
        assert_eq!(
            group_records(&out),
            [
                ("event_end", "Dog".into(), None),
                ("event_start", "Bark".into(), Some("dog".into())),
            ],
            "Speech's event goes on; Dog's ends where it was last heard: {out:?}"
        );
        let Record::EventEnd { end, .. } = out[0] else {
            panic!()
        };
        assert_eq!(end, LEN);
        assert_eq!(d.active(), ["Speech", "dog"]);
    }
}
