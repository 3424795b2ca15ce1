//! A clip's picture: its log-mel spectrogram (hark's own front end) with a time axis, the
//! event's span marked and the event's name and peak score as a title, as an 800 × 300 PNG
//! that a phone notification can carry. Text is drawn with an 8 × 8 bitmap font (`font8x8`)
//! at twice its size. The event's name, peak and span are also stored in `tEXt` chunks
//! (`hark:name`, `hark:peak`, `hark:start`, `hark:end`, `hark:duration`) for `hark clips`.

use crate::frontend::{
    FeatureSpec, Framing, LogKind, MelFrontend, MelNorm, MelScale, Normalize, PadMode, Window,
};

pub const PICTURE_WIDTH: u32 = 800;
pub const PICTURE_HEIGHT: u32 = 300;

/// Rows of the title band, the span bar and the time axis, and the plot's margins.
const TITLE_H: u32 = 26;
const BAR_H: u32 = 6;
const AXIS_H: u32 = 28;
const LEFT: u32 = 8;
const RIGHT: u32 = 8;
/// The glyphs' scale: 8 × 8 becomes 16 × 16 pixels.
const SCALE: u32 = 2;
/// Decibels shown below the loudest bin.
const DB_RANGE: f32 = 80.0;

const BACKGROUND: [u8; 3] = [16, 16, 24];
const TEXT: [u8; 3] = [235, 235, 235];
const SPAN: [u8; 3] = [80, 220, 120];

/// What a picture shows besides the audio.
#[derive(Debug, Clone)]
pub struct Picture<'a> {
    /// The title's first part: the event's name.
    pub name: &'a str,
    pub peak: f32,
    /// The event's span, in seconds from the clip's start.
    pub event: (f64, f64),
    /// Wall clock of the event's start, shown in the title (RFC 3339).
    pub time: &'a str,
}

/// The log-mel spectrogram used for pictures: 64 bands over 25 ms frames every 10 ms, in dB.
fn spec(rate: u32) -> FeatureSpec {
    let n_fft = ((rate as f64 * 0.025) as usize).next_power_of_two().max(64);
    FeatureSpec {
        sample_rate: rate,
        n_fft,
        win_length: n_fft,
        hop_length: (rate as usize / 100).max(1),
        window: Window::Hann,
        center: true,
        pad_mode: PadMode::Constant,
        framing: Framing::Librosa,
        n_mels: 64,
        fmin: 0.0,
        fmax: rate as f64 / 2.0,
        mel_scale: MelScale::Slaney,
        mel_norm: MelNorm::Slaney,
        power: 2.0,
        log: LogKind::Db,
        db_ref: 1.0,
        db_amin: 1e-10,
        db_top: Some(DB_RANGE as f64),
        ln_offset: 1e-6,
        normalize: Normalize::None,
    }
}

/// An RGB canvas.
struct Canvas {
    px: Vec<u8>,
}

impl Canvas {
    fn new() -> Canvas {
        let n = (PICTURE_WIDTH * PICTURE_HEIGHT) as usize;
        let mut px = Vec::with_capacity(3 * n);
        for _ in 0..n {
            px.extend_from_slice(&BACKGROUND);
        }
        Canvas { px }
    }

    fn set(&mut self, x: u32, y: u32, c: [u8; 3]) {
        if x < PICTURE_WIDTH && y < PICTURE_HEIGHT {
            let i = 3 * (y * PICTURE_WIDTH + x) as usize;
            self.px[i..i + 3].copy_from_slice(&c);
        }
    }

    fn rect(&mut self, x0: u32, y0: u32, w: u32, h: u32, c: [u8; 3]) {
        for y in y0..y0 + h {
            for x in x0..x0 + w {
                self.set(x, y, c);
            }
        }
    }

    /// `text` with its top-left corner at (x, y); characters the font lacks show as `?`.
    fn text(&mut self, x: u32, y: u32, text: &str) {
        for (i, ch) in text.chars().enumerate() {
            let code = if ch.is_ascii() {
                ch as usize
            } else {
                '?' as usize
            };
            let glyph = font8x8::legacy::BASIC_LEGACY[code];
            let gx = x + i as u32 * 8 * SCALE;
            for (row, bits) in glyph.iter().enumerate() {
                for col in 0..8 {
                    if bits & (1 << col) != 0 {
                        let (px, py) = (gx + col * SCALE, y + row as u32 * SCALE);
                        self.rect(px, py, SCALE, SCALE, TEXT);
                    }
                }
            }
        }
    }
}

/// A colour for `v` in 0..=1: black through purple and orange to pale yellow.
fn colour(v: f32) -> [u8; 3] {
    const STOPS: [[f32; 3]; 5] = [
        [0.0, 0.0, 4.0],
        [80.0, 18.0, 123.0],
        [183.0, 55.0, 121.0],
        [252.0, 137.0, 97.0],
        [252.0, 253.0, 191.0],
    ];
    let v = v.clamp(0.0, 1.0) * (STOPS.len() - 1) as f32;
    let i = (v.floor() as usize).min(STOPS.len() - 2);
    let t = v - i as f32;
    let mix = |k: usize| (STOPS[i][k] + (STOPS[i + 1][k] - STOPS[i][k]) * t) as u8;
    [mix(0), mix(1), mix(2)]
}

/// The picture of mono `samples` at `rate` Hz as PNG bytes.
pub fn render(
    samples: &[f32],
    rate: u32,
    what: &Picture<'_>,
) -> Result<Vec<u8>, png::EncodingError> {
    let mut canvas = Canvas::new();
    let duration = samples.len() as f64 / rate.max(1) as f64;
    let plot_x = LEFT;
    let plot_w = PICTURE_WIDTH - LEFT - RIGHT;
    let plot_y = TITLE_H + BAR_H;
    let plot_h = PICTURE_HEIGHT - plot_y - AXIS_H;
    draw_spectrogram(&mut canvas, samples, rate, (plot_x, plot_y, plot_w, plot_h));
    let to_x =
        |t: f64| plot_x + ((t / duration.max(1e-9)).clamp(0.0, 1.0) * (plot_w - 1) as f64) as u32;
    // The event's span: a bar above the plot and a line at each end.
    let (s, e) = (to_x(what.event.0), to_x(what.event.1));
    canvas.rect(s, TITLE_H, (e - s).max(1), BAR_H, SPAN);
    for x in [s, e] {
        canvas.rect(x, plot_y, 2, plot_h, SPAN);
    }
    draw_axis(&mut canvas, duration, plot_y + plot_h, &to_x);
    let when = what.time.get(..19).unwrap_or(what.time).replace('T', " ");
    let title = format!("{}  peak {:.2}  {when}Z", ascii(what.name), what.peak);
    canvas.text(LEFT, 5, &title);
    encode_png(&canvas, what, duration)
}

/// The name with anything the font lacks replaced, cut to fit beside the peak and time.
fn ascii(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .take(18)
        .collect()
}

fn draw_spectrogram(canvas: &mut Canvas, samples: &[f32], rate: u32, area: (u32, u32, u32, u32)) {
    let (x0, y0, w, h) = area;
    let Ok(fe) = MelFrontend::new(spec(rate)) else {
        return;
    };
    let mel = fe.compute(samples);
    let (bands, frames) = mel.dim();
    if frames == 0 {
        return;
    }
    let top = mel.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    for px in 0..w {
        let f = (px as usize * frames / w as usize).min(frames - 1);
        for py in 0..h {
            // Low bands at the bottom.
            let b = bands - 1 - (py as usize * bands / h as usize).min(bands - 1);
            let v = (mel[[b, f]] - (top - DB_RANGE)) / DB_RANGE;
            canvas.set(x0 + px, y0 + py, colour(v));
        }
    }
}

/// Ticks and second labels below the plot, at a step that leaves room for the labels.
fn draw_axis(canvas: &mut Canvas, duration: f64, y: u32, to_x: &dyn Fn(f64) -> u32) {
    let steps = [
        0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0,
    ];
    let step = steps
        .iter()
        .copied()
        .find(|s| duration / s <= 8.0)
        .unwrap_or(600.0);
    let mut t = 0.0;
    while t <= duration + 1e-9 {
        let x = to_x(t);
        canvas.rect(x, y, 1, 5, TEXT);
        let label = if step < 1.0 {
            format!("{t:.1}s")
        } else {
            format!("{t:.0}s")
        };
        let width = label.len() as u32 * 8 * SCALE;
        let lx = x.saturating_sub(width / 2).min(PICTURE_WIDTH - width);
        canvas.text(lx, y + 8, &label);
        t += step;
    }
}

fn encode_png(
    canvas: &Canvas,
    what: &Picture<'_>,
    duration: f64,
) -> Result<Vec<u8>, png::EncodingError> {
    let mut out = Vec::new();
    let mut enc = png::Encoder::new(&mut out, PICTURE_WIDTH, PICTURE_HEIGHT);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    let name: String = what
        .name
        .chars()
        .filter(|c| c.is_ascii() && !c.is_ascii_control())
        .collect();
    let texts = [
        ("hark:name", name),
        ("hark:peak", format!("{:.3}", what.peak)),
        ("hark:start", format!("{:.3}", what.event.0)),
        ("hark:end", format!("{:.3}", what.event.1)),
        ("hark:duration", format!("{duration:.3}")),
        ("hark:time", what.time.to_owned()),
    ];
    for (k, v) in texts {
        enc.add_text_chunk(k.to_owned(), v)?;
    }
    let mut w = enc.write_header()?;
    w.write_image_data(&canvas.px)?;
    w.finish()?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_picture_decodes_at_its_stated_size_with_its_metadata() {
        let x: Vec<f32> = (0..48_000).map(|i| (i as f32 * 0.07).sin() * 0.5).collect();
        let what = Picture {
            name: "Glass",
            peak: 0.87,
            event: (0.3, 0.7),
            time: "2026-11-27T03:12:00.123Z",
        };
        let bytes = render(&x, 48_000, &what).unwrap();
        let dec = png::Decoder::new(std::io::Cursor::new(bytes));
        let reader = dec.read_info().unwrap();
        let info = reader.info();
        assert_eq!((info.width, info.height), (PICTURE_WIDTH, PICTURE_HEIGHT));
        let text: Vec<_> = info
            .uncompressed_latin1_text
            .iter()
            .map(|t| (t.keyword.as_str(), t.text.as_str()))
            .collect();
        assert!(text.contains(&("hark:name", "Glass")), "{text:?}");
        assert!(text.contains(&("hark:peak", "0.870")), "{text:?}");
    }

    #[test]
    fn colours_run_dark_to_light() {
        let sum = |c: [u8; 3]| c.iter().map(|v| *v as u32).sum::<u32>();
        assert!(sum(colour(0.0)) < sum(colour(0.5)));
        assert!(sum(colour(0.5)) < sum(colour(1.0)));
    }
}
