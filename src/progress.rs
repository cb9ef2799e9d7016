//! Progress for people, on stderr: an indicatif bar on a terminal, a plain line
//! every few seconds otherwise, nothing with `--quiet`.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Bars (stderr is a terminal).
    Bar,
    /// A plain line every `interval`.
    Lines,
    /// Nothing.
    Quiet,
}

impl Mode {
    /// Bars on a terminal, lines otherwise, nothing when `quiet`.
    #[must_use]
    pub fn detect(quiet: bool) -> Mode {
        if quiet {
            Mode::Quiet
        } else if std::io::stderr().is_terminal() {
            Mode::Bar
        } else {
            Mode::Lines
        }
    }
}

/// Thread-safe progress reporter.
pub struct Printer {
    mode: Mode,
    bar: Option<ProgressBar>,
    total_samples: AtomicUsize,
    total_shards: AtomicUsize,
    samples: AtomicUsize,
    shards: AtomicUsize,
    bytes: AtomicU64,
    start: Instant,
    last_line: Mutex<Instant>,
    interval: Duration,
}

impl Printer {
    /// A printer in `mode`.
    #[must_use]
    pub fn new(mode: Mode) -> Printer {
        Printer {
            mode,
            bar: None,
            total_samples: AtomicUsize::new(0),
            total_shards: AtomicUsize::new(0),
            samples: AtomicUsize::new(0),
            shards: AtomicUsize::new(0),
            bytes: AtomicU64::new(0),
            start: Instant::now(),
            last_line: Mutex::new(Instant::now()),
            interval: Duration::from_secs(5),
        }
    }

    /// Print a message for people (unless quiet).
    pub fn info(&self, msg: &str) {
        match (&self.bar, self.mode) {
            (_, Mode::Quiet) => {}
            (Some(b), _) => b.println(msg),
            (None, _) => eprintln!("{msg}"),
        }
    }

    /// Begin: `total_samples` output samples in `total_shards` shards, of which
    /// `done_samples`/`done_shards` were finished by an earlier run.
    pub fn start(
        &mut self,
        total_samples: usize,
        total_shards: usize,
        done_samples: usize,
        done_shards: usize,
    ) {
        self.total_samples.store(total_samples, Ordering::Relaxed);
        self.total_shards.store(total_shards, Ordering::Relaxed);
        self.samples.store(done_samples, Ordering::Relaxed);
        self.shards.store(done_shards, Ordering::Relaxed);
        if self.mode == Mode::Bar {
            let bar = ProgressBar::with_draw_target(
                Some(total_samples as u64),
                ProgressDrawTarget::stderr(),
            );
            let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
            let template = if no_color {
                "{elapsed_precise} [{wide_bar}] {pos}/{len} samples · {msg} · {per_sec} · ETA {eta}"
            } else {
                "{elapsed_precise} [{wide_bar:.cyan/blue}] {pos}/{len} samples · {msg} · {per_sec} · ETA {eta}"
            };
            bar.set_style(
                ProgressStyle::with_template(template)
                    .expect("valid template")
                    .progress_chars("=> "),
            );
            bar.set_position(done_samples as u64);
            bar.reset_eta();
            bar.set_message(format!("shards {done_shards}/{total_shards}"));
            bar.enable_steady_tick(Duration::from_millis(200));
            self.bar = Some(bar);
        }
    }

    /// `n` more samples finished (written or dropped).
    pub fn samples_done(&self, n: usize, bytes: u64) {
        let now = self.samples.fetch_add(n, Ordering::Relaxed) + n;
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
        if let Some(b) = &self.bar {
            b.set_position(now as u64);
        }
        self.maybe_line(false);
    }

    /// One more shard finished.
    pub fn shard_done(&self) {
        let s = self.shards.fetch_add(1, Ordering::Relaxed) + 1;
        if let Some(b) = &self.bar {
            b.set_message(format!(
                "shards {s}/{}",
                self.total_shards.load(Ordering::Relaxed)
            ));
        }
        self.maybe_line(false);
    }

    fn maybe_line(&self, force: bool) {
        if self.mode != Mode::Lines {
            return;
        }
        let mut last = self.last_line.lock().expect("progress lock");
        if !force && last.elapsed() < self.interval {
            return;
        }
        *last = Instant::now();
        let secs = self.start.elapsed().as_secs_f64().max(1e-9);
        let s = self.samples.load(Ordering::Relaxed);
        let total = self.total_samples.load(Ordering::Relaxed);
        let rate = self.bytes.load(Ordering::Relaxed) as f64 / secs / 1e6;
        eprintln!(
            "progress: {s}/{total} samples, {}/{} shards, {:.1} MB/s written, {:.0} s elapsed",
            self.shards.load(Ordering::Relaxed),
            self.total_shards.load(Ordering::Relaxed),
            rate,
            secs
        );
    }

    /// Stop drawing.
    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }

    /// Seconds since the printer was made.
    #[must_use]
    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }
}

/// A byte count for people: `999 B`, `1.4 MB`, `700.1 GB` (powers of 1000).
/// Not `indicatif::HumanBytes`: that counts in powers of 1024 (MiB, GiB),
/// while Kaggle's limits and `--max-dataset-bytes` are decimal, and a plan
/// that says "100 GB" must mean what Kaggle means.
#[must_use]
pub fn human_bytes(b: u64) -> String {
    let units = ["B", "KB", "MB", "GB", "TB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1000.0 && u + 1 < units.len() {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", units[u])
    }
}
