//! Specs, signals and comparisons shared by the front end's unit tests.

use super::{FeatureSpec, Framing, LogKind, MelNorm, MelScale, Normalize, PadMode, Window};

pub(super) fn spec() -> FeatureSpec {
    FeatureSpec {
        sample_rate: 16000,
        n_fft: 512,
        win_length: 400,
        hop_length: 160,
        window: Window::Hann,
        center: false,
        pad_mode: PadMode::Constant,
        framing: Framing::Librosa,
        n_mels: 64,
        fmin: 125.0,
        fmax: 7500.0,
        mel_scale: MelScale::Htk,
        mel_norm: MelNorm::None,
        power: 1.0,
        log: LogKind::Ln,
        db_ref: 1.0,
        db_amin: 1e-10,
        db_top: None,
        ln_offset: 0.001,
        normalize: Normalize::None,
    }
}

pub(super) fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol * b.abs().max(1.0)
}

/// A deterministic test signal: a rising tone plus pseudo-random noise.
pub(super) fn test_signal(n: usize) -> Vec<f32> {
    let mut x = 12345u32;
    (0..n)
        .map(|i| {
            x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            let noise = (x >> 8) as f32 / (1u32 << 24) as f32 - 0.5;
            let t = i as f64 / 16000.0;
            (0.5 * (2.0 * std::f64::consts::PI * (200.0 + 900.0 * t) * t).sin()) as f32
                + 0.1 * noise
        })
        .collect()
}

/// A centred (reflect-padded, dB with top-dB clipping, z-scored) and a non-centred spec.
pub(super) fn centred_and_not() -> [FeatureSpec; 3] {
    let centred = FeatureSpec {
        center: true,
        pad_mode: PadMode::Reflect,
        mel_scale: MelScale::Slaney,
        mel_norm: MelNorm::Slaney,
        power: 2.0,
        log: LogKind::Db,
        db_top: Some(80.0),
        normalize: Normalize::Zscore,
        ..spec()
    };
    let constant = FeatureSpec {
        pad_mode: PadMode::Constant,
        normalize: Normalize::SamplewiseMinmax,
        ..centred.clone()
    };
    [centred, constant, spec()]
}
