//! `/metrics`: Prometheus' text format (prometheus-client), read at each scrape from the
//! board (the last `status` record and its `sinks` counters, events started), the consumer's
//! taps (inference times) and `/proc/self` (CPU, memory). Names have the `hark_` prefix,
//! counters end in `_total`, units are seconds and bytes.

use std::fmt;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

use super::server::{App, Shared};
use crate::record::{Record, SinksHealth};

/// What prometheus-client's text encoder writes (OpenMetrics 1.0), for clients that ask for
/// it (Prometheus does).
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// The classic text format, for everyone else (`curl`, `promtool check metrics`).
const CLASSIC: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Sink counters with a name of their own: (sink, counter, metric, is a counter, help).
const KNOWN: &[(&str, &str, &str, bool, &str)] = &[
    (
        "socket",
        "subscribers",
        "socket_subscribers",
        false,
        "Subscribers connected to the Unix socket.",
    ),
    (
        "socket",
        "dropped",
        "socket_dropped_records",
        true,
        "Records socket subscribers lost to full queues.",
    ),
    ("hooks", "runs", "hook_runs", true, "Hook programs started."),
    (
        "hooks",
        "failed",
        "hook_failures",
        true,
        "Hook programs that failed or timed out.",
    ),
    (
        "hooks",
        "skipped",
        "hook_skipped_runs",
        true,
        "Hook runs skipped (cooldown, concurrency).",
    ),
    (
        "mqtt",
        "connected",
        "mqtt_connected",
        false,
        "1 while connected to the MQTT broker.",
    ),
    (
        "mqtt",
        "queued",
        "mqtt_queued_records",
        false,
        "Records waiting for the MQTT broker.",
    ),
    (
        "mqtt",
        "dropped",
        "mqtt_dropped_records",
        true,
        "Records the MQTT queue had no room for.",
    ),
    (
        "mqtt",
        "published",
        "mqtt_published_records",
        true,
        "Records published to the MQTT broker.",
    ),
    ("clips", "written", "clips_written", true, "Clips written."),
    (
        "clips",
        "dropped",
        "clips_dropped",
        true,
        "Clips not written because the writer was behind.",
    ),
    (
        "clips",
        "failed",
        "clips_failed",
        true,
        "Clips that could not be written.",
    ),
    (
        "clips",
        "removed",
        "clips_removed",
        true,
        "Old clips removed.",
    ),
    (
        "http",
        "clients",
        "http_clients",
        false,
        "HTTP requests and streams being served.",
    ),
    (
        "http",
        "dropped",
        "http_dropped_records",
        true,
        "Records HTTP stream clients lost to full queues.",
    ),
    (
        "http",
        "refused",
        "http_refused_requests",
        true,
        "HTTP requests refused by http.max_clients.",
    ),
    (
        "http",
        "reload_failed",
        "http_reload_failures",
        true,
        "Reloads whose new [http] server could not start (the running one was kept).",
    ),
    (
        "stdout",
        "written",
        "stdout_written_records",
        true,
        "Records written to stdout.",
    ),
];

pub(super) async fn metrics(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let mut registry = Registry::with_prefix("hark");
    registry.register_collector(Box::new(Scrape(app.shared.clone())));
    let mut text = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut text, &registry) {
        tracing::error!(error = %e, "encoding metrics");
    }
    let openmetrics = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/openmetrics-text"));
    if openmetrics {
        ([(header::CONTENT_TYPE, OPENMETRICS)], text).into_response()
    } else {
        ([(header::CONTENT_TYPE, CLASSIC)], classic(&text)).into_response()
    }
}

/// OpenMetrics text as the classic Prometheus format: a counter's HELP and TYPE name its
/// samples (`x_total`), and there are no UNIT or EOF lines.
fn classic(openmetrics: &str) -> String {
    let mut counters = std::collections::HashSet::new();
    for line in openmetrics.lines() {
        if let Some(name) = line
            .strip_prefix("# TYPE ")
            .and_then(|l| l.strip_suffix(" counter"))
        {
            counters.insert(name.to_owned());
        }
    }
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line.starts_with("# UNIT ") || line == "# EOF" {
            continue;
        }
        let meta = ["# HELP ", "# TYPE "]
            .into_iter()
            .find_map(|p| Some((p, line.strip_prefix(p)?)));
        match meta {
            Some((prefix, rest)) => {
                let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                let total = if counters.contains(name) {
                    "_total"
                } else {
                    ""
                };
                out.push_str(&format!("{prefix}{name}{total} {tail}\n"));
            }
            None => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out
}

/// One scrape's view of the sink's shared state.
struct Scrape(Arc<Shared>);

impl fmt::Debug for Scrape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Scrape")
    }
}

fn counter(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    v: u64,
) -> fmt::Result {
    let mut m = e.encode_descriptor(name, help, unit, MetricType::Counter)?;
    m.encode_counter::<NoLabelSet, _, u64>(&v, None)
}

fn gauge(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    v: f64,
) -> fmt::Result {
    let mut m = e.encode_descriptor(name, help, unit, MetricType::Gauge)?;
    m.encode_gauge(&v)
}

impl Collector for Scrape {
    fn encode(&self, mut e: DescriptorEncoder) -> fmt::Result {
        let shared = &self.0;
        let (status, level, started) = {
            let b = shared.board.read();
            let level = match (b.prediction.as_deref(), b.status.as_deref()) {
                (Some(Record::Prediction { level_db, .. }), _)
                | (_, Some(Record::Status { level_db, .. })) => Some(*level_db as f64),
                _ => None,
            };
            (b.status.clone(), level, b.started_per_name.clone())
        };
        if let Some(status) = status.as_deref() {
            encode_status(&mut e, status)?;
        }
        if let Some(level) = level {
            gauge(
                &mut e,
                "level_dbfs",
                "Level of the last window, dBFS.",
                None,
                level,
            )?;
        }
        let mut m = e.encode_descriptor(
            "events_started",
            "Sound events started, per label or group.",
            None,
            MetricType::Counter,
        )?;
        for (name, n) in &started {
            m.encode_family(&[("label", name.as_str())])?
                .encode_counter::<NoLabelSet, _, u64>(n, None)?;
        }
        let (sum, count, buckets) = shared.taps.inference.snapshot();
        let mut m = e.encode_descriptor(
            "inference",
            "Front end and model time per scored window.",
            Some(&Unit::Seconds),
            MetricType::Histogram,
        )?;
        m.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)?;
        gauge(
            &mut e,
            "spectrogram_viewers",
            "Pages drawing the live spectrogram.",
            None,
            shared.taps.spectrum.viewers() as f64,
        )?;
        gauge(
            &mut e,
            "uptime",
            "Time since the web sink started.",
            Some(&Unit::Seconds),
            shared.board.started.elapsed().as_secs_f64(),
        )?;
        encode_process(&mut e)
    }
}

/// The pipeline's counters from a `status` record, and every sink's.
fn encode_status(e: &mut DescriptorEncoder, status: &Record) -> fmt::Result {
    let Record::Status {
        overruns,
        windows,
        skipped_windows,
        sinks,
        ..
    } = status
    else {
        return Ok(());
    };
    counter(
        e,
        "windows",
        "Windows scored (gated ones included).",
        None,
        *windows,
    )?;
    counter(
        e,
        "skipped_windows",
        "Windows skipped to catch up with real time.",
        None,
        *skipped_windows,
    )?;
    counter(
        e,
        "ring_overrun_samples",
        "Samples the capture ring could not take.",
        None,
        *overruns,
    )?;
    if let Some(sinks) = sinks {
        encode_sinks(e, sinks)?;
    }
    Ok(())
}

/// Every sink counter: known ones by their own name, `lagged` per sink, the rest as
/// `hark_sink_counter{sink,counter}`.
fn encode_sinks(e: &mut DescriptorEncoder, sinks: &SinksHealth) -> fmt::Result {
    for (sink, counter_name, metric, is_counter, help) in KNOWN {
        if let Some(v) = sinks.get(*sink).and_then(|c| c.get(*counter_name)) {
            if *is_counter {
                counter(e, metric, help, None, *v)?;
            } else {
                gauge(e, metric, help, None, *v as f64)?;
            }
        }
    }
    let mut m = e.encode_descriptor(
        "sink_lagged_records",
        "Records a sink lost by falling behind the fan-out.",
        None,
        MetricType::Counter,
    )?;
    for (sink, counters) in sinks {
        if let Some(v) = counters.get("lagged") {
            m.encode_family(&[("sink", sink.as_str())])?
                .encode_counter::<NoLabelSet, _, u64>(v, None)?;
        }
    }
    let mut m = e.encode_descriptor(
        "sink_counter",
        "Sink counters hark has no name for.",
        None,
        MetricType::Gauge,
    )?;
    for (sink, counters) in sinks {
        for (name, v) in counters {
            let known = name == "lagged" || KNOWN.iter().any(|k| k.0 == sink && k.1 == name);
            if !known {
                m.encode_family(&[("sink", sink.as_str()), ("counter", name.as_str())])?
                    .encode_gauge(&(*v as f64))?;
            }
        }
    }
    Ok(())
}

/// CPU time and resident memory of this process, from `/proc/self`.
fn encode_process(e: &mut DescriptorEncoder) -> fmt::Result {
    if let Some(cpu) = cpu_seconds() {
        let mut m = e.encode_descriptor(
            "process_cpu",
            "CPU time hark used, user and system.",
            Some(&Unit::Seconds),
            MetricType::Counter,
        )?;
        m.encode_counter::<NoLabelSet, _, f64>(&cpu, None)?;
    }
    if let Some(rss) = resident_bytes() {
        gauge(
            e,
            "process_resident_memory",
            "Resident memory of hark.",
            Some(&Unit::Bytes),
            rss as f64,
        )?;
    }
    Ok(())
}

fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may hold spaces): state is field 3, utime 14,
    // stime 15.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf only reads a configuration value.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    (per_second > 0).then(|| ticks as f64 / per_second as f64)
}

fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf only reads a configuration value.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    (page > 0).then(|| pages * page as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_classic_format_names_counters_by_their_samples() {
        let om =
            "# HELP hark_windows Windows.\n# TYPE hark_windows counter\nhark_windows_total 8\n\
            # HELP hark_up Up.\n# TYPE hark_up gauge\n# UNIT hark_up seconds\nhark_up 1.0\n# EOF\n";
        assert_eq!(
            classic(om),
            "# HELP hark_windows_total Windows.\n# TYPE hark_windows_total counter\nhark_windows_total 8\n\
             # HELP hark_up Up.\n# TYPE hark_up gauge\nhark_up 1.0\n"
        );
    }

    #[test]
    fn process_figures_are_read() {
        assert!(cpu_seconds().is_some_and(|s| s >= 0.0));
        assert!(resident_bytes().is_some_and(|b| b > 1_000_000));
    }
}
