// TEMPORARY probe (to be replaced)
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use hark::capture::{DeviceSource, Source};

#[test]
#[ignore]
fn probe_pulse() {
    let dev = std::env::var("PROBE_DEVICE").unwrap_or("pulse".into());
    let cmd = std::env::var("PROBE_CMD").unwrap();
    let cmd2 = std::env::var("PROBE_CMD2").unwrap_or_default();
    let src = Box::new(DeviceSource { device: Some(dev) });
    let c = src.start(4.0).expect("start");
    let mut cons = c.consumer;
    let t0 = Instant::now();
    let mut buf = vec![0f32; 48000];
    let mut ran = false;
    let mut ran2 = false;
    while t0.elapsed() < Duration::from_secs(8) {
        use ringbuf::traits::Consumer;
        let _ = cons.pop_slice(&mut buf);
        eprintln!("{:5.2} delivered={} errors={} last={:?} lost={}", t0.elapsed().as_secs_f64(),
            c.stats.delivered.load(Ordering::Relaxed), c.stats.errors.load(Ordering::Relaxed),
            c.stats.last_error_kind(), c.stats.device_lost.load(Ordering::Relaxed));
        if t0.elapsed() > Duration::from_secs(2) && !ran { ran = true; eprintln!("RUN {cmd}"); let s = std::process::Command::new("sh").arg("-c").arg(&cmd).status(); eprintln!("-> {s:?}"); }
        if t0.elapsed() > Duration::from_secs(5) && !ran2 && !cmd2.is_empty() { ran2 = true; eprintln!("RUN {cmd2}"); let s = std::process::Command::new("sh").arg("-c").arg(&cmd2).status(); eprintln!("-> {s:?}"); }
        std::thread::sleep(Duration::from_millis(250));
    }
    eprintln!("dropping");
    std::mem::forget(cons);
}
