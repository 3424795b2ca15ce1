//! Held-out evaluation inside `hark train`: a head fitted per round of the split, tested on
//! the round's clips, and the fitting itself (rows from clips, each clip weighing the same).
//!
//! The split comes from [`super::split`], so the clips of one recording are never on both
//! sides of a round; this module only fits and counts.

use ndarray::Array2;
use serde::Serialize;

use super::dataset::Clip;
use super::fit::{self, FitOptions, TrainedHead};
use super::metrics::{clip_decision, ClipScore, Metrics, Progress};
use super::split::{self, SplitError, SplitRequest};

/// What the head is fitted on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum TrainOn {
    /// Every window of every clip, each clip weighing the same in total.
    Windows,
    /// One row per clip: the mean of its windows' scores.
    ClipMeans,
}

/// Held-out results of one round.
#[derive(Debug, Clone, Serialize)]
pub struct RoundResult {
    pub name: String,
    pub clips: usize,
    pub accuracy: f64,
}

/// A readable clip with its window scores.
pub struct Sample {
    pub label: usize,
    pub windows: Vec<Vec<f32>>,
}

/// What the held-out rounds measured, and which clips the final head is fitted on.
pub struct HeldOut {
    pub metrics: Option<Metrics>,
    pub rounds: Vec<RoundResult>,
    pub untested: Vec<String>,
    /// The split, for reports.
    pub split: String,
    pub final_train: Vec<usize>,
}

/// Fit a head per round of the split `request` asks for and test it on the round's clips
/// (`kept[i]` is the clip of `fitter.samples[i]`). Without a split, nothing is measured and
/// the final head is fitted on every clip. The split's warnings go to `notes`.
pub fn held_out(
    request: Option<&SplitRequest>,
    seed: u64,
    classes: &[String],
    kept: &[&Clip],
    fitter: &Fitter,
    notes: &mut Vec<String>,
) -> Result<HeldOut, SplitError> {
    let mut out = HeldOut {
        metrics: None,
        rounds: Vec::new(),
        untested: Vec::new(),
        split: "none (--no-eval): trained on everything, nothing measured".to_string(),
        final_train: (0..fitter.samples.len()).collect(),
    };
    let Some(req) = request else {
        return Ok(out);
    };
    let refs: Vec<split::ClipRef> = kept
        .iter()
        .map(|c| split::ClipRef {
            label: c.label,
            group: &c.group,
            fold: c.fold.as_deref(),
        })
        .collect();
    let plan = split::plan(classes, &refs, req, seed)?;
    for w in &plan.warnings {
        fitter.progress.warn_and_keep(notes, w.clone());
    }
    fitter
        .progress
        .line(&format!("held-out evaluation: {}", plan.description));
    out.split = plan.description.clone();
    out.untested = plan.untested.clone();
    let mut truth = Vec::new();
    let mut pred = Vec::new();
    for (ri, round) in plan.rounds.iter().enumerate() {
        let label = format!("{} ({}/{})", round.name, ri + 1, plan.rounds.len());
        let (train_idx, result) = fitter.test_round(round, &label, &mut truth, &mut pred);
        out.rounds.push(result);
        if matches!(req, SplitRequest::TestFold(_)) {
            // The model written is the one measured: trained without the test fold.
            out.final_train = train_idx;
        }
    }
    out.metrics = Some(Metrics::from_predictions(classes, &truth, &pred));
    Ok(out)
}

/// What every fit of one training run shares: the scored clips and the settings.
pub struct Fitter<'a> {
    pub samples: &'a [Sample],
    pub n_classes: usize,
    pub fit: &'a FitOptions,
    pub train_on: TrainOn,
    /// Weigh classes equally in the loss, whatever their number of clips.
    pub balance: bool,
    /// How a tested clip's windows become one decision.
    pub clip_score: ClipScore,
    pub progress: &'a Progress,
}

impl Fitter<'_> {
    /// Fit a head on every clip but `round`'s, and test it on `round`'s clips: their true
    /// and predicted classes are appended to `truth` and `pred`. Returns the clips trained
    /// on and the round's result.
    fn test_round(
        &self,
        round: &split::Round,
        label: &str,
        truth: &mut Vec<usize>,
        pred: &mut Vec<usize>,
    ) -> (Vec<usize>, RoundResult) {
        let train_idx: Vec<usize> = (0..self.samples.len())
            .filter(|i| round.test.binary_search(i).is_err())
            .collect();
        let head = self.fit(&train_idx, label);
        let mut right = 0;
        for &i in &round.test {
            let s = &self.samples[i];
            let p = predict_clip(&head, &s.windows, self.clip_score);
            right += usize::from(p == s.label);
            truth.push(s.label);
            pred.push(p);
        }
        let acc = right as f64 / round.test.len().max(1) as f64;
        self.progress.line(&format!(
            "{}: trained on {} clips, tested on {}: accuracy {:.1}%",
            round.name,
            train_idx.len(),
            round.test.len(),
            acc * 100.0
        ));
        let result = RoundResult {
            name: round.name.clone(),
            clips: round.test.len(),
            accuracy: acc,
        };
        (train_idx, result)
    }

    /// Fit a head on the clips `idx`; `what` names the fit in progress lines.
    pub fn fit(&self, idx: &[usize], what: &str) -> TrainedHead {
        let (x, y, w) = self.rows(idx);
        let epochs = self.fit.epochs;
        let progress = self.progress;
        let head = fit::fit(
            x.view(),
            &y,
            &w,
            self.n_classes,
            self.fit,
            &mut |epoch, loss| {
                if progress.show_epoch(epoch, epochs) {
                    progress.status(&format!(
                        "{what}: epoch {epoch:>4}/{epochs}, {} rows, loss {loss:.4}",
                        y.len()
                    ));
                }
            },
        );
        progress.done();
        head
    }

    /// The training rows of the clips `idx`, their classes and weights.
    fn rows(&self, idx: &[usize]) -> (Array2<f32>, Vec<usize>, Vec<f32>) {
        let mut clips_per_class = vec![0usize; self.n_classes];
        for &i in idx {
            clips_per_class[self.samples[i].label] += 1;
        }
        let dim = self.samples[idx[0]].windows[0].len();
        let mut rows: Vec<f32> = Vec::new();
        let mut y = Vec::new();
        let mut w = Vec::new();
        for &i in idx {
            let s = &self.samples[i];
            // Each clip weighs the same whatever its length; with `balance`, each class too.
            let class_w = if self.balance {
                1.0 / clips_per_class[s.label] as f32
            } else {
                1.0
            };
            let n = s.windows.len() as f32;
            match self.train_on {
                TrainOn::Windows => {
                    for win in &s.windows {
                        rows.extend_from_slice(win);
                        y.push(s.label);
                        w.push(class_w / n);
                    }
                }
                TrainOn::ClipMeans => {
                    rows.extend((0..dim).map(|d| s.windows.iter().map(|v| v[d]).sum::<f32>() / n));
                    y.push(s.label);
                    w.push(class_w);
                }
            }
        }
        let x = Array2::from_shape_vec((y.len(), dim), rows).expect("rows of equal length");
        (x, y, w)
    }
}

/// A clip's class from the head's scores of its windows.
fn predict_clip(head: &TrainedHead, windows: &[Vec<f32>], how: ClipScore) -> usize {
    let dim = windows[0].len();
    let flat: Vec<f32> = windows.iter().flatten().copied().collect();
    let x = Array2::from_shape_vec((windows.len(), dim), flat).expect("rows of equal length");
    let p = head.predict_proba(x.view());
    let rows: Vec<Vec<f32>> = p.rows().into_iter().map(|r| r.to_vec()).collect();
    let classes: Vec<usize> = (0..head.classes()).collect();
    clip_decision(&rows, &classes, how)
}
