//! hark's front doors, each as one call from outside text or bytes to the checked value: the
//! entry points of the fuzz targets (`fuzz/`) and of the test that replays their crashing
//! inputs (`tests/it/fuzz_regressions.rs`), so both reach exactly the code users reach.
//!
//! Must not: hold logic of its own beyond feeding each door the way its command does.

use std::path::Path;

/// An audio file as `hark classify` and `hark run` read it: [`crate::audio::AudioReader`],
/// block by block to mono. Returns the frames read.
pub fn audio_file(path: &Path) -> anyhow::Result<usize> {
    let mut reader = crate::audio::AudioReader::open(path)?;
    let mut block = Vec::with_capacity(4096);
    let mut frames = 0;
    loop {
        block.clear();
        let n = reader.read_mono(&mut block, 4096)?;
        if n == 0 {
            return Ok(frames);
        }
        frames += n;
    }
}

/// `.npy` bytes as `hark features` reads them. Returns the number of values.
pub fn npy_bytes(bytes: &[u8]) -> anyhow::Result<usize> {
    let (_, values) = crate::npy::parse_f32(bytes, Path::new("input.npy"))?;
    Ok(values.len())
}

/// A feature spec (TOML, or JSON when `json`) as `hark features` reads one; if it is valid,
/// the front end it makes, run on a short buffer. Returns the number of frames.
pub fn spec_text(text: &str, json: bool) -> anyhow::Result<usize> {
    let spec: crate::frontend::FeatureSpec = if json {
        serde_json::from_str(text)?
    } else {
        toml::from_str(text)?
    };
    spec.validate()?;
    let frontend = crate::frontend::MelFrontend::new(spec)?;
    Ok(frontend.compute(&[0.25; 4000]).ncols())
}

/// A model manifest's text, parsed and checked as `hark run` does before loading the model.
pub fn manifest_text(text: &str) -> anyhow::Result<()> {
    let manifest = crate::model::Manifest::parse(text).map_err(anyhow::Error::msg)?;
    manifest.validate()?;
    Ok(())
}

/// A config file as `hark check-config FILE` loads it (no environment, no flags).
pub fn config_file(path: &Path) -> anyhow::Result<()> {
    crate::config::load(&crate::config::Sources {
        file: Some(path.to_owned()),
        env: false,
        flags: Vec::new(),
        strict: false,
    })?;
    Ok(())
}

/// A subscriber's request line, as the socket parses it against `labels`; whether it is
/// accepted.
pub fn request_line(line: &[u8], labels: &[String]) -> bool {
    crate::sinks::socket::request_accepted(line, labels)
}

/// An MQTT command payload (`<topic_prefix>/<node>/set`) as the MQTT sink parses it and,
/// when it is a change, as the daemon applies it: on the default settings, checked against
/// `labels`; then the `set/result` answer. Whether the change was accepted.
pub fn mqtt_command(payload: &[u8], labels: &[String]) -> bool {
    let (id, change) = crate::sinks::mqtt::parse_command(payload);
    let result = change.and_then(|c| {
        crate::daemon::overrides::Overrides::default()
            .with(&c)
            .apply(&crate::config::Settings::default(), labels)
            .map(|_| ())
    });
    let _ = crate::sinks::mqtt::result_payload(id.as_ref(), &result);
    result.is_ok()
}

/// A request target of the web sink (`/api/events?since=...&limit=...`, `/clips/<name>`,
/// any path), answered by its router, guards and handlers as a `GET` without a socket, by a
/// server that wants `token` when given one and whose clips folder does not exist. The
/// status code; None when the target is not a URI.
pub fn http_target(target: &[u8], token: Option<&str>, labels: &[String]) -> Option<u16> {
    let no_clips = std::env::temp_dir().join("hark-front-door-no-clips");
    crate::sinks::http::answer_offline(target, token, Some(&no_clips), labels)
}
