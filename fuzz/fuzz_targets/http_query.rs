//! Request targets of the web sink (path and query string), answered by its router, guards and
//! handlers without a socket: once by a server without a token, once by one that wants
//! `fuzz-token`.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    thread_local! {
        static LABELS: Vec<String> = vec!["Knock".into(), "Speech".into(), "Sine wave".into()];
    }
    LABELS.with(|labels| {
        let _ = hark::front_door::http_target(data, None, labels);
        let _ = hark::front_door::http_target(data, Some("fuzz-token"), labels);
    });
});
