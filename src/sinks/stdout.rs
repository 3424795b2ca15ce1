//! The stdout sink: `hark run --print text|json`, on a thread of its own so that a slow or
//! blocked stdout (`hark run | slow-reader`) holds up nothing but itself.

use std::io::Write;
use std::thread::JoinHandle;

use crate::record::Record;

use super::SinkContext;

/// What `hark run` writes to stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Print {
    /// Short readable lines, events only.
    Text,
    /// Every record as one JSON line (the socket's records).
    Json,
    /// Nothing.
    None,
}

/// The counters this sink reports in `status`.
pub const COUNTERS: &[&str] = &["written"];

/// Start the sink; it ends when the fan-out closes, after writing every record.
pub fn start(ctx: SinkContext<Print>) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("hark-stdout".into())
        .spawn(move || write_all(ctx))
}

fn write_all(mut ctx: SinkContext<Print>) {
    let stdout = std::io::stdout();
    while let Some(rec) = ctx.records.next_blocking() {
        let print = *ctx.settings.borrow();
        if print_record(&mut stdout.lock(), print, &rec) {
            ctx.health().add("written", 1);
        }
    }
}

/// The line `print` shows for `r`, if any.
pub fn format_record(print: Print, r: &Record) -> Option<String> {
    match (print, r) {
        (Print::None, _) => None,
        (Print::Json, r) => Some(r.to_json()),
        (Print::Text, Record::EventStart { start, score, .. }) => Some(format!(
            "{start:9.2}s  start  {}  (score {score:.2})",
            text_name(r)
        )),
        (
            Print::Text,
            Record::EventEnd {
                start, end, peak, ..
            },
        ) => Some(format!(
            "{end:9.2}s  end    {}  ({:.1} s, peak {peak:.2})",
            text_name(r),
            end - start
        )),
        (Print::Text, _) => None,
    }
}

/// An event's name in text output: its label, or `group (label)` for a group's event, control
/// characters escaped (a label comes from the model's labels file: one line must stay one line).
fn text_name(r: &Record) -> String {
    let name = match (r.group(), r.label()) {
        (Some(g), Some(l)) => format!("{g} ({l})"),
        (None, Some(l)) => l.to_owned(),
        _ => String::new(),
    };
    crate::text::escape_control(&name).into_owned()
}

/// Write one record to `out` in the chosen form; true if a line was written.
pub fn print_record(out: &mut impl Write, print: Print, r: &Record) -> bool {
    let Some(line) = format_record(print, r) else {
        return false;
    };
    // A closed stdout (hark run | head) must not stop the daemon.
    let ok = writeln!(out, "{line}").is_ok();
    let _ = out.flush();
    ok
}
