//! Outside text made safe to print: control characters escaped, so that a hook's output, a
//! label or a path cannot forge or hide log lines or move a terminal's cursor.
//!
//! Must not: know where the text came from or where it goes.

use std::borrow::Cow;
use std::fmt::Write;

/// `s` with every control character (C0, DEL, C1) written as an escape: `\n`, `\r`, `\t`,
/// `\x1b`, `\u{85}`. Borrowed when there is none.
pub fn escape_control(s: &str) -> Cow<'_, str> {
    if !s.chars().any(char::is_control) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x80 && c.is_control() => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// The bytes of one formatted log line with every control byte escaped as `\xNN` (`\n`, `\r`,
/// `\t` by name), except the line's final newline and, when `keep_esc`, ESC (the formatter's
/// own colours on a terminal; tracing already escapes ESC inside values).
pub fn escape_log_line(line: &[u8], keep_esc: bool) -> Cow<'_, [u8]> {
    let body = line.strip_suffix(b"\n").unwrap_or(line);
    let bad = |b: u8| (b < 0x20 || b == 0x7f) && !(keep_esc && b == 0x1b);
    if !body.iter().any(|&b| bad(b)) {
        return Cow::Borrowed(line);
    }
    let mut out = Vec::with_capacity(line.len() + 16);
    for &b in body {
        match b {
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b if bad(b) => out.extend_from_slice(format!("\\x{b:02x}").as_bytes()),
            b => out.push(b),
        }
    }
    if body.len() < line.len() {
        out.push(b'\n');
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_and_plain_text_is_borrowed() {
        assert!(matches!(escape_control("Knock"), Cow::Borrowed("Knock")));
        assert_eq!(
            escape_control("a\nb\rc\x1b[2Jd\u{85}é"),
            "a\\nb\\rc\\x1b[2Jd\\u{85}é"
        );
    }

    #[test]
    fn a_log_line_keeps_its_final_newline_and_nothing_else() {
        assert_eq!(
            &*escape_log_line(b"INFO x=a\nFAKE\r\x1b[1m\n", false),
            b"INFO x=a\\nFAKE\\r\\x1b[1m\n"
        );
        assert_eq!(
            &*escape_log_line(b"\x1b[32mINFO\x1b[0m a\r\n", true),
            b"\x1b[32mINFO\x1b[0m a\\r\n"
        );
    }
}
