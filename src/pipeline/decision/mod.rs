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
                        clip: None,
                        image: None,
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
        let mute: HashSet<&str> = s.mute.iter().map(String::as_str).collect();
        for track in self.tracks.iter_mut() {
            let name = track.name(&self.labels).to_owned();
            let name = name.as_str();
            track.rule = s.rule_for(name);
            let named = |set: &HashSet<&str>| {
                set.contains(name)
                    || track
                        .members
                        .iter()
                        .any(|&m| set.contains(self.labels[m].as_str()))
            };
            track.listened = (listen.is_empty() || named(&listen)) && !named(&mute);
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
        clip: None,
        image: None,
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
mod tests;
