//! The consumer's sample buffer: audio at the model's rate from the oldest sample a window
//! (or the streaming front end) still needs to the newest one resampled, with the stream
//! positions that go with it. Every position is an absolute sample index at the model's rate,
//! so stream time survives device reopenings and rebuilds.

use crate::windowing::next_window;

/// Samples for the windows still to come; `buf[0]` is absolute sample `start`.
#[derive(Debug, Default)]
pub(crate) struct SampleBuffer {
    pub(crate) buf: Vec<f32>,
    /// Absolute index of `buf[0]`.
    pub(crate) start: u64,
    /// Where the next window starts.
    pub(crate) next: u64,
    /// The streaming front end has been fed every sample before this one.
    pub(crate) fed: u64,
    /// At least one window was scored since the buffer was last cleared.
    pub(crate) ran_any: bool,
}

/// Where one window lies in the buffer, by index into `buf`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WindowSpan {
    /// Absolute start of the window.
    pub(crate) start: u64,
    /// `buf[from..to]` is the window.
    pub(crate) from: usize,
    pub(crate) to: usize,
    /// `buf[fresh..to]` is what the streaming front end has not seen yet.
    pub(crate) fresh: usize,
}

impl SampleBuffer {
    /// An empty buffer whose stream stands at absolute sample `pos`.
    pub(crate) fn at(pos: u64) -> SampleBuffer {
        SampleBuffer {
            start: pos,
            next: pos,
            fed: pos,
            ..SampleBuffer::default()
        }
    }

    /// One past the newest sample.
    pub(crate) fn end(&self) -> u64 {
        self.start + self.buf.len() as u64
    }

    /// Start a new piece of the stream (a new capture): what was buffered cannot be continued
    /// seamlessly, so the next window starts fresh at the current position, on the hop grid.
    /// Returns that position.
    pub(crate) fn begin_piece(&mut self, hop: u64) -> u64 {
        let pos = self.next.max(self.end()).div_ceil(hop) * hop;
        self.buf.clear();
        self.start = pos;
        self.next = pos;
        self.fed = pos;
        pos
    }

    /// Keep room for `most` samples, so the steady state never reallocates.
    pub(crate) fn reserve_total(&mut self, most: usize) {
        self.buf.reserve(most.saturating_sub(self.buf.len()));
    }

    pub(crate) fn push(&mut self, x: &[f32]) {
        self.buf.extend_from_slice(x);
    }

    /// Cut the buffer so that it ends at absolute sample `end`.
    pub(crate) fn truncate_at(&mut self, end: u64) {
        self.buf.truncate(end.saturating_sub(self.start) as usize);
    }

    /// Windows to skip so that at most `max_backlog` samples wait beyond the next window:
    /// moves to the newest complete window and returns how many were passed over.
    pub(crate) fn skip_when_behind(&mut self, window: u64, hop: u64, max_backlog: u64) -> u64 {
        let end = self.end();
        if end <= self.next + window + max_backlog {
            return 0;
        }
        let newest = (end - window - self.next) / hop * hop + self.next;
        let skipped = (newest - self.next) / hop;
        self.next = newest;
        self.fed = newest;
        skipped
    }

    /// Samples still missing before the next window is complete.
    pub(crate) fn missing(&self, window: u64) -> u64 {
        (self.next + window).saturating_sub(self.end())
    }

    /// The next window, if it is complete.
    pub(crate) fn next_span(&self, window: usize) -> Option<WindowSpan> {
        if self.missing(window as u64) > 0 {
            return None;
        }
        let from = (self.next - self.start) as usize;
        let to = from + window;
        let fresh = (self.fed.max(self.start) - self.start) as usize;
        Some(WindowSpan {
            start: self.next,
            from,
            to,
            fresh: fresh.min(to),
        })
    }

    /// Up to `most` complete windows from the next one on, each as [`next_span`] would give it
    /// once the ones before it were scored, into `out` (cleared first).
    ///
    /// [`next_span`]: Self::next_span
    pub(crate) fn spans(&self, window: usize, hop: u64, most: usize, out: &mut Vec<WindowSpan>) {
        out.clear();
        let (mut next, mut fed) = (self.next, self.fed);
        while out.len() < most && next + window as u64 <= self.end() {
            let from = (next - self.start) as usize;
            let to = from + window;
            let fresh = (fed.max(self.start) - self.start) as usize;
            out.push(WindowSpan {
                start: next,
                from,
                to,
                fresh: fresh.min(to),
            });
            fed = next + window as u64;
            next = next_window(next, hop);
        }
    }

    /// The window at `span` was scored: step to the next one and let go of what no later
    /// window (nor the streaming front end) needs. The dead prefix is cut once it is at least
    /// as long as what stays, so each sample is moved about once instead of the whole backlog
    /// every hop.
    pub(crate) fn advance(&mut self, span: WindowSpan, window: usize, hop: u64) {
        self.fed = span.start + window as u64;
        self.ran_any = true;
        self.next = next_window(span.start, hop);
        let keep_from = self.next.min(self.fed);
        let drop = ((keep_from - self.start) as usize).min(self.buf.len());
        if 2 * drop >= self.buf.len() {
            self.buf.drain(..drop);
            self.start += drop as u64;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_step_by_hop_and_the_used_prefix_is_let_go() {
        let mut b = SampleBuffer::at(0);
        b.push(&[0.0; 250]);
        let mut starts = Vec::new();
        while let Some(span) = b.next_span(100) {
            starts.push(span.start);
            b.advance(span, 100, 50);
        }
        assert_eq!(starts, [0, 50, 100, 150]);
        assert_eq!(b.next, 200);
        assert!(b.start <= b.next && b.end() == 250);
        assert_eq!(b.missing(100), 50);
    }

    #[test]
    fn spans_ahead_are_the_spans_met_one_at_a_time() {
        let mut a = SampleBuffer::at(0);
        a.push(&[0.0; 480]);
        let mut ahead = Vec::new();
        a.spans(100, 50, 5, &mut ahead);
        let mut b = SampleBuffer::at(0);
        b.push(&[0.0; 480]);
        let mut one_by_one = Vec::new();
        while let Some(span) = b.next_span(100) {
            // Spans index the buffer as it was before any advance.
            let shift = (b.start - a.start) as usize;
            one_by_one.push((
                span.start,
                span.from + shift,
                span.to + shift,
                span.fresh + shift,
            ));
            b.advance(span, 100, 50);
        }
        let ahead: Vec<_> = ahead
            .iter()
            .map(|s| (s.start, s.from, s.to, s.fresh))
            .collect();
        assert_eq!(ahead, one_by_one[..5]);
        let mut all = Vec::new();
        a.spans(100, 50, 100, &mut all);
        assert_eq!(all.len(), 8);
    }

    #[test]
    fn falling_behind_jumps_to_the_newest_complete_window() {
        let mut b = SampleBuffer::at(0);
        b.push(&[0.0; 1000]);
        assert_eq!(b.skip_when_behind(100, 50, 2000), 0);
        let skipped = b.skip_when_behind(100, 50, 200);
        assert_eq!(skipped, 18);
        assert_eq!(b.next, 900);
        assert_eq!(b.next_span(100).unwrap().start, 900);
    }

    #[test]
    fn a_new_piece_starts_on_the_hop_grid_after_what_was_buffered() {
        let mut b = SampleBuffer::at(0);
        b.push(&[0.0; 130]);
        assert_eq!(b.begin_piece(50), 150);
        assert!(b.buf.is_empty());
        assert_eq!((b.start, b.next, b.fed), (150, 150, 150));
    }
}
