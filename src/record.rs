//! The records hark emits: predictions, sound events and status.
//!
//! These are plain data. They are printed by `hark run --print json`, published on the
//! socket and handed to hooks, always in the same JSON shape (one object per line).
//! Only this module and `publish` know field names on the wire.

use serde::{Deserialize, Serialize};

/// One label with its (smoothed) score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabelScore {
    pub label: String,
    pub score: f32,
}

/// Everything the pipeline reports. `start` is seconds since the stream began (for a file,
/// the position in the file); `time` is the wall clock in RFC 3339.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Record {
    /// Smoothed top-K scores of one window.
    Prediction {
        start: f64,
        end: f64,
        time: String,
        top: Vec<LabelScore>,
        /// RMS level of the window in dBFS.
        level_db: f32,
        /// Wall clock (RFC 3339, microseconds) when the window's newest sample entered the
        /// capture ring: `time` minus this is the pipeline's latency for the window, and a
        /// subscriber's receive time minus this is the latency up to the socket. Absent for
        /// sources that carry no arrival times.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        captured: Option<String>,
        /// True when the level gate skipped inference for this window (`top` is then empty).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        gated: bool,
    },
    /// A sound began.
    EventStart {
        id: u64,
        /// The label that scored highest as the event started.
        label: String,
        /// The group the event is for (`[groups]`), absent for a label in no group.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        group: Option<String>,
        start: f64,
        time: String,
        score: f32,
        /// The clip of this event (absolute path), when `[clips]` will write one: the
        /// file appears once its post-roll is in and it is encoded (`docs/clips.md`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        clip: Option<String>,
        /// The clip's spectrogram picture (absolute path, PNG), beside the clip.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        image: Option<String>,
    },
    /// A sound ended. `peak` is the highest smoothed score it reached.
    EventEnd {
        id: u64,
        /// The label whose score was the event's peak.
        label: String,
        /// The group the event is for (`[groups]`), absent for a label in no group.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        group: Option<String>,
        start: f64,
        end: f64,
        time: String,
        peak: f32,
        /// The clip of this event (absolute path), present only when it was queued for writing: the
        /// file appears once its post-roll is in and it is encoded (`docs/clips.md`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        clip: Option<String>,
        /// The clip's spectrogram picture (absolute path, PNG), beside the clip.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        image: Option<String>,
    },
    /// Periodic health of the pipeline.
    Status {
        start: f64,
        time: String,
        /// Samples the capture ring could not take (the consumer was too slow).
        overruns: u64,
        /// Windows scored since the pipeline started (gated ones included).
        #[serde(default)]
        windows: u64,
        /// Windows the consumer skipped to catch up.
        skipped_windows: u64,
        /// Mean time per window in the front end and the model since the pipeline started,
        /// in milliseconds.
        inference_ms: f32,
        /// Level of the last window, in dBFS.
        level_db: f32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<String>,
        /// Each sink's health (counters by name), filled in by the daemon's fan-out as the
        /// record leaves the consumer. Absent where no sinks run (tests of the pipeline).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sinks: Option<SinksHealth>,
    },
}

/// Sink name → counter name → value, e.g. `{"socket": {"subscribers": 2, "dropped": 0}}`.
pub type SinksHealth = std::collections::BTreeMap<String, std::collections::BTreeMap<String, u64>>;

impl Record {
    /// The record's `type` on the wire.
    pub fn kind(&self) -> &'static str {
        match self {
            Record::Prediction { .. } => "prediction",
            Record::EventStart { .. } => "event_start",
            Record::EventEnd { .. } => "event_end",
            Record::Status { .. } => "status",
        }
    }

    /// The label of an event record, if it is one.
    pub fn label(&self) -> Option<&str> {
        match self {
            Record::EventStart { label, .. } | Record::EventEnd { label, .. } => Some(label),
            _ => None,
        }
    }

    /// The group of an event record, if it is one for a group.
    pub fn group(&self) -> Option<&str> {
        match self {
            Record::EventStart { group, .. } | Record::EventEnd { group, .. } => group.as_deref(),
            _ => None,
        }
    }

    /// What an event is called for people: its group, else its label.
    pub fn event_name(&self) -> Option<&str> {
        self.group().or(self.label())
    }

    /// One JSON line, without the newline.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("records always serialize")
    }
}

/// The wall clock now, as RFC 3339 with milliseconds.
pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A wall-clock time given in microseconds since the Unix epoch, in RFC 3339 with microseconds.
pub fn micros_rfc3339(wall_us: u64) -> String {
    chrono::DateTime::from_timestamp_micros(wall_us as i64)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_start_serializes_with_type_tag() {
        let r = Record::EventStart {
            id: 3,
            label: "Knock".into(),
            group: None,
            start: 1.5,
            time: "2026-01-01T00:00:00.000Z".into(),
            score: 0.8,
            clip: None,
            image: None,
        };
        let v: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
        assert_eq!(v["type"], "event_start");
        assert_eq!(v["label"], "Knock");
        assert_eq!(v["id"], 3);
        assert_eq!(r.kind(), "event_start");
    }
}
