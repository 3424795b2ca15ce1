//! Fitting a small classifier (the "head") on a base model's output (an internal layer or its
//! scores).
//!
//! The head is: an optional log-odds transform (when its inputs are the base's probabilities),
//! standardization (mean and standard deviation of the training rows), then a multinomial
//! logistic regression or a one-hidden-layer MLP, then a softmax. It is trained full-batch with Adam on a weighted
//! cross-entropy plus an L2 penalty on the weights. Everything here is pure computation on
//! in-memory arrays: no I/O, no ONNX; [`super::onnx`] turns the result into a graph that
//! computes exactly what [`TrainedHead::predict_proba`] computes.

use ndarray::{Array1, Array2, ArrayView2, Axis};
use serde::Serialize;

/// How the base model's output is transformed before standardization.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Transform {
    /// The values as they are (an internal layer, or probabilities in 0..1).
    Identity,
    /// `ln(p) - ln(1 - p)` with `p` clipped to `[eps, 1 - eps]`: undoes the base's sigmoid,
    /// so that a label going from 0.001 to 0.01 counts as much as one going from 0.5 to 0.9.
    Logit { eps: f32 },
}

impl Transform {
    pub fn apply(self, x: f32) -> f32 {
        match self {
            Transform::Identity => x,
            Transform::Logit { eps } => {
                let p = x.clamp(eps, 1.0 - eps);
                p.ln() - (1.0 - p).ln()
            }
        }
    }

    /// Smallest standard deviation used for standardization. A feature that hardly varies in
    /// training would otherwise be divided by almost nothing, and any small change at run
    /// time would become a huge input.
    fn std_floor(self) -> f32 {
        match self {
            Transform::Identity => 1e-2,
            Transform::Logit { .. } => 1e-1,
        }
    }
}

/// One dense layer: `x · w + b`, `w` is `[inputs, outputs]`.
#[derive(Debug, Clone)]
pub struct Layer {
    pub w: Array2<f32>,
    pub b: Array1<f32>,
}

/// A trained head.
#[derive(Debug, Clone)]
pub struct TrainedHead {
    pub transform: Transform,
    /// Per-input mean and standard deviation of the transformed training rows.
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
    /// Dense layers, ReLU between them; the last one gives the class logits.
    pub layers: Vec<Layer>,
}

impl TrainedHead {
    /// Number of classes the head outputs.
    pub fn classes(&self) -> usize {
        self.layers.last().map_or(0, |l| l.b.len())
    }

    /// Transform and standardize raw base outputs `[rows, inputs]`.
    pub fn prepare(&self, raw: ArrayView2<f32>) -> Array2<f32> {
        let mut x = raw.mapv(|v| self.transform.apply(v));
        for mut row in x.rows_mut() {
            for ((v, m), s) in row.iter_mut().zip(&self.mean).zip(&self.std) {
                *v = (*v - m) / s;
            }
        }
        x
    }

    /// Class probabilities `[rows, classes]` for raw base outputs `[rows, inputs]`.
    pub fn predict_proba(&self, raw: ArrayView2<f32>) -> Array2<f32> {
        let x = self.prepare(raw);
        let mut acts = forward(&self.layers, x);
        let mut p = acts.pop().unwrap_or_default();
        softmax_rows(&mut p);
        p
    }
}

/// Settings of one fit.
#[derive(Debug, Clone, Serialize)]
pub struct FitOptions {
    pub transform: Transform,
    /// Full-batch Adam steps.
    pub epochs: usize,
    pub learning_rate: f32,
    /// L2 penalty on the weights (not the biases), on the scale of the mean loss.
    pub l2: f32,
    /// Hidden units of a one-hidden-layer MLP; 0 = multinomial logistic regression.
    pub hidden: usize,
    /// Seed of the MLP's initial weights (logistic regression starts from zero).
    pub seed: u64,
}

impl Default for FitOptions {
    fn default() -> Self {
        FitOptions {
            transform: Transform::Logit { eps: 1e-4 },
            epochs: 300,
            learning_rate: 0.01,
            l2: 1e-3,
            hidden: 0,
            seed: 1,
        }
    }
}

/// Fit a head on raw base outputs `raw` `[rows, inputs]` with classes `y` and per-row `weights`
/// (normalized here to sum to 1). `on_epoch(epoch, loss)` is called after every step.
pub fn fit(
    raw: ArrayView2<f32>,
    y: &[usize],
    weights: &[f32],
    n_classes: usize,
    opts: &FitOptions,
    on_epoch: &mut dyn FnMut(usize, f32),
) -> TrainedHead {
    let (rows, n_in) = raw.dim();
    assert_eq!(rows, y.len());
    assert_eq!(rows, weights.len());

    // Standardization statistics come from the training rows only, so a held-out clip never
    // leaks into the model through them.
    let xt = raw.mapv(|v| opts.transform.apply(v));
    let mean = xt.mean_axis(Axis(0)).unwrap_or_else(|| Array1::zeros(n_in));
    let floor = opts.transform.std_floor();
    let std = xt.std_axis(Axis(0), 0.0).mapv(|s| s.max(floor));
    let mut head = TrainedHead {
        transform: opts.transform,
        mean: mean.to_vec(),
        std: std.to_vec(),
        layers: init_layers(n_in, opts.hidden, n_classes, opts.seed),
    };
    let x = head.prepare(raw);

    let total: f32 = weights.iter().sum();
    let w = Array1::from_iter(weights.iter().map(|v| v / total.max(f32::MIN_POSITIVE)));
    let mut onehot = Array2::<f32>::zeros((rows, n_classes));
    for (i, &c) in y.iter().enumerate() {
        onehot[[i, c]] = 1.0;
    }
    let batch = Batch {
        x: &x,
        y,
        w: &w,
        onehot: &onehot,
    };

    let mut adam: Vec<(Adam, Adam)> = head
        .layers
        .iter()
        .map(|l| (Adam::new(l.w.len()), Adam::new(l.b.len())))
        .collect();
    for epoch in 1..=opts.epochs {
        let loss = step(&mut head.layers, &mut adam, &batch, opts);
        on_epoch(epoch, loss);
    }
    head
}

/// The training rows of one fit, prepared once.
struct Batch<'a> {
    /// Transformed and standardized inputs `[rows, inputs]`.
    x: &'a Array2<f32>,
    y: &'a [usize],
    /// Row weights, summing to 1.
    w: &'a Array1<f32>,
    /// `y` one-hot `[rows, classes]`.
    onehot: &'a Array2<f32>,
}

/// One full-batch Adam step on `layers`; returns the loss before the step.
fn step(layers: &mut [Layer], adam: &mut [(Adam, Adam)], batch: &Batch, opts: &FitOptions) -> f32 {
    let mut acts = forward(layers, batch.x.clone());
    let mut p = acts.pop().unwrap_or_default();
    softmax_rows(&mut p);
    let mut loss = 0.0f32;
    for ((row, &c), wi) in p.rows().into_iter().zip(batch.y).zip(batch.w) {
        loss -= wi * row[c].max(1e-12).ln();
    }
    for l in layers.iter() {
        loss += 0.5 * opts.l2 * l.w.iter().map(|v| v * v).sum::<f32>();
    }
    // d(loss)/d(logits) of a weighted softmax cross-entropy.
    let mut grad = (&p - batch.onehot) * batch.w.view().insert_axis(Axis(1));
    for i in (0..layers.len()).rev() {
        let input = if i == 0 { batch.x } else { &acts[i - 1] };
        let gw = input.t().dot(&grad) + &(&layers[i].w * opts.l2);
        let gb = grad.sum_axis(Axis(0));
        if i > 0 {
            // Back through the ReLU that produced `acts[i - 1]`.
            let mut g = grad.dot(&layers[i].w.t());
            g.zip_mut_with(&acts[i - 1], |g, a| {
                if *a <= 0.0 {
                    *g = 0.0
                }
            });
            grad = g;
        }
        let layer = &mut layers[i];
        let (aw, ab) = &mut adam[i];
        aw.step(
            layer.w.as_slice_mut().expect("standard layout"),
            gw.as_standard_layout().as_slice().expect("standard layout"),
            opts.learning_rate,
        );
        ab.step(
            layer.b.as_slice_mut().expect("contiguous"),
            gb.as_slice().expect("contiguous"),
            opts.learning_rate,
        );
    }
    loss
}

/// Activations of every layer; the last entry holds the logits. Hidden activations are
/// after their ReLU.
fn forward(layers: &[Layer], x: Array2<f32>) -> Vec<Array2<f32>> {
    let mut acts: Vec<Array2<f32>> = Vec::with_capacity(layers.len());
    let last = layers.len().saturating_sub(1);
    for (i, l) in layers.iter().enumerate() {
        let input = acts.last().unwrap_or(&x);
        let mut z = input.dot(&l.w) + &l.b;
        if i != last {
            z.mapv_inplace(|v| v.max(0.0));
        }
        acts.push(z);
    }
    acts
}

fn softmax_rows(z: &mut Array2<f32>) {
    for mut row in z.rows_mut() {
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        row.mapv_inplace(|v| (v - max).exp());
        let sum = row.sum();
        row.mapv_inplace(|v| v / sum);
    }
}

fn init_layers(n_in: usize, hidden: usize, n_out: usize, seed: u64) -> Vec<Layer> {
    if hidden == 0 {
        // Logistic regression is convex: starting at zero is fine and deterministic.
        return vec![Layer {
            w: Array2::zeros((n_in, n_out)),
            b: Array1::zeros(n_out),
        }];
    }
    let mut rng = SplitMix64(seed);
    let mut layer = |fan_in: usize, fan_out: usize| {
        // He-uniform initialisation for ReLU layers.
        let a = (6.0 / fan_in as f64).sqrt();
        Layer {
            w: Array2::from_shape_fn((fan_in, fan_out), |_| {
                ((rng.next_f64() * 2.0 - 1.0) * a) as f32
            }),
            b: Array1::zeros(fan_out),
        }
    };
    vec![layer(n_in, hidden), layer(hidden, n_out)]
}

/// A tiny deterministic generator for initial weights, so runs are reproducible without a
/// dependency.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Adam's moment estimates for one parameter tensor.
struct Adam {
    m: Vec<f32>,
    v: Vec<f32>,
    t: i32,
}

impl Adam {
    const B1: f32 = 0.9;
    const B2: f32 = 0.999;
    const EPS: f32 = 1e-8;

    fn new(n: usize) -> Self {
        Adam {
            m: vec![0.0; n],
            v: vec![0.0; n],
            t: 0,
        }
    }

    fn step(&mut self, params: &mut [f32], grad: &[f32], lr: f32) {
        self.t += 1;
        let c1 = 1.0 - Self::B1.powi(self.t);
        let c2 = 1.0 - Self::B2.powi(self.t);
        for (((p, g), m), v) in params
            .iter_mut()
            .zip(grad)
            .zip(&mut self.m)
            .zip(&mut self.v)
        {
            *m = Self::B1 * *m + (1.0 - Self::B1) * g;
            *v = Self::B2 * *v + (1.0 - Self::B2) * g * g;
            *p -= lr * (*m / c1) / ((*v / c2).sqrt() + Self::EPS);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two classes that differ in the first input only.
    fn toy() -> (Array2<f32>, Vec<usize>) {
        let mut rng = SplitMix64(7);
        let mut rows = Vec::new();
        let mut y = Vec::new();
        for i in 0..200 {
            let c = i % 2;
            let base = if c == 0 { 0.1 } else { 0.8 };
            rows.push(base + 0.1 * rng.next_f64() as f32);
            rows.push(rng.next_f64() as f32);
            y.push(c);
        }
        (Array2::from_shape_vec((200, 2), rows).unwrap(), y)
    }

    #[test]
    fn logistic_regression_separates_separable_classes() {
        let (x, y) = toy();
        let mut losses = Vec::new();
        let head = fit(
            x.view(),
            &y,
            &vec![1.0; y.len()],
            2,
            &FitOptions::default(),
            &mut |_, l| losses.push(l),
        );
        assert!(losses.last().unwrap() < &(losses[0] * 0.5), "{losses:?}");
        let p = head.predict_proba(x.view());
        for (row, &c) in p.rows().into_iter().zip(&y) {
            assert!(row[c] > 0.5, "{row:?} for class {c}");
            assert!((row.sum() - 1.0).abs() < 1e-5);
        }
    }

    #[test]
    fn mlp_learns_the_same_toy_problem() {
        let (x, y) = toy();
        let opts = FitOptions {
            hidden: 8,
            ..FitOptions::default()
        };
        let head = fit(x.view(), &y, &vec![1.0; y.len()], 2, &opts, &mut |_, _| {});
        assert_eq!(head.layers.len(), 2);
        let p = head.predict_proba(x.view());
        let right = p
            .rows()
            .into_iter()
            .zip(&y)
            .filter(|(r, &c)| r[c] > 0.5)
            .count();
        assert!(right >= 195, "{right} of 200");
    }

    #[test]
    fn logit_clips_probabilities_away_from_zero_and_one() {
        let t = Transform::Logit { eps: 1e-4 };
        assert_eq!(t.apply(0.5), 0.0);
        assert_eq!(t.apply(0.0), t.apply(1e-6));
        assert!((t.apply(1.0) + t.apply(0.0)).abs() < 1e-3);
    }
}
