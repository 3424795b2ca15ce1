//! Giving the system back the pages that starting up touched once and the steady state does not
//! need: the clean pages of the process's own files (program code and read-only data).
//!
//! Starting ONNX Runtime's environment registers every ONNX operator schema, and building a
//! session runs the graph optimisers and fills the kernel registry: code that runs once, yet
//! the kernel keeps it mapped and counts it in the resident set for the life of the process.
//! In `hark run` on a file, 16.3 MB of `libonnxruntime.so`'s 22.3 MB of code stayed resident;
//! with [`page_out_file_pages`] after each of those steps (`madvise(MADV_PAGEOUT)`, Linux 5.4)
//! 8.5-8.8 MB does: what inference reads back on its first windows (BENCHMARKS.md, section 3b).
//! The price is paid once: those pages are read from the file again (35-45 major faults in the
//! first 6 s instead of 5-7), which made the first window 4-26 ms later in three runs on the
//! machine measured. `model` calls this when `LoadOptions::page_out_after_load` asks (the
//! daemon does).
//!
//! Must not: touch a page that holds data the file does not: a mapping is paged out only if it
//! is private, not writable and holds no anonymous (copy-on-write) page, so it can always be
//! read back as it was. Pages other processes map too (libc, ...) the kernel skips itself.

use std::time::Instant;

/// What one [`page_out_file_pages`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PagedOut {
    /// Mappings the kernel was asked to reclaim.
    pub mappings: usize,
    /// Their resident kilobytes before (`Rss` in `/proc/self/smaps`), read back from the file
    /// on use.
    pub resident_kib: u64,
}

/// One mapping of `/proc/self/smaps` as far as paging out needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Mapping {
    start: usize,
    end: usize,
    /// Backed by a file, private, not writable.
    read_only_file: bool,
    rss_kib: u64,
    anonymous_kib: u64,
}

impl Mapping {
    /// A mapping whose every page can be read back from its file unchanged.
    fn clean_file_pages(&self) -> bool {
        self.read_only_file && self.anonymous_kib == 0 && self.rss_kib > 0
    }
}

/// Ask the kernel to reclaim the resident pages of every private, read-only file mapping of
/// this process (see the module's header). Best effort: where `/proc/self/smaps` cannot be read
/// or the kernel refuses (older than 5.4, or a filter), nothing changes.
pub fn page_out_file_pages() -> PagedOut {
    let started = Instant::now();
    let Ok(smaps) = std::fs::read_to_string("/proc/self/smaps") else {
        return PagedOut::default();
    };
    let mut done = PagedOut::default();
    for m in parse_smaps(&smaps).iter().filter(|m| m.clean_file_pages()) {
        // SAFETY: the range is a whole mapping of this process, read from smaps just now. The
        // advice changes no memory's contents: it drops clean file pages, which the next
        // access reads back from the file. Were the range remapped meanwhile, the kernel would
        // write dirty pages to swap or their file first, never discard them; unmapped, ENOMEM.
        let r = unsafe {
            libc::madvise(
                m.start as *mut libc::c_void,
                m.end - m.start,
                libc::MADV_PAGEOUT,
            )
        };
        if r == 0 {
            done.mappings += 1;
            done.resident_kib += m.rss_kib;
        }
    }
    tracing::debug!(
        mappings = done.mappings,
        resident_kib = done.resident_kib,
        took_us = started.elapsed().as_micros() as u64,
        "paged out clean file pages"
    );
    done
}

/// The mappings of an smaps text: a header line per mapping (`start-end perms offset dev inode
/// [path]`), then `Key: value kB` lines.
fn parse_smaps(text: &str) -> Vec<Mapping> {
    let mut out: Vec<Mapping> = Vec::new();
    for line in text.lines() {
        if let Some(m) = header(line) {
            out.push(m);
        } else if let (Some(m), Some((key, rest))) = (out.last_mut(), line.split_once(':')) {
            let kib = || {
                rest.trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse()
                    .unwrap_or(0)
            };
            match key {
                "Rss" => m.rss_kib = kib(),
                "Anonymous" => m.anonymous_kib = kib(),
                _ => {}
            }
        }
    }
    out
}

/// A mapping's header line, or None for a `Key: value` line.
fn header(line: &str) -> Option<Mapping> {
    let mut fields = line.split_whitespace();
    let (start, end) = fields.next()?.split_once('-')?;
    let start = usize::from_str_radix(start, 16).ok()?;
    let end = usize::from_str_radix(end, 16).ok()?;
    let perms = fields.next()?;
    let path = fields.nth(3).unwrap_or("");
    let read_only_file =
        path.starts_with('/') && perms.len() == 4 && !perms.contains('w') && perms.ends_with('p');
    Some(Mapping {
        start,
        end,
        read_only_file,
        rss_kib: 0,
        anonymous_kib: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMAPS: &str = "\
5581a0000000-5581a0200000 r-xp 00000000 fe:00 123 /usr/bin/hark
Size:               2048 kB
Rss:                1500 kB
Anonymous:             0 kB
5581a0200000-5581a0210000 r--p 00200000 fe:00 123 /usr/bin/hark
Rss:                  64 kB
Anonymous:            64 kB
5581a0210000-5581a0220000 rw-p 00210000 fe:00 123 /usr/bin/hark
Rss:                  64 kB
Anonymous:            32 kB
7f0000000000-7f0000100000 rw-p 00000000 00:00 0 
Rss:                 512 kB
Anonymous:           512 kB
7f0000100000-7f0000200000 r--s 00000000 00:05 9 /memfd:ring (deleted)
Rss:                  16 kB
Anonymous:             0 kB
7f0000200000-7f0000300000 r-xp 00000000 fe:00 77 /usr/lib/libonnxruntime.so
Rss:                   0 kB
Anonymous:             0 kB
7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0                          [stack]
Rss:                  68 kB
Anonymous:            68 kB
";

    #[test]
    fn only_resident_private_read_only_file_mappings_without_copied_pages_are_paged_out() {
        let maps = parse_smaps(SMAPS);
        assert_eq!(maps.len(), 7);
        let chosen: Vec<_> = maps.iter().filter(|m| m.clean_file_pages()).collect();
        assert_eq!(chosen.len(), 1, "{chosen:?}");
        assert_eq!(
            (chosen[0].start, chosen[0].end, chosen[0].rss_kib),
            (0x5581a0000000, 0x5581a0200000, 1500)
        );
    }

    #[test]
    fn relocated_read_only_data_is_kept() {
        // RELRO: read-only now, but its pages were written by the dynamic linker.
        let maps = parse_smaps(SMAPS);
        assert!(maps[1].read_only_file);
        assert!(!maps[1].clean_file_pages());
    }

    #[test]
    fn paging_out_this_process_keeps_its_code_working() {
        let done = page_out_file_pages();
        // The test binary's own code is a private read-only file mapping, resident now.
        assert!(done.mappings > 0, "{done:?}");
        assert!(done.resident_kib > 0, "{done:?}");
        // Code paged out a moment ago runs again, read back from the file.
        assert_eq!(parse_smaps(SMAPS).len(), 7);
    }
}
