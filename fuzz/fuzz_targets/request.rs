//! Socket request lines, as a subscriber sends them.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    thread_local! {
        static LABELS: Vec<String> = vec!["Knock".into(), "Speech".into(), "Sine wave".into()];
    }
    LABELS.with(|labels| {
        let _ = hark::front_door::request_line(data, labels);
        let _ = hark::front_door::request_line(data, &[]);
    });
});
