//! Reading and writing NumPy `.npy` arrays of 32- and 64-bit floats.
//!
//! This module owns the `.npy` container format (versions 1–3, C order, either byte order) so
//! that `hark features` can hand its output to Python and the tests can read the librosa
//! reference features. It only moves flat `f32` data and a shape: it must not know what the
//! arrays mean, and it supports no other dtype (integers, complex, structured) on purpose —
//! anything else is reported as unsupported rather than guessed at. Fortran-ordered arrays
//! (what `np.save` writes for a transposed array) are read and reordered to C order.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

/// What can go wrong reading or writing a `.npy` file; every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum NpyError {
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {path}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not an .npy file: {detail}")]
    NotNpy { path: PathBuf, detail: String },
    #[error(
        "{path}: unsupported .npy format version {major}.{minor}; versions 1, 2 and 3 are read"
    )]
    UnsupportedVersion { path: PathBuf, major: u8, minor: u8 },
    #[error("{path}: malformed .npy header ({detail}): {header:?}")]
    BadHeader {
        path: PathBuf,
        detail: NpyHeaderError,
        header: String,
    },
    #[error("{path}: unsupported dtype {descr:?}; only float32 ('<f4') and float64 ('<f8') are read; convert with arr.astype(np.float32)")]
    UnsupportedDtype { path: PathBuf, descr: String },
    #[error(
        "{path}: truncated: shape {shape:?} needs {expected} data bytes but the file has {got}"
    )]
    Truncated {
        path: PathBuf,
        shape: Vec<usize>,
        expected: usize,
        got: usize,
    },
    #[error("{path}: {extra} unexpected bytes after the data of shape {shape:?}")]
    TrailingBytes {
        path: PathBuf,
        shape: Vec<usize>,
        extra: usize,
    },
    #[error(
        "{path}: shape {shape:?} is larger than hark reads ({MAX_DATA_BYTES} data bytes at most)"
    )]
    TooLarge { path: PathBuf, shape: Vec<usize> },
    #[error(
        "{path}: the .npy header claims {len} bytes; hark reads headers of up to {MAX_HEADER_LEN}"
    )]
    HeaderTooLong { path: PathBuf, len: usize },
    #[error("{path}: shape {shape:?} holds {expected} values but {got} were given")]
    ShapeMismatch {
        path: PathBuf,
        shape: Vec<usize>,
        expected: usize,
        got: usize,
    },
}

/// What is wrong with an `.npy` header's dictionary: which part was not understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NpyHeaderError {
    #[error("not a {{...}} dictionary")]
    NotADictionary,
    #[error("expected a quoted key")]
    ExpectedKey,
    #[error("expected ':' after key '{0}'")]
    ExpectedColon(String),
    #[error("'descr' is not a quoted string")]
    DescrNotQuoted,
    #[error("'fortran_order' is neither True nor False")]
    FortranOrderNotBool,
    #[error("'shape' is not a tuple")]
    ShapeNotTuple,
    #[error("'shape' tuple is not closed")]
    ShapeNotClosed,
    #[error("'shape' has a dimension that is not a whole number")]
    ShapeNotWhole,
    #[error("unexpected key '{0}'")]
    UnexpectedKey(String),
    #[error("expected ',' between entries")]
    ExpectedComma,
    #[error("no '{0}' key")]
    MissingKey(&'static str),
}

/// Result alias for this module.
pub type Result<T, E = NpyError> = std::result::Result<T, E>;

const MAGIC: &[u8; 6] = b"\x93NUMPY";

/// Most data bytes an array may hold (1 GiB): a header's shape is checked against it before
/// anything is allocated or read, so a lying header or a path like `/dev/zero` cannot make
/// hark read without end.
pub const MAX_DATA_BYTES: usize = 1 << 30;

/// Longest header read. numpy itself refuses headers over 10,000 bytes by default.
pub const MAX_HEADER_LEN: usize = 1 << 16;

/// Reads a float32 or float64 `.npy` array (float64 values are rounded to f32).
/// Returns the shape and the values in C (row-major) order, whichever order the file stores;
/// a 0-d array has shape `[]`.
pub fn read_f32(path: impl AsRef<Path>) -> Result<(Vec<usize>, Vec<f32>)> {
    let path = path.as_ref();
    let read_err = |source| NpyError::Read {
        path: path.to_path_buf(),
        source,
    };
    let file = fs::File::open(path).map_err(read_err)?;
    let mut file = std::io::BufReader::new(file);
    // The fixed prefix, then the header it announces, then exactly the data the header's
    // shape needs and one byte more (to tell trailing bytes): never more than the caps.
    let mut bytes = Vec::new();
    read_at_most(&mut file, 12, &mut bytes).map_err(read_err)?;
    let (header_len, header_start) = header_extent(&bytes, path)?;
    read_at_most(
        &mut file,
        (header_start + header_len).saturating_sub(bytes.len()),
        &mut bytes,
    )
    .map_err(read_err)?;
    let (header, _) = split_header(&bytes, path)?;
    let width = Dtype::of(&header.descr).map_or(8, |d| d.width);
    let expected = data_len(path, &header.shape, width)?;
    read_at_most(&mut file, expected + 1, &mut bytes).map_err(read_err)?;
    parse_f32(&bytes, path)
}

/// Append up to `n` more bytes of `reader` to `out`; fewer only at its end.
fn read_at_most(reader: &mut impl Read, n: usize, out: &mut Vec<u8>) -> std::io::Result<()> {
    reader.take(n as u64).read_to_end(out).map(|_| ())
}

/// Writes `data` (C order) as a little-endian float32 `.npy` file (format version 1, or 2 when
/// the header is too long for version 1) that `np.load` reads.
pub fn write_f32(path: impl AsRef<Path>, shape: &[usize], data: &[f32]) -> Result<()> {
    let path = path.as_ref();
    let bytes = encode_f32(shape, data).map_err(|(expected, got)| NpyError::ShapeMismatch {
        path: path.to_path_buf(),
        shape: shape.to_vec(),
        expected,
        got,
    })?;
    fs::write(path, bytes).map_err(|source| NpyError::Write {
        path: path.to_path_buf(),
        source,
    })
}

/// Parses the bytes of a `.npy` file; `path` is only used in error messages.
pub fn parse_f32(bytes: &[u8], path: &Path) -> Result<(Vec<usize>, Vec<f32>)> {
    let (header, data) = split_header(bytes, path)?;
    let dtype = Dtype::of(&header.descr).ok_or_else(|| NpyError::UnsupportedDtype {
        path: path.to_path_buf(),
        descr: header.descr.clone(),
    })?;
    check_data_len(path, &header.shape, data.len(), dtype.width)?;
    let values = dtype.decode(data);
    let values = if header.fortran_order {
        fortran_to_c(&header.shape, &values)
    } else {
        values
    };
    Ok((header.shape, values))
}

/// Checks the magic and version; returns the header's length and where it starts.
fn header_extent(bytes: &[u8], path: &Path) -> Result<(usize, usize)> {
    let not_npy = |detail: &str| NpyError::NotNpy {
        path: path.to_path_buf(),
        detail: detail.to_string(),
    };
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        return Err(not_npy("it does not start with the \\x93NUMPY magic"));
    }
    let (major, minor) = (bytes[6], bytes[7]);
    // Version 1 has a 2-byte header length; 2 and 3 (3 only allows UTF-8 in the header) have 4.
    let (header_len, header_start) = match major {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 => {
            if bytes.len() < 12 {
                return Err(not_npy("the header length is cut off"));
            }
            let n = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
            (n as usize, 12)
        }
        _ => {
            return Err(NpyError::UnsupportedVersion {
                path: path.to_path_buf(),
                major,
                minor,
            })
        }
    };
    if header_len > MAX_HEADER_LEN {
        return Err(NpyError::HeaderTooLong {
            path: path.to_path_buf(),
            len: header_len,
        });
    }
    Ok((header_len, header_start))
}

/// Checks the magic and version, parses the header and returns it with the data bytes after it.
fn split_header<'a>(bytes: &'a [u8], path: &Path) -> Result<(Header, &'a [u8])> {
    let not_npy = |detail: &str| NpyError::NotNpy {
        path: path.to_path_buf(),
        detail: detail.to_string(),
    };
    let (header_len, header_start) = header_extent(bytes, path)?;
    let data_start = header_start + header_len;
    if bytes.len() < data_start {
        return Err(not_npy("the header is cut off"));
    }
    let header = String::from_utf8_lossy(&bytes[header_start..data_start]).into_owned();
    let header = parse_header(&header).map_err(|detail| NpyError::BadHeader {
        path: path.to_path_buf(),
        detail,
        header: header.trim_end().to_string(),
    })?;
    Ok((header, &bytes[data_start..]))
}

/// Data bytes `shape` needs at `width` bytes a value, if that is at most [`MAX_DATA_BYTES`].
fn data_len(path: &Path, shape: &[usize], width: usize) -> Result<usize> {
    shape
        .iter()
        .try_fold(width, |n, &d| n.checked_mul(d))
        .filter(|&n| n <= MAX_DATA_BYTES)
        .ok_or_else(|| NpyError::TooLarge {
            path: path.to_path_buf(),
            shape: shape.to_vec(),
        })
}

/// The data must hold exactly the values the shape says, `width` bytes each.
fn check_data_len(path: &Path, shape: &[usize], got: usize, width: usize) -> Result<()> {
    let expected = data_len(path, shape, width)?;
    if got < expected {
        return Err(NpyError::Truncated {
            path: path.to_path_buf(),
            shape: shape.to_vec(),
            expected,
            got,
        });
    }
    if got > expected {
        return Err(NpyError::TrailingBytes {
            path: path.to_path_buf(),
            shape: shape.to_vec(),
            extra: got - expected,
        });
    }
    Ok(())
}

/// The float layouts read: 4 or 8 bytes, either byte order.
#[derive(Debug, Clone, Copy)]
struct Dtype {
    width: usize,
    little_endian: bool,
}

impl Dtype {
    /// The layout a header's `descr` names, if it is one of the floats read.
    fn of(descr: &str) -> Option<Dtype> {
        let (width, little_endian) = match descr {
            "<f4" | "=f4" => (4, true),
            "<f8" | "=f8" => (8, true),
            ">f4" => (4, false),
            ">f8" => (8, false),
            _ => return None,
        };
        Some(Dtype {
            width,
            little_endian,
        })
    }

    /// The values in `data` (a whole number of them), float64 rounded to f32.
    fn decode(self, data: &[u8]) -> Vec<f32> {
        let little_endian = self.little_endian;
        if self.width == 4 {
            data.chunks_exact(4)
                .map(|c| {
                    let b = [c[0], c[1], c[2], c[3]];
                    if little_endian {
                        f32::from_le_bytes(b)
                    } else {
                        f32::from_be_bytes(b)
                    }
                })
                .collect()
        } else {
            data.chunks_exact(8)
                .map(|c| {
                    let b = [c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]];
                    let v = if little_endian {
                        f64::from_le_bytes(b)
                    } else {
                        f64::from_be_bytes(b)
                    };
                    v as f32
                })
                .collect()
        }
    }
}

/// Reorders values stored first-axis-fastest (Fortran) into last-axis-fastest (C) order.
fn fortran_to_c(shape: &[usize], values: &[f32]) -> Vec<f32> {
    // A zero axis: no values, while the other axes' product may overflow (found by fuzz/npy).
    if values.is_empty() {
        return Vec::new();
    }
    let mut c_strides = vec![1usize; shape.len()];
    for axis in (0..shape.len().saturating_sub(1)).rev() {
        c_strides[axis] = c_strides[axis + 1]
            .checked_mul(shape[axis + 1])
            .expect("a stride is at most the number of values, checked against MAX_DATA_BYTES");
    }
    let mut out = vec![0.0; values.len()];
    let mut index = vec![0; shape.len()];
    for &v in values {
        let c: usize = index.iter().zip(&c_strides).map(|(i, s)| i * s).sum();
        out[c] = v;
        // Advance the multi-index with the first axis fastest.
        for (i, &d) in index.iter_mut().zip(shape) {
            *i += 1;
            if *i < d {
                break;
            }
            *i = 0;
        }
    }
    out
}

/// Encodes a float32 array; on a shape/length mismatch returns (values the shape needs, given).
fn encode_f32(shape: &[usize], data: &[f32]) -> Result<Vec<u8>, (usize, usize)> {
    let count: usize = shape.iter().product();
    if count != data.len() {
        return Err((count, data.len()));
    }
    let dims = match shape {
        [] => "()".to_string(),
        [n] => format!("({n},)"),
        _ => format!(
            "({})",
            shape
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {dims}, }}");
    // NumPy pads the header with spaces and a newline so the data starts on a 64-byte boundary.
    let version1 = header.len() + 1 + 10 < 65536;
    let prefix = if version1 { 10 } else { 12 };
    let total = (prefix + header.len() + 1).div_ceil(64) * 64;
    header.push_str(&" ".repeat(total - prefix - header.len() - 1));
    header.push('\n');

    let mut out = Vec::with_capacity(total + data.len() * 4);
    out.extend_from_slice(MAGIC);
    if version1 {
        out.extend_from_slice(&[1, 0]);
        out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    } else {
        out.extend_from_slice(&[2, 0]);
        out.extend_from_slice(&(header.len() as u32).to_le_bytes());
    }
    out.extend_from_slice(header.as_bytes());
    for v in data {
        out.extend_from_slice(&v.to_le_bytes());
    }
    Ok(out)
}

/// The three fields of an `.npy` header we need.
#[derive(Debug, PartialEq)]
struct Header {
    descr: String,
    fortran_order: bool,
    shape: Vec<usize>,
}

/// Parses the Python dict literal NumPy writes, e.g.
/// `{'descr': '<f4', 'fortran_order': False, 'shape': (96, 64), }`.
/// Only this flat form is accepted; the error says which part was not understood.
fn parse_header(text: &str) -> std::result::Result<Header, NpyHeaderError> {
    let text = text.trim();
    let body = text
        .strip_prefix('{')
        .and_then(|t| t.strip_suffix('}'))
        .ok_or(NpyHeaderError::NotADictionary)?;
    let mut descr = None;
    let mut fortran_order = None;
    let mut shape = None;
    let mut rest = body.trim_start();
    while !rest.is_empty() {
        let (key, after) = take_quoted(rest).ok_or(NpyHeaderError::ExpectedKey)?;
        let after = after
            .trim_start()
            .strip_prefix(':')
            .ok_or_else(|| NpyHeaderError::ExpectedColon(key.to_string()))?
            .trim_start();
        let after = match key {
            "descr" => {
                let (v, after) = take_quoted(after).ok_or(NpyHeaderError::DescrNotQuoted)?;
                descr = Some(v.to_string());
                after
            }
            "fortran_order" => {
                if let Some(a) = after.strip_prefix("True") {
                    fortran_order = Some(true);
                    a
                } else if let Some(a) = after.strip_prefix("False") {
                    fortran_order = Some(false);
                    a
                } else {
                    return Err(NpyHeaderError::FortranOrderNotBool);
                }
            }
            "shape" => {
                let inner = after
                    .strip_prefix('(')
                    .ok_or(NpyHeaderError::ShapeNotTuple)?;
                let end = inner.find(')').ok_or(NpyHeaderError::ShapeNotClosed)?;
                let dims = inner[..end]
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    // Python 2 era files may write dims as `64L`.
                    .map(|s| s.trim_end_matches('L').parse::<usize>())
                    .collect::<std::result::Result<Vec<_>, _>>()
                    .map_err(|_| NpyHeaderError::ShapeNotWhole)?;
                shape = Some(dims);
                &inner[end + 1..]
            }
            other => return Err(NpyHeaderError::UnexpectedKey(other.to_string())),
        };
        let after = after.trim_start();
        rest = match after.strip_prefix(',') {
            Some(a) => a.trim_start(),
            None if after.is_empty() => after,
            None => return Err(NpyHeaderError::ExpectedComma),
        };
    }
    Ok(Header {
        descr: descr.ok_or(NpyHeaderError::MissingKey("descr"))?,
        fortran_order: fortran_order.ok_or(NpyHeaderError::MissingKey("fortran_order"))?,
        shape: shape.ok_or(NpyHeaderError::MissingKey("shape"))?,
    })
}

/// Splits a leading `'...'` or `"..."` string off `s`, returning its contents and the rest.
fn take_quoted(s: &str) -> Option<(&str, &str)> {
    let quote = s.chars().next().filter(|c| *c == '\'' || *c == '"')?;
    let inner = &s[1..];
    let end = inner.find(quote)?;
    Some((&inner[..end], &inner[end + 1..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn npy_bytes(descr: &str, fortran: bool, shape: &str, data: &[u8]) -> Vec<u8> {
        let header = format!(
            "{{'descr': '{descr}', 'fortran_order': {}, 'shape': {shape}, }}\n",
            if fortran { "True" } else { "False" }
        );
        let mut out = MAGIC.to_vec();
        out.extend_from_slice(&[1, 0]);
        out.extend_from_slice(&(header.len() as u16).to_le_bytes());
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(data);
        out
    }

    #[test]
    fn written_file_reads_back_with_shape_and_values() {
        for shape in [vec![], vec![3], vec![2, 3], vec![2, 1, 3]] {
            let n: usize = shape.iter().product();
            let data: Vec<f32> = (0..n).map(|i| i as f32 * 0.5 - 1.0).collect();
            let bytes = encode_f32(&shape, &data).unwrap();
            assert_eq!(
                bytes.len() % 64,
                (n * 4) % 64,
                "data starts on a 64-byte boundary"
            );
            let (s, d) = parse_f32(&bytes, Path::new("x.npy")).unwrap();
            assert_eq!(s, shape);
            assert_eq!(d, data);
        }
    }

    #[test]
    fn header_matches_what_numpy_writes() {
        let bytes = encode_f32(&[96, 64], &vec![0.0; 96 * 64]).unwrap();
        let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
        let header = std::str::from_utf8(&bytes[10..10 + header_len]).unwrap();
        assert!(header.starts_with("{'descr': '<f4', 'fortran_order': False, 'shape': (96, 64), }"));
        assert!(header.ends_with('\n'));
        assert_eq!((10 + header_len) % 64, 0);
    }

    #[test]
    fn float64_is_converted_and_big_endian_is_read() {
        let data: Vec<u8> = [1.5f64, -2.25]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let (s, d) = parse_f32(&npy_bytes("<f8", false, "(2,)", &data), Path::new("a")).unwrap();
        assert_eq!((s, d), (vec![2], vec![1.5, -2.25]));
        let data: Vec<u8> = [3.0f32].iter().flat_map(|v| v.to_be_bytes()).collect();
        let (_, d) = parse_f32(&npy_bytes(">f4", false, "(1,)", &data), Path::new("a")).unwrap();
        assert_eq!(d, vec![3.0]);
    }

    #[test]
    fn errors_name_the_file_and_the_problem() {
        let p = Path::new("feat.npy");
        let err = parse_f32(b"hello world", p).unwrap_err();
        assert!(matches!(err, NpyError::NotNpy { .. }));
        assert!(err.to_string().contains("feat.npy"));

        let err = parse_f32(&npy_bytes("<i8", false, "(1,)", &[0; 8]), p).unwrap_err();
        assert!(matches!(err, NpyError::UnsupportedDtype { .. }), "{err}");
        assert!(err.to_string().contains("<i8"));

        let err = parse_f32(&npy_bytes("<f4", false, "(2, 2)", &[0; 12]), p).unwrap_err();
        assert!(
            matches!(
                err,
                NpyError::Truncated {
                    expected: 16,
                    got: 12,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("feat.npy"));

        let err = write_f32(p, &[2, 2], &[0.0; 3]).unwrap_err();
        assert!(matches!(err, NpyError::ShapeMismatch { .. }), "{err}");
    }

    #[test]
    fn fortran_ordered_arrays_are_returned_in_c_order() {
        // np.save(f, np.arange(6, dtype=np.float32).reshape(2, 3).T) stores 0..6 as written,
        // with shape (3, 2) and fortran_order True; in C order that is [0, 3, 1, 4, 2, 5].
        let data: Vec<u8> = (0..6).flat_map(|v| (v as f32).to_le_bytes()).collect();
        let (s, d) = parse_f32(&npy_bytes("<f4", true, "(3, 2)", &data), Path::new("t")).unwrap();
        assert_eq!(s, vec![3, 2]);
        assert_eq!(d, vec![0.0, 3.0, 1.0, 4.0, 2.0, 5.0]);
        let data: Vec<u8> = (0..24).flat_map(|v| (v as f32).to_le_bytes()).collect();
        let (_, d) =
            parse_f32(&npy_bytes("<f4", true, "(2, 3, 4)", &data), Path::new("t")).unwrap();
        // C element [i, j, k] (at 12i + 4j + k) is Fortran element i + 2j + 6k.
        let (i, j, k) = (1, 2, 3);
        assert_eq!(d[12 * i + 4 * j + k], (i + 2 * j + 6 * k) as f32);
    }

    /// fuzz/npy: a Fortran-order zero axis, and the C strides of the others overflowed.
    #[test]
    fn fortran_zero_axis_is_empty_without_stride_overflow() {
        let shape = "(0, 4294967296, 4294967296, 7)";
        let (s, d) = parse_f32(&npy_bytes(">f4", true, shape, &[]), Path::new("t")).unwrap();
        assert!(s == vec![0, 1 << 32, 1 << 32, 7] && d.is_empty());
    }

    #[test]
    fn header_parser_accepts_spacing_and_key_order_variants() {
        let h = parse_header("{\"shape\": (5,), \"fortran_order\": False, \"descr\": \"<f4\"}")
            .unwrap();
        assert_eq!(h.shape, vec![5]);
        assert_eq!(
            parse_header("{'descr': '<f4', 'fortran_order': False}"),
            Err(NpyHeaderError::MissingKey("shape"))
        );
    }
}
