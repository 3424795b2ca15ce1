//! The pre-roll ring: the last few seconds of capture-rate mono samples, each at its absolute
//! sample index, kept by the consumer so a clip can start before its event was known.

/// A ring of the newest `capacity` samples; `end` is the absolute index one past the newest.
#[derive(Debug, Default)]
pub(crate) struct PreRoll {
    buf: Vec<f32>,
    /// Absolute index one past the newest sample.
    end: u64,
    /// Samples held (at most `buf.len()`).
    held: usize,
}

impl PreRoll {
    /// A ring holding `capacity` samples, allocated once.
    pub(crate) fn new(capacity: usize) -> PreRoll {
        PreRoll {
            buf: vec![0.0; capacity],
            end: 0,
            held: 0,
        }
    }

    pub(crate) fn capacity(&self) -> usize {
        self.buf.len()
    }

    /// Absolute index of the oldest sample held.
    pub(crate) fn oldest(&self) -> u64 {
        self.end - self.held as u64
    }

    #[cfg(test)]
    pub(crate) fn end(&self) -> u64 {
        self.end
    }

    /// Append `x`, whose first sample is absolute index `first`. A jump in the stream (a
    /// device reopened) forgets what was held: it is not the audio before `first`.
    pub(crate) fn push(&mut self, first: u64, x: &[f32]) {
        let cap = self.buf.len();
        if first != self.end {
            self.held = 0;
            self.end = first;
        }
        if cap == 0 {
            self.end += x.len() as u64;
            return;
        }
        let x = if x.len() > cap {
            self.end += (x.len() - cap) as u64;
            &x[x.len() - cap..]
        } else {
            x
        };
        let at = (self.end % cap as u64) as usize;
        let first_part = x.len().min(cap - at);
        self.buf[at..at + first_part].copy_from_slice(&x[..first_part]);
        self.buf[..x.len() - first_part].copy_from_slice(&x[first_part..]);
        self.end += x.len() as u64;
        self.held = (self.held + x.len()).min(cap);
    }

    /// Append the held samples from absolute index `from` (clamped to what is held) to the
    /// end to `out`; returns the index of the first sample copied.
    pub(crate) fn copy_from(&self, from: u64, out: &mut Vec<f32>) -> u64 {
        let cap = self.buf.len() as u64;
        let from = from.clamp(self.oldest(), self.end);
        let mut i = from;
        while i < self.end {
            let at = (i % cap) as usize;
            let n = ((self.end - i) as usize).min(cap as usize - at);
            out.extend_from_slice(&self.buf[at..at + n]);
            i += n as u64;
        }
        from
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest_samples_at_their_absolute_positions() {
        let mut r = PreRoll::new(5);
        r.push(0, &[0.0, 1.0, 2.0]);
        r.push(3, &[3.0, 4.0, 5.0, 6.0]);
        assert_eq!((r.oldest(), r.end()), (2, 7));
        let mut out = Vec::new();
        assert_eq!(r.copy_from(0, &mut out), 2);
        assert_eq!(out, [2.0, 3.0, 4.0, 5.0, 6.0]);
        out.clear();
        r.copy_from(5, &mut out);
        assert_eq!(out, [5.0, 6.0]);
        r.push(7, &(7..20).map(|i| i as f32).collect::<Vec<_>>());
        out.clear();
        r.copy_from(0, &mut out);
        assert_eq!(out, [15.0, 16.0, 17.0, 18.0, 19.0]);
    }

    #[test]
    fn a_jump_in_the_stream_forgets_the_old_audio() {
        let mut r = PreRoll::new(8);
        r.push(0, &[1.0; 4]);
        r.push(100, &[2.0; 2]);
        let mut out = Vec::new();
        assert_eq!(r.copy_from(0, &mut out), 100);
        assert_eq!(out, [2.0, 2.0]);
    }
}
