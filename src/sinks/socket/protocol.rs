//! The socket's protocol: `hello`, the control lines (`subscribed`, `error`, `dropped`),
//! subscribers' requests and filters, and bounded request lines.

use std::io;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};

use super::*;

/// The protocol version announced in `hello`. Bump it when a change could break a client.
pub const PROTOCOL_VERSION: u32 = 1;

/// The longest request line a client may send, in bytes (without the newline). Longer lines
/// are discarded and answered with an `error`.
pub const MAX_REQUEST_LINE: usize = 64 * 1024;

/// The record types a client can subscribe to, in the order acks list them.
pub(super) const KINDS: [&str; 4] = ["event_start", "event_end", "status", "prediction"];

/// The first message on every connection: what is talking and what it can say.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename = "hello")]
pub struct Hello {
    /// [`PROTOCOL_VERSION`].
    pub protocol: u32,
    pub hark_version: String,
    /// The model's name, as configured.
    pub model: String,
    /// Every label the model can report; request `labels` must be among them or `groups`.
    pub labels: Vec<String>,
    /// `[groups]`: each name's events stand for its labels; a request may name a group.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub groups: std::collections::BTreeMap<String, Vec<String>>,
    /// The model's input rate, Hz.
    pub sample_rate: u32,
    /// Seconds of audio per window.
    pub window: f64,
    /// Seconds between window starts.
    pub hop: f64,
}

impl Hello {
    /// What a request's `labels` may name: the labels and the groups.
    pub(crate) fn names(&self) -> Arc<[String]> {
        let mut names = self.labels.clone();
        names.extend(self.groups.keys().cloned());
        names.into()
    }

    pub(super) fn line(&self) -> Arc<str> {
        let mut s = serde_json::to_string(self).expect("hello always serializes");
        s.push('\n');
        s.into()
    }
}

/// The control messages of the protocol (records come from `Record::to_json`).
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(super) enum ControlLine<'a> {
    Subscribed {
        subscribe: Vec<&'static str>,
        labels: &'a [String],
    },
    Error {
        message: &'a str,
    },
    Dropped {
        count: u64,
    },
}

impl ControlLine<'_> {
    pub(super) fn line(&self) -> String {
        let mut s = serde_json::to_string(self).expect("control messages always serialize");
        s.push('\n');
        s
    }
}

/// What one subscriber wants: a set of record types, and for event records a set of labels
/// (empty = all).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Filter {
    /// Bit i set = `KINDS[i]` wanted.
    pub(super) kinds: u8,
    pub(super) labels: Vec<String>,
}

impl Default for Filter {
    /// Events and status, no predictions.
    fn default() -> Self {
        Filter {
            kinds: 0b0111,
            labels: Vec::new(),
        }
    }
}

pub(crate) fn kind_bit(kind: &str) -> Option<u8> {
    KINDS.iter().position(|k| *k == kind).map(|i| 1 << i)
}

impl Filter {
    /// Whether a record of kind `bit` with `label` (of `group`, if any) is wanted: a label
    /// filter matches the label or its group.
    pub(crate) fn wants(&self, bit: u8, label: Option<&str>, group: Option<&str>) -> bool {
        self.kinds & bit != 0
            && match label {
                Some(label) if !self.labels.is_empty() => self
                    .labels
                    .iter()
                    .any(|l| l == label || Some(l.as_str()) == group),
                _ => true,
            }
    }

    pub(super) fn kind_names(&self) -> Vec<&'static str> {
        KINDS
            .iter()
            .enumerate()
            .filter(|(i, _)| self.kinds & (1 << i) != 0)
            .map(|(_, k)| *k)
            .collect()
    }
}

/// A client's request line, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Request {
    pub(super) subscribe: Option<Vec<String>>,
    pub(super) labels: Option<Vec<String>>,
}

/// Parses one request line into the subscriber's new filter. `Ok(None)` for a blank line.
/// Keys left out keep their current value. `known` are the model's labels (empty = accept
/// any label).
pub(crate) fn parse_request(
    line: &[u8],
    current: &Filter,
    known: &[String],
) -> Result<Option<Filter>, String> {
    let text = std::str::from_utf8(line).map_err(|_| "request is not UTF-8 text".to_string())?;
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("request is not JSON: {e}"))?;
    if !value.is_object() {
        return Err(
            r#"request must be a JSON object such as {"subscribe":["event_start"],"labels":["Knock"]}"#
                .into(),
        );
    }
    let request: Request =
        serde_json::from_value(value).map_err(|e| format!("bad request: {e}"))?;
    let mut filter = current.clone();
    if let Some(kinds) = request.subscribe {
        filter.kinds = 0;
        for kind in &kinds {
            filter.kinds |= kind_bit(kind).ok_or_else(|| {
                format!(
                    "unknown record type {kind:?} in \"subscribe\"; expected some of {}",
                    KINDS.join(", ")
                )
            })?;
        }
    }
    if let Some(labels) = request.labels {
        if !known.is_empty() {
            for label in &labels {
                if !known.contains(label) {
                    let hint = known
                        .iter()
                        .find(|k| k.eq_ignore_ascii_case(label))
                        .map(|k| format!(" (did you mean {k:?}?)"))
                        .unwrap_or_default();
                    return Err(format!(
                        "unknown label {label:?} in \"labels\"{hint}; labels are case-sensitive and listed in hello"
                    ));
                }
            }
        }
        filter.labels = labels;
        filter.labels.dedup();
    }
    Ok(Some(filter))
}

/// One line read by [`LineReader`].
#[derive(Debug, PartialEq)]
pub(super) enum Line {
    Complete(Vec<u8>),
    /// The line passed the limit; the rest of it is being discarded.
    TooLong,
}

/// Reads lines of at most `max` bytes. Cancel-safe: all progress is kept in the struct and
/// the only await point consumes nothing.
pub(super) struct LineReader<R> {
    pub(super) inner: BufReader<R>,
    pub(super) line: Vec<u8>,
    pub(super) max: usize,
    pub(super) discarding: bool,
}

impl<R: AsyncRead + Unpin> LineReader<R> {
    pub(super) fn new(inner: R, max: usize) -> Self {
        LineReader {
            inner: BufReader::new(inner),
            line: Vec::new(),
            max,
            discarding: false,
        }
    }

    /// The next line without its newline; an unterminated last line counts. `None` at end
    /// of input. An over-long line is reported as soon as it passes the limit.
    pub(super) async fn next_line(&mut self) -> io::Result<Option<Line>> {
        loop {
            let buf = self.inner.fill_buf().await?;
            if buf.is_empty() {
                self.discarding = false;
                if self.line.is_empty() {
                    return Ok(None);
                }
                return Ok(Some(Line::Complete(std::mem::take(&mut self.line))));
            }
            let newline = buf.iter().position(|&b| b == b'\n');
            let end = newline.unwrap_or(buf.len());
            let used = end + usize::from(newline.is_some());
            if self.discarding {
                self.discarding = newline.is_none();
                self.inner.consume(used);
                continue;
            }
            if self.line.len() + end > self.max {
                self.line = Vec::new();
                self.discarding = newline.is_none();
                self.inner.consume(used);
                return Ok(Some(Line::TooLong));
            }
            self.line.extend_from_slice(&buf[..end]);
            self.inner.consume(used);
            if newline.is_some() {
                return Ok(Some(Line::Complete(std::mem::take(&mut self.line))));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Record;

    fn labels() -> Vec<String> {
        vec!["Knock".into(), "Doorbell".into(), "Speech".into()]
    }

    #[test]
    fn default_filter_is_events_and_status() {
        let f = Filter::default();
        assert_eq!(f.kind_names(), ["event_start", "event_end", "status"]);
        assert!(!f.wants(kind_bit("prediction").unwrap(), None, None));
    }

    #[test]
    fn request_sets_types_and_labels() {
        let f = parse_request(
            br#"{"subscribe":["prediction","event_start"],"labels":["Knock"]}"#,
            &Filter::default(),
            &labels(),
        )
        .unwrap()
        .unwrap();
        assert_eq!(f.kind_names(), ["event_start", "prediction"]);
        assert!(f.wants(kind_bit("event_start").unwrap(), Some("Knock"), None));
        assert!(!f.wants(kind_bit("event_start").unwrap(), Some("Speech"), None));
        assert!(f.wants(kind_bit("prediction").unwrap(), None, None));
        assert!(!f.wants(kind_bit("status").unwrap(), None, None));
    }

    #[test]
    fn request_keys_left_out_keep_their_value() {
        let current = Filter {
            kinds: kind_bit("status").unwrap(),
            labels: vec!["Knock".into()],
        };
        let f = parse_request(br#"{"labels":[]}"#, &current, &labels())
            .unwrap()
            .unwrap();
        assert_eq!(f.kinds, current.kinds);
        assert!(f.labels.is_empty());
        let f = parse_request(b"{}", &current, &labels()).unwrap().unwrap();
        assert_eq!(f, current);
    }

    #[test]
    fn blank_request_is_ignored() {
        assert_eq!(parse_request(b"  \r", &Filter::default(), &[]), Ok(None));
    }

    #[test]
    fn bad_requests_say_what_is_wrong() {
        let cases: [(&[u8], &str); 8] = [
            (b"hello", "not JSON"),
            (b"[1,2]", "must be a JSON object"),
            (
                br#"{"subscribe":["event_start"],"x":1}"#,
                "unknown field `x`",
            ),
            (
                br#"{"subscribe":["events"]}"#,
                "unknown record type \"events\"",
            ),
            (br#"{"subscribe":"event_start"}"#, "invalid type"),
            (br#"{"labels":[1]}"#, "invalid type"),
            (b"\xff\xfe{", "not UTF-8"),
            (br#"{"labels":["knock"]}"#, "did you mean \"Knock\""),
        ];
        for (line, want) in cases {
            let err = parse_request(line, &Filter::default(), &labels()).unwrap_err();
            assert!(err.contains(want), "{line:?}: {err}");
        }
    }

    #[test]
    fn any_label_is_accepted_when_the_model_lists_none() {
        assert!(parse_request(br#"{"labels":["anything"]}"#, &Filter::default(), &[]).is_ok());
    }

    #[test]
    fn hello_has_its_type() {
        let hello = Hello {
            protocol: PROTOCOL_VERSION,
            hark_version: "0.1.0".into(),
            model: "m".into(),
            labels: labels(),
            groups: Default::default(),
            sample_rate: 16000,
            window: 0.96,
            hop: 0.48,
        };
        let v: serde_json::Value = serde_json::from_str(&hello.line()).unwrap();
        assert_eq!(v["type"], "hello");
        assert_eq!(v["protocol"], 1);
        let back: Hello = serde_json::from_value(v).unwrap();
        assert_eq!(back, hello);
    }

    #[tokio::test]
    async fn line_reader_bounds_lines_and_recovers() {
        let mut input = Vec::new();
        input.extend_from_slice(b"one\n");
        input.extend(std::iter::repeat_n(b'a', 100));
        input.extend_from_slice(b"\ntwo\nthree");
        let mut r = LineReader::new(&input[..], 10);
        assert_eq!(
            r.next_line().await.unwrap(),
            Some(Line::Complete(b"one".to_vec()))
        );
        assert_eq!(r.next_line().await.unwrap(), Some(Line::TooLong));
        assert_eq!(
            r.next_line().await.unwrap(),
            Some(Line::Complete(b"two".to_vec()))
        );
        assert_eq!(
            r.next_line().await.unwrap(),
            Some(Line::Complete(b"three".to_vec()))
        );
        assert_eq!(r.next_line().await.unwrap(), None);
    }

    #[test]
    fn documented_examples_are_valid_json() {
        let doc = include_str!("../../../docs/protocol.md");
        let mut in_json = false;
        let mut checked = 0;
        for line in doc.lines() {
            match line.trim() {
                "```json" => in_json = true,
                "```" => in_json = false,
                l if in_json && !l.is_empty() => {
                    let v: serde_json::Value = serde_json::from_str(l)
                        .unwrap_or_else(|e| panic!("docs/protocol.md: {l}: {e}"));
                    assert!(v.is_object(), "{l}");
                    if v.get("type").is_some_and(|t| {
                        ["event_start", "event_end", "status", "prediction"]
                            .contains(&t.as_str().unwrap())
                    }) {
                        serde_json::from_value::<Record>(v)
                            .unwrap_or_else(|e| panic!("docs/protocol.md: {l}: {e}"));
                    }
                    checked += 1;
                }
                _ => {}
            }
        }
        assert!(checked >= 10, "only {checked} examples found");
    }
}
