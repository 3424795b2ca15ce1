//! The dashboard's files, embedded in the binary: plain HTML, CSS and JavaScript, nothing
//! fetched from elsewhere (the CSP forbids it).

pub(super) const HTML: &str = include_str!("page/index.html");
pub(super) const JS: &str = include_str!("page/app.js");
pub(super) const CSS: &str = include_str!("page/style.css");
