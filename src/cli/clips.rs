//! `hark clips`: list the clips `[clips]` wrote (time, label, duration, peak, path), or
//! `hark clips prune` to apply the retention now.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use chrono::{DateTime, NaiveDate, Utc};
use clap::{Args, Subcommand};

use crate::sinks::clips::store::{self, Limits};

#[derive(Debug, Args)]
pub struct ClipsArgs {
    #[command(subcommand)]
    pub command: Option<ClipsCommand>,
    /// Config file (default: /etc/hark/hark.toml if it exists); its `clips.dir` is listed.
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    /// Only clips of this label or group (as the model spells it, or as in file names).
    #[arg(long)]
    pub label: Option<String>,
    /// Only clips since this time: RFC 3339 (2026-11-27T03:00:00Z), a date (2026-11-27, UTC)
    /// or an age (30m, 12h, 7d).
    #[arg(long)]
    pub since: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum ClipsCommand {
    /// Remove the clips `max_age` and `max_disk` do not allow, oldest first.
    Prune,
}

pub fn run_clips(args: ClipsArgs) -> anyhow::Result<ExitCode> {
    let loaded = crate::config::load(&crate::config::Sources {
        file: args.config.clone(),
        env: true,
        flags: Vec::new(),
        strict: false,
    })?;
    let settings = loaded.settings.clips;
    let dir = &settings.dir;
    if let Some(ClipsCommand::Prune) = args.command {
        let total = store::space(dir).map(|(t, _)| t).unwrap_or(0);
        let limits = Limits {
            max_disk: settings.max_disk().bytes_of(total),
            max_age: settings.max_age,
        };
        let removed = store::apply_retention(dir, limits, Utc::now())
            .with_context(|| format!("pruning clips in {}", dir.display()))?;
        println!("removed {removed} clips from {}", dir.display());
        return Ok(ExitCode::SUCCESS);
    }
    let since = args.since.as_deref().map(parse_since).transpose()?;
    let label = args.label.as_deref().map(store::slug);
    let clips = store::scan(dir).with_context(|| format!("listing clips in {}", dir.display()))?;
    println!("time\tlabel\tduration\tpeak\tpath");
    for c in clips {
        if since.is_some_and(|t| c.time < t) || label.as_ref().is_some_and(|l| *l != c.label) {
            continue;
        }
        let text = c
            .image
            .as_deref()
            .and_then(|p| store::picture_text(p).ok())
            .unwrap_or_default();
        let path = c
            .audio
            .as_ref()
            .or(c.image.as_ref())
            .expect("a clip has a file");
        println!(
            "{}\t{}\t{}\t{}\t{}",
            c.time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            text.name.unwrap_or(c.label),
            text.duration.map_or("-".into(), |d| format!("{d:.2}")),
            text.peak.map_or("-".into(), |p| format!("{p:.2}")),
            path.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `--since`: RFC 3339, a date, or an age before now.
fn parse_since(s: &str) -> anyhow::Result<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(d.and_hms_opt(0, 0, 0).expect("midnight").and_utc());
    }
    let unit = |c: char| match c {
        's' => Some(1.0),
        'm' => Some(60.0),
        'h' => Some(3600.0),
        'd' => Some(86_400.0),
        _ => None,
    };
    let age = s
        .char_indices()
        .last()
        .and_then(|(i, c)| Some(s[..i].parse::<f64>().ok()? * unit(c)?))
        .filter(|a| a.is_finite() && *a >= 0.0 && *a < 1e10);
    match age {
        Some(a) => Ok(Utc::now() - chrono::Duration::milliseconds((a * 1000.0) as i64)),
        None => anyhow::bail!(
            "--since {s:?}: expected RFC 3339 (2026-11-27T03:00:00Z), a date (2026-11-27) or an \
             age (30m, 12h, 7d)"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_times_dates_and_ages() {
        let t = parse_since("2026-11-27T03:00:00Z").unwrap();
        assert_eq!(t.to_rfc3339(), "2026-11-27T03:00:00+00:00");
        assert_eq!(
            parse_since("2026-11-27").unwrap().to_rfc3339(),
            "2026-11-27T00:00:00+00:00"
        );
        let age = Utc::now() - parse_since("2h").unwrap();
        assert!((age.num_seconds() - 7200).abs() <= 2);
        assert!(parse_since("yesterday").is_err());
    }
}
