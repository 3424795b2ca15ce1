//! `/clips/<name>`: a clip or picture the clips sink wrote, by its exact file name. Only
//! names of `[A-Za-z0-9._-]` that do not start with `.` and end in `.flac`, `.wav` or
//! `.png`, and only regular files (not links) directly in the clips folder; 404 otherwise.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::extract::{Path as UrlPath, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

use super::server::App;

/// The content type of a name hark may serve, or None.
fn content_type(name: &str) -> Option<&'static str> {
    let plain = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if !plain || name.starts_with('.') {
        return None;
    }
    [
        (".flac", "audio/flac"),
        (".wav", "audio/wav"),
        (".png", "image/png"),
    ]
    .into_iter()
    .find(|(ext, _)| name.len() > ext.len() && name.ends_with(ext))
    .map(|(_, t)| t)
}

/// The file `name` in `dir`, if it is one hark may serve.
fn servable(dir: &Path, name: &str) -> Option<(PathBuf, &'static str)> {
    let kind = content_type(name)?;
    let path = dir.join(name);
    let meta = std::fs::symlink_metadata(&path).ok()?;
    meta.file_type().is_file().then_some((path, kind))
}

pub(super) async fn clip(State(app): State<Arc<App>>, UrlPath(name): UrlPath<String>) -> Response {
    let not_found = || (StatusCode::NOT_FOUND, "no such clip\n").into_response();
    let Some(dir) = app.clips_dir.as_deref() else {
        return (StatusCode::NOT_FOUND, "clips are off\n").into_response();
    };
    let Some((path, kind)) = servable(dir, &name) else {
        return not_found();
    };
    match tokio::task::spawn_blocking(move || std::fs::read(path)).await {
        Ok(Ok(bytes)) => ([(header::CONTENT_TYPE, kind)], bytes).into_response(),
        _ => not_found(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_names_of_known_kinds() {
        for ok in ["e12-Knock.flac", "a.wav", "x_1.png"] {
            assert!(content_type(ok).is_some(), "{ok}");
        }
        for bad in [
            "../x.wav",
            "..",
            ".hidden.wav",
            "a/b.wav",
            "a\\b.wav",
            "x.txt",
            ".wav",
            "x.wav\0",
            "%2e%2e.wav",
            "é.wav",
            "",
        ] {
            assert!(content_type(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn links_and_folders_are_not_served() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("real.wav"), b"RIFF").unwrap();
        std::fs::write(outside.path().join("secret.wav"), b"x").unwrap();
        std::os::unix::fs::symlink(
            outside.path().join("secret.wav"),
            dir.path().join("link.wav"),
        )
        .unwrap();
        std::fs::create_dir(dir.path().join("d.wav")).unwrap();
        assert!(servable(dir.path(), "real.wav").is_some());
        assert!(servable(dir.path(), "link.wav").is_none());
        assert!(servable(dir.path(), "d.wav").is_none());
        assert!(servable(dir.path(), "missing.wav").is_none());
    }
}
