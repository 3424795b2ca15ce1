//! The decision stage's state machine, window by window.
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
        clip: None,
        image: None,
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
        clip: None,
        image: None,
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

#[test]
fn mute_silences_a_listened_label_or_a_whole_group_by_a_member_and_unmute_restores_it() {
    let (dog_labels, groups) = dog_group();
    for muted in ["dog", "Bow-wow"] {
        let s = DecisionSettings {
            mute: vec![muted.into()],
            ..base()
        };
        let mut d = Decider::with_groups(&s, &groups, &dog_labels);
        let out = d.update(0.0, LEN, &[0.9, 0.0, 0.9, 0.0], T);
        assert_eq!(
            group_records(&out),
            [("event_start", "Speech".into(), None)],
            "mute = [{muted:?}] silences the group, and only it"
        );
        // Unmuted by a reload: the group's sound starts at the next window.
        d.set_settings_and_groups(&base(), &groups);
        let out = d.update(HOP, HOP + LEN, &[0.9, 0.0, 0.9, 0.0], T);
        assert_eq!(
            group_records(&out),
            [("event_start", "Bark".into(), Some("dog".into()))]
        );
    }
    let s = DecisionSettings {
        listen: vec!["Knock".into()],
        mute: vec!["Knock".into()],
        ..base()
    };
    let mut d = Decider::new(&s, &labels());
    assert!(
        d.update(0.0, 1.0, &[0.9, 0.9, 0.9], T).is_empty(),
        "mute wins over listen"
    );
}
