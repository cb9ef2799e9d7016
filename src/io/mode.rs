//! How shards reach the disk: direct I/O (`O_DIRECT`, no page-cache copy) or
//! buffered writes through the page cache — chosen per run (`--io`), by
//! default by trying both on the run's own shards.
//!
//! Neither is faster everywhere, and a short write test cannot tell: on one
//! 2-core VM, 64 MB written and fsynced took 30 ms buffered and 61–85 ms
//! direct, yet a whole flip + noise run took 1.05–1.27 s direct and 1.2–3.9 s
//! buffered, because that run is bound by the CPU and buffered writes spend
//! CPU (page allocation, the copy, writeback) that the pipeline needs; on
//! another VM buffered writes made the same run ~20 % faster. So `auto`
//! measures the run itself: the first shard is written direct (untimed: it
//! includes the start), shards 2 and 3 buffered and direct, each
//! timed from the end of the shard before it to its own end (fsync, rename
//! and journal included); the mode with the fewer seconds per byte over its
//! [`TRIAL`] shards writes every later shard. A run of too few shards to
//! compare stays direct, and so does a run with fewer than
//! [`MIN_TRIAL_SHARDS`] shards to write. A filesystem that refuses
//! `O_DIRECT` (tmpfs, some network filesystems) is written buffered, and said
//! so.
//!
//! Both modes write the same bytes and keep every durability guarantee
//! (each file is fsynced before it is renamed and journaled).

use std::sync::Mutex;
use std::time::Instant;

/// Timed shards per mode in `auto`'s trial.
pub const TRIAL: usize = 1;

/// Runs with fewer shards to write are written direct without a trial: a
/// trial shard in the slower mode can cost far more than the faster mode
/// saves on a few shards (one buffered 700 MB shard took 2.6–3.6 s instead
/// of ~0.5 s on the 2-core VM where direct I/O wins).
pub const MIN_TRIAL_SHARDS: usize = 20;

/// The `--io` setting.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum IoMode {
    /// Measure both on the output's filesystem and keep the faster (the default).
    #[default]
    Auto,
    /// `O_DIRECT` where the filesystem takes it (buffered where it does not).
    Direct,
    /// Through the page cache, with writeback started as the file grows.
    Buffered,
}

impl IoMode {
    /// `auto`, `direct` or `buffered`.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            IoMode::Auto => "auto",
            IoMode::Direct => "direct",
            IoMode::Buffered => "buffered",
        }
    }
}

/// The I/O mode of each shard of a run, and what the run learnt.
pub struct IoDecision {
    mode: IoMode,
    trial: Mutex<Trial>,
}

struct Trial {
    /// Shards finished so far.
    shards: usize,
    /// When the last shard finished (or the run started).
    last: Instant,
    /// Seconds and bytes of the timed shards, per mode (direct, buffered).
    timed: [(f64, u64, usize); 2],
    /// The filesystem refused O_DIRECT.
    refused: bool,
    /// Too few shards to write for a trial: direct throughout.
    untried: bool,
}

impl IoDecision {
    /// The decision for a run with `mode` that has `shards` to write,
    /// starting now.
    #[must_use]
    pub fn new(mode: IoMode, shards: usize) -> IoDecision {
        IoDecision {
            mode,
            trial: Mutex::new(Trial {
                shards: 0,
                last: Instant::now(),
                timed: [(0.0, 0, 0); 2],
                refused: false,
                untried: shards < MIN_TRIAL_SHARDS,
            }),
        }
    }

    /// Whether the next shard (the writer opens them in order) is written direct.
    pub fn next_direct(&self) -> bool {
        let t = self
            .trial
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match self.mode {
            IoMode::Direct => true,
            IoMode::Buffered => false,
            IoMode::Auto if t.refused => false,
            IoMode::Auto if t.untried => true,
            IoMode::Auto => match t.rates() {
                Some((d, b)) => d >= b,
                // Shards 1..=2·TRIAL: buffered at odd positions.
                None => t.shards.is_multiple_of(2),
            },
        }
    }

    /// A shard of `bytes` finished, written direct if `direct` (false also
    /// when the filesystem refused O_DIRECT for a shard that asked for it:
    /// `asked_direct`).
    pub fn finished(&self, asked_direct: bool, direct: bool, bytes: u64) {
        let mut t = self
            .trial
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        let took = now - t.last;
        t.last = now;
        t.refused |= asked_direct && !direct;
        if (1..=2 * TRIAL).contains(&t.shards) {
            let slot = &mut t.timed[usize::from(!direct)];
            slot.0 += took.as_secs_f64();
            slot.1 += bytes;
            slot.2 += 1;
        }
        t.shards += 1;
    }

    /// One line for the run's summary: the mode and why.
    #[must_use]
    pub fn why(&self) -> String {
        let t = self
            .trial
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match self.mode {
            IoMode::Direct | IoMode::Buffered => {
                let m = self.mode.name();
                if t.refused {
                    format!("buffered (--io {m}; the filesystem does not take O_DIRECT)")
                } else {
                    format!("{m} (--io {m})")
                }
            }
            IoMode::Auto if t.refused => {
                "buffered (auto: the filesystem does not take O_DIRECT)".into()
            }
            IoMode::Auto if t.untried => format!(
                "direct (auto: fewer than {MIN_TRIAL_SHARDS} shards to write, too few to try buffered writes on)"
            ),
            IoMode::Auto => match t.rates() {
                Some((d, b)) => format!(
                    "{} (auto: shards 2–{} alternately buffered at {b:.0} MB/s and direct at {d:.0} MB/s; the faster wrote the rest)",
                    if d >= b { "direct" } else { "buffered" },
                    1 + 2 * TRIAL
                ),
                _ => "direct (auto: too few shards to compare the two; direct, the usual winner when the CPU is the bound)".into(),
            },
        }
    }
}

impl Trial {
    /// MB/s of the direct and the buffered trial shards, once both are done.
    fn rates(&self) -> Option<(f64, f64)> {
        let rate = |(secs, bytes, n): (f64, u64, usize)| {
            (n == TRIAL).then(|| bytes as f64 / 1e6 / secs.max(1e-9))
        };
        Some((rate(self.timed[0])?, rate(self.timed[1])?))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn fixed_modes_never_change() {
        for (mode, direct) in [(IoMode::Direct, true), (IoMode::Buffered, false)] {
            let d = IoDecision::new(mode, MIN_TRIAL_SHARDS);
            for _ in 0..5 {
                assert_eq!(d.next_direct(), direct);
                d.finished(direct, direct, 100);
            }
            assert_eq!(d.why(), format!("{} (--io {})", mode.name(), mode.name()));
        }
    }

    /// Auto writes shard 1 direct, then `TRIAL` shards of each mode
    /// alternately (buffered first), then the faster of the two per byte.
    #[test]
    fn auto_tries_both_then_keeps_the_faster() {
        for buffered_faster in [false, true] {
            let d = IoDecision::new(IoMode::Auto, MIN_TRIAL_SHARDS);
            let mut modes = Vec::new();
            for k in 0..8 {
                let direct = d.next_direct();
                modes.push(direct);
                let slow = if buffered_faster { direct } else { !direct };
                std::thread::sleep(Duration::from_millis(if k > 0 && slow { 30 } else { 5 }));
                d.finished(direct, direct, 1 << 20);
            }
            let trial: Vec<bool> = (0..=2 * TRIAL).map(|k| k % 2 == 0).collect();
            assert_eq!(modes[..=2 * TRIAL], trial[..]);
            assert!(
                modes[2 * TRIAL + 1..].iter().all(|&m| m != buffered_faster),
                "{modes:?}"
            );
            let why = d.why();
            let want = format!(
                "{} (auto: shards 2–{} alternately buffered at",
                if buffered_faster {
                    "buffered"
                } else {
                    "direct"
                },
                1 + 2 * TRIAL
            );
            assert!(why.starts_with(&want), "{why}");
        }
        let d = IoDecision::new(IoMode::Auto, MIN_TRIAL_SHARDS);
        assert!(d.next_direct());
        d.finished(true, true, 10);
        assert!(d.why().contains("too few shards"), "{}", d.why());
        let d = IoDecision::new(IoMode::Auto, MIN_TRIAL_SHARDS - 1);
        for _ in 0..5 {
            assert!(d.next_direct());
            d.finished(true, true, 10);
        }
        assert!(d.why().contains("fewer than 20 shards"), "{}", d.why());
    }

    #[test]
    fn a_filesystem_without_o_direct_is_written_buffered_and_said_so() {
        let d = IoDecision::new(IoMode::Auto, MIN_TRIAL_SHARDS);
        assert!(d.next_direct());
        d.finished(true, false, 10);
        assert!(!d.next_direct());
        assert!(d.why().contains("does not take O_DIRECT"), "{}", d.why());
    }
}
