//! Encoding a clip in memory, so the file is then written once, sequentially: FLAC (16-bit,
//! flacenc) or WAV (32-bit float, hound).

use std::io::Cursor;

use flacenc::component::BitRepr;
use flacenc::error::Verify;

use super::ClipFormat;

/// Errors of encoding a clip.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    #[error("FLAC encoder: {0}")]
    Flac(String),
    #[error("WAV encoder: {0}")]
    Wav(#[from] hound::Error),
}

/// Mono `samples` at `rate` Hz as a file of `format`.
pub fn encode(format: ClipFormat, rate: u32, samples: &[f32]) -> Result<Vec<u8>, EncodeError> {
    match format {
        ClipFormat::Flac => flac(rate, samples),
        ClipFormat::Wav => wav(rate, samples),
    }
}

/// 16-bit: a sample `x` becomes `round(x * 32768)`, clamped; exact for 16-bit sources.
fn flac(rate: u32, samples: &[f32]) -> Result<Vec<u8>, EncodeError> {
    let ints: Vec<i32> = samples
        .iter()
        .map(|x| (x * 32768.0).round().clamp(-32768.0, 32767.0) as i32)
        .collect();
    let config = flacenc::config::Encoder::default()
        .into_verified()
        .map_err(|(_, e)| EncodeError::Flac(format!("{e:?}")))?;
    let source = flacenc::source::MemSource::from_samples(&ints, 1, 16, rate as usize);
    let stream = flacenc::encode_with_fixed_block_size(&config, source, config.block_size)
        .map_err(|e| EncodeError::Flac(format!("{e:?}")))?;
    let mut sink = flacenc::bitsink::ByteSink::new();
    stream
        .write(&mut sink)
        .map_err(|e| EncodeError::Flac(format!("{e:?}")))?;
    let mut bytes = sink.into_inner();
    fix_min_block_size(&mut bytes);
    Ok(bytes)
}

/// flacenc puts the last (shorter) block's length in STREAMINFO's minimum block size; the
/// FLAC format counts every block but the last, so a fixed-blocksize stream has min = max.
/// Readers that go by the format (symphonia, hark's own decoder) otherwise take the frames'
/// numbering for a variable-blocksize stream and find no valid frame.
fn fix_min_block_size(bytes: &mut [u8]) {
    // "fLaC", the metadata block header (4 bytes), then STREAMINFO: min (2 bytes), max (2).
    if bytes.len() >= 12 && &bytes[..4] == b"fLaC" && bytes[4] & 0x7f == 0 {
        let (min, max) = bytes[8..12].split_at_mut(2);
        min.copy_from_slice(max);
    }
}

fn wav(rate: u32, samples: &[f32]) -> Result<Vec<u8>, EncodeError> {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: rate,
        bits_per_sample: 32,
        sample_format: hound::SampleFormat::Float,
    };
    let mut out = Cursor::new(Vec::with_capacity(44 + 4 * samples.len()));
    let mut w = hound::WavWriter::new(&mut out, spec)?;
    for &x in samples {
        w.write_sample(x)?;
    }
    w.finalize()?;
    Ok(out.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wav_keeps_every_sample_exactly() {
        let x: Vec<f32> = (0..1000).map(|i| (i as f32 * 0.01).sin() * 0.7).collect();
        let bytes = encode(ClipFormat::Wav, 44_100, &x).unwrap();
        let r = hound::WavReader::new(Cursor::new(bytes)).unwrap();
        assert_eq!(r.spec().sample_rate, 44_100);
        let back: Vec<f32> = r.into_samples().map(Result::unwrap).collect();
        assert_eq!(back, x);
    }

    #[test]
    fn flac_starts_with_its_magic_and_is_smaller_than_wav() {
        let x: Vec<f32> = (0..48_000).map(|i| (i as f32 * 0.05).sin() * 0.3).collect();
        let flac = encode(ClipFormat::Flac, 48_000, &x).unwrap();
        let wav = encode(ClipFormat::Wav, 48_000, &x).unwrap();
        assert_eq!(&flac[..4], b"fLaC");
        assert!(
            flac.len() < wav.len() / 2,
            "{} vs {}",
            flac.len(),
            wav.len()
        );
    }
}
