//! The consumer's settings: the `[pipeline]` section and the live set a reload may change.

use serde::{Deserialize, Serialize};

use super::decision::{validate_groups, DecisionSettings, Groups};
use super::smoothing::SmoothingSettings;
use crate::validate::{count_in, seconds_in, Checked, Invalid, Problems};

/// The `[pipeline]` settings: what the consumer reports and how it keeps up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PipelineSettings {
    /// Labels in each `prediction` record.
    #[serde(deserialize_with = "crate::validate::whole_number")]
    pub top_k: usize,
    /// Skip inference while the window's level is below this many dBFS (None: never).
    pub level_gate: Option<f32>,
    /// Seconds between `status` records.
    pub status_interval: f64,
    /// Seconds of audio the consumer may fall behind before it skips windows to catch up.
    pub max_backlog: f64,
    /// Report a capture that delivers no samples, or only exact zeros, for this many seconds
    /// (None: never).
    pub silence_timeout: Option<f64>,
}

impl Default for PipelineSettings {
    fn default() -> Self {
        PipelineSettings {
            top_k: 5,
            level_gate: None,
            status_interval: 10.0,
            max_backlog: 2.0,
            silence_timeout: Some(60.0),
        }
    }
}

/// The longest window, hop or backlog, in seconds: beyond it a window's buffers would take
/// gigabytes (a 1e9 s window asked for 64 TB), and nothing hark listens for lasts longer.
pub const MAX_WINDOW_SECONDS: f64 = 60.0;

/// The longest interval or timeout, a day; anything longer is a typo.
pub const MAX_INTERVAL_SECONDS: f64 = 86_400.0;

impl PipelineSettings {
    /// Check every value; each problem names its key.
    pub fn validate(&self) -> Checked {
        let mut problems = Problems::default();
        if let Err(p) = count_in("pipeline.top_k", self.top_k, 1, 1000) {
            problems.push(p);
        }
        if let Some(g) = self.level_gate {
            if !(g.is_finite() && (-200.0..=0.0).contains(&g)) {
                problems.push(Invalid::new(
                    "pipeline.level_gate",
                    g,
                    "must be a level in dBFS between -200 and 0",
                ));
            }
        }
        let seconds = [
            (
                "pipeline.status_interval",
                Some(self.status_interval),
                MAX_INTERVAL_SECONDS,
            ),
            (
                "pipeline.max_backlog",
                Some(self.max_backlog),
                MAX_WINDOW_SECONDS,
            ),
            (
                "pipeline.silence_timeout",
                self.silence_timeout,
                MAX_INTERVAL_SECONDS,
            ),
        ];
        for (key, v, max) in seconds {
            if let Some(Err(p)) = v.map(|v| seconds_in(key, v, false, max)) {
                problems.push(p);
            }
        }
        problems.into_result()
    }
}

/// Everything the consumer uses that a config reload may change while it runs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LiveSettings {
    pub pipeline: PipelineSettings,
    pub smoothing: SmoothingSettings,
    pub decision: DecisionSettings,
    /// `[groups]`: each makes one event from several labels.
    pub groups: Groups,
}

impl LiveSettings {
    /// Check every value against the model's labels; each problem names its key.
    pub fn validate(&self, labels: &[String]) -> Checked {
        let mut problems = Problems::default();
        problems.absorb(self.pipeline.validate());
        problems.absorb(self.smoothing.validate());
        problems.absorb(validate_groups(&self.groups, Some(labels)));
        problems.absorb(self.decision.validate(labels, &self.groups));
        problems.into_result()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_validation_names_keys() {
        let s = PipelineSettings {
            top_k: 0,
            ..Default::default()
        };
        assert!(s
            .validate()
            .unwrap_err()
            .to_string()
            .contains("pipeline.top_k"));
        let s = PipelineSettings {
            level_gate: Some(10.0),
            max_backlog: f64::NAN,
            ..Default::default()
        };
        let e = s.validate().unwrap_err();
        assert_eq!(e.0.len(), 2, "{e}");
        assert!(e.to_string().contains("pipeline.level_gate"));
        assert!(e.to_string().contains("pipeline.max_backlog = NaN"));
        let e = PipelineSettings {
            max_backlog: 1e9,
            top_k: usize::MAX,
            ..Default::default()
        }
        .validate()
        .unwrap_err()
        .to_string();
        assert!(e.contains("(allowed: more than 0 to 60 seconds)"), "{e}");
        assert!(e.contains("(allowed: 1 to 1000)"), "{e}");
    }
}
