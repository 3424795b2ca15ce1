//! MQTT command payloads, as `<topic_prefix>/<node>/set` delivers them: parsed, applied to the
//! settings and answered as the MQTT sink and the daemon do.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    thread_local! {
        static LABELS: Vec<String> = vec!["Knock".into(), "Speech".into(), "Sine wave".into()];
    }
    LABELS.with(|labels| {
        let _ = hark::front_door::mqtt_command(data, labels);
    });
});
