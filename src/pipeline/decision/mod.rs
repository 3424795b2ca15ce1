//! Turning smoothed scores into sound events.
//!
//! Owns, for every label, the hysteresis state machine that decides when a sound begins and
//! ends: it starts when the score reaches `on`, must last `min_duration` before it is
//! reported, and ends once the score has stayed below `off` for `hold` seconds. Thresholds
//! can be overridden per label and the labels followed can be limited (Frigate-style
//! filters). It is pure: no I/O, no threads and no clocks — stream times and the wall-clock
//! string come in with each call — and it emits [`Record`]s without knowing how they are
//! printed, published or handed to hooks.

use std::collections::HashSet;

use crate::record::Record;

mod settings;

pub(crate) use settings::unknown_label;
pub use settings::{DecisionSettings, LabelRule};

/// The effective thresholds of one label, after overrides.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Rule {
    pub(crate) on: f32,
    pub(crate) off: f32,
    pub(crate) min_duration: f64,
    pub(crate) hold: f64,
}

/// Where one label is in its life cycle.
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

#[derive(Debug, Clone)]
struct Track {
    rule: Rule,
    /// Whether new events may start. A label dropped from `listen` by a reload keeps its
    /// open event until that ends, so every `event_start` still gets its `event_end`.
    listened: bool,
    phase: Phase,
}

/// Follows every label's score and reports when sounds begin and end.
#[derive(Debug, Clone)]
pub struct Decider {
    labels: Vec<String>,
    tracks: Vec<Track>,
    /// Id of the next `event_start`; ids are unique across labels for the daemon's life.
    next_id: u64,
}

impl Decider {
    /// A decider for a model with these `labels` (index = position in the score vector).
    /// `settings` should have passed [`DecisionSettings::validate`].
    pub fn new(settings: &DecisionSettings, labels: &[String]) -> Self {
        let tracks = labels
            .iter()
            .map(|label| Track {
                rule: settings.rule_for(label),
                listened: false,
                phase: Phase::Idle,
            })
            .collect();
        let mut d = Decider {
            labels: labels.to_vec(),
            tracks,
            next_id: 1,
        };
        // Decides `listened` the same way a reload does.
        d.set_settings(settings);
        d
    }

    /// Feeds one smoothed score vector for the window `[start, end)` in stream seconds.
    /// Returns what happened, `event_end`s before `event_start`s, each group in label order.
    /// `time` is the wall clock to stamp on the records. A missing score counts as 0.
    pub fn update(&mut self, start: f64, end: f64, scores: &[f32], time: &str) -> Vec<Record> {
        let mut ends = Vec::new();
        let mut starts = Vec::new();
        for (i, track) in self.tracks.iter_mut().enumerate() {
            if !track.listened && track.phase == Phase::Idle {
                continue;
            }
            let score = scores.get(i).copied().unwrap_or(0.0);
            let label = &self.labels[i];
            let rule = track.rule;
            let (phase, ended) = step(track.phase, &rule, score, start, end);
            track.phase = phase;
            if let Some(e) = ended {
                ends.push(Record::EventEnd {
                    id: e.id,
                    label: label.clone(),
                    start: e.onset,
                    end: e.end,
                    time: time.to_string(),
                    peak: e.peak,
                });
            }
            // Checked in the same window the candidate appeared in, so that with
            // `min_duration = 0` an event starts at once.
            if let Phase::Candidate { onset, peak } = track.phase {
                if end - onset >= rule.min_duration {
                    let id = self.next_id;
                    self.next_id += 1;
                    starts.push(Record::EventStart {
                        id,
                        label: label.clone(),
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
        let mut ends = Vec::new();
        for (track, label) in self.tracks.iter_mut().zip(&self.labels) {
            if let Phase::Active {
                id,
                onset,
                peak,
                last_above_end,
                below,
            } = track.phase
            {
                let end = if below { last_above_end } else { at.max(onset) };
                ends.push(Record::EventEnd {
                    id,
                    label: label.clone(),
                    start: onset,
                    end,
                    time: time.to_string(),
                    peak,
                });
            }
            track.phase = Phase::Idle;
        }
        ends
    }

    /// Applies reloaded settings. Open events stay open and continue under the new
    /// thresholds; a label no longer listened to keeps its open event until it ends, and
    /// loses any candidate that has not been reported yet.
    pub fn set_settings(&mut self, s: &DecisionSettings) {
        let listen: HashSet<&str> = s.listen.iter().map(String::as_str).collect();
        for (track, label) in self.tracks.iter_mut().zip(&self.labels) {
            track.rule = s.rule_for(label);
            track.listened = listen.is_empty() || listen.contains(label.as_str());
            if !track.listened {
                if let Phase::Candidate { .. } = track.phase {
                    track.phase = Phase::Idle;
                }
            }
        }
    }

    /// Labels with an open event (reported by `event_start`, not yet by `event_end`).
    pub fn active(&self) -> Vec<&str> {
        self.tracks
            .iter()
            .zip(&self.labels)
            .filter(|(t, _)| matches!(t.phase, Phase::Active { .. }))
            .map(|(_, l)| l.as_str())
            .collect()
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
            start,
            time: T.into(),
            score,
        }
    }

    fn end(id: u64, label: &str, start: f64, end: f64, peak: f32) -> Record {
        Record::EventEnd {
            id,
            label: label.into(),
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
}
