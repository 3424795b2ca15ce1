//! Headerless PCM: the sample formats of `--format`, also the layouts of common WAV data.

use std::fmt;
use std::str::FromStr;

use super::{sanitize, AudioError, Result};

/// Sample formats of headerless PCM on stdin (`--format`): the common outputs of
/// `ffmpeg -f <fmt>` and `arecord -f <FMT>`. All little-endian and interleaved. They are also
/// how the common WAV encodings lay out their data chunk, which is read in bulk through
/// [`decode`](Self::decode), so a WAV and its data piped raw decode to the same samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RawFormat {
    /// Signed 16-bit (`s16le`, arecord `S16_LE`).
    S16Le,
    /// Signed 24-bit packed in 3 bytes (`s24le`, arecord `S24_3LE`). arecord's `S24_LE`
    /// (24 bits in a 4-byte container) is a different layout and deliberately not accepted.
    S24Le,
    /// Signed 32-bit (`s32le`, arecord `S32_LE`).
    S32Le,
    /// 32-bit IEEE float (`f32le`, arecord `FLOAT_LE`).
    F32Le,
    /// Unsigned 8-bit with 128 as silence (`u8`, arecord `U8`).
    U8,
}

impl RawFormat {
    /// The canonical names, as listed in error messages.
    pub const NAMES: &'static str = "s16le, s24le (3-byte), s32le, f32le, u8";

    /// Bytes in one sample of one channel.
    pub fn bytes_per_sample(self) -> usize {
        match self {
            RawFormat::S16Le => 2,
            RawFormat::S24Le => 3,
            RawFormat::S32Le | RawFormat::F32Le => 4,
            RawFormat::U8 => 1,
        }
    }

    /// Append the samples in `bytes` to `out` as `f32` in `[-1, 1]`.
    ///
    /// Only whole samples are decoded; trailing bytes that do not make a full sample are
    /// ignored, so a caller reading a pipe must carry them over to the next call.
    pub fn decode(self, bytes: &[u8], out: &mut Vec<f32>) {
        let width = self.bytes_per_sample();
        let chunks = bytes.chunks_exact(width);
        out.reserve(chunks.len());
        match self {
            RawFormat::S16Le => {
                out.extend(chunks.map(|b| f32::from(i16::from_le_bytes([b[0], b[1]])) / 32_768.0))
            }
            RawFormat::S24Le => out.extend(chunks.map(|b| {
                // Place the 3 bytes in the top of an i32 so the shift back sign-extends.
                let v = i32::from_le_bytes([0, b[0], b[1], b[2]]) >> 8;
                v as f32 / 8_388_608.0
            })),
            RawFormat::S32Le => out
                .extend(chunks.map(|b| {
                    i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f32 / 2_147_483_648.0
                })),
            RawFormat::F32Le => {
                out.extend(chunks.map(|b| sanitize(f32::from_le_bytes([b[0], b[1], b[2], b[3]]))))
            }
            RawFormat::U8 => out.extend(chunks.map(|b| (f32::from(b[0]) - 128.0) / 128.0)),
        }
    }

    /// Canonical name, the one [`FromStr`] and ffmpeg use.
    pub fn name(self) -> &'static str {
        match self {
            RawFormat::S16Le => "s16le",
            RawFormat::S24Le => "s24le",
            RawFormat::S32Le => "s32le",
            RawFormat::F32Le => "f32le",
            RawFormat::U8 => "u8",
        }
    }
}

impl fmt::Display for RawFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for RawFormat {
    type Err = AudioError;

    /// Accepts ffmpeg's names and arecord's, case-insensitively.
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "s16le" | "s16_le" => Ok(RawFormat::S16Le),
            "s24le" | "s24_3le" => Ok(RawFormat::S24Le),
            "s32le" | "s32_le" => Ok(RawFormat::S32Le),
            "f32le" | "float_le" => Ok(RawFormat::F32Le),
            "u8" => Ok(RawFormat::U8),
            _ => Err(AudioError::UnknownRawFormat {
                given: s.to_owned(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_formats_parse_ffmpeg_and_arecord_names() {
        for (name, want) in [
            ("s16le", RawFormat::S16Le),
            ("S16_LE", RawFormat::S16Le),
            ("s24le", RawFormat::S24Le),
            ("S24_3LE", RawFormat::S24Le),
            ("s32le", RawFormat::S32Le),
            ("f32le", RawFormat::F32Le),
            ("FLOAT_LE", RawFormat::F32Le),
            ("u8", RawFormat::U8),
        ] {
            assert_eq!(name.parse::<RawFormat>().unwrap(), want, "{name}");
        }
        for f in [
            RawFormat::S16Le,
            RawFormat::S24Le,
            RawFormat::S32Le,
            RawFormat::F32Le,
            RawFormat::U8,
        ] {
            assert_eq!(f.name().parse::<RawFormat>().unwrap(), f);
        }
    }

    #[test]
    fn unknown_raw_format_error_lists_allowed_names() {
        // S24_LE is a 4-byte container; silently reading it as packed 3-byte would be garbage.
        for bad in ["S24_LE", "mp3", ""] {
            let msg = bad.parse::<RawFormat>().unwrap_err().to_string();
            for name in ["s16le", "s24le", "s32le", "f32le", "u8"] {
                assert!(msg.contains(name), "{msg}");
            }
        }
    }

    #[test]
    fn raw_decode_scales_extremes_and_ignores_partial_samples() {
        let mut out = Vec::new();
        RawFormat::S16Le.decode(&[0x00, 0x80, 0xff, 0x7f, 0x00, 0x00, 0x12], &mut out);
        assert_eq!(out, vec![-1.0, 32767.0 / 32768.0, 0.0]);

        out.clear();
        RawFormat::S24Le.decode(
            &[0x00, 0x00, 0x80, 0xff, 0xff, 0x7f, 0xff, 0xff, 0xff],
            &mut out,
        );
        assert_eq!(
            out,
            vec![-1.0, 8_388_607.0 / 8_388_608.0, -1.0 / 8_388_608.0]
        );

        out.clear();
        RawFormat::S32Le.decode(&[0, 0, 0, 0x80, 0, 0, 0, 0x40], &mut out);
        assert_eq!(out, vec![-1.0, 0.5]);

        out.clear();
        let mut bytes = Vec::new();
        for v in [0.25f32, -2.0, f32::NAN] {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
        RawFormat::F32Le.decode(&bytes, &mut out);
        assert_eq!(out, vec![0.25, -1.0, 0.0]);

        out.clear();
        RawFormat::U8.decode(&[0, 128, 192], &mut out);
        assert_eq!(out, vec![-1.0, 0.0, 0.5]);
    }
}
