//! Logging setup (tracing to stderr) and error formatting for the binary.

/// Send tracing output to stderr, filtered by `filter` (or RUST_LOG when set).
pub fn init(filter: &str) {
    let env = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(filter))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Under systemd the journal adds its own timestamps.
    let under_systemd = std::env::var_os("INVOCATION_ID").is_some();
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(env)
        .with_writer(move || EscapingStderr { keep_esc: ansi })
        .with_ansi(ansi)
        .with_target(false);
    if under_systemd {
        builder.without_time().init();
    } else {
        builder.init();
    }
}

/// Stderr, through which every log line is written with its control characters escaped
/// ([`crate::text::escape_log_line`]): outside text in a field or message (a hook's output, a
/// label, a path) cannot start a new line, return the cursor or send terminal commands. The
/// formatter writes a whole line per `write`.
struct EscapingStderr {
    /// On a terminal the formatter colours its output with ESC sequences of its own.
    keep_esc: bool,
}

impl std::io::Write for EscapingStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        std::io::stderr().write_all(&crate::text::escape_log_line(buf, self.keep_esc))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// An error and its causes on one line: "outer: inner: root".
pub fn error_chain(e: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in e.chain() {
        let s = cause.to_string();
        // thiserror messages often embed their source already; skip exact repeats.
        if !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
    }
    parts.join(": ")
}
