//! Previews drawn while a run is still writing. Most of a report's time is
//! the zlib of its preview PNGs; a run knows early which samples the report
//! will show (the first augmented copy of the first and of the last shard),
//! so it hands them here as it writes them, and a thread at idle priority
//! draws and encodes each one while the run goes on. The report, written
//! after the run, still draws every preview from the finished output; where
//! its pixels equal a draft's, it takes the draft's PNG instead of encoding
//! them again. PNG bytes are a function of the pixels alone, so the report's
//! bytes are those it would have written without drafts; a draft that
//! guessed wrong (a sample dropped later, a count that changed) is only
//! unused work.

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

use super::canvas::Canvas;
use super::preview::{self, DEFAULT_CLIP_PERCENTILE};
use super::source::{SampleView, Source};
use crate::io::manifest::Manifest;

/// Preview pictures drawn and encoded during a run, for its report.
#[derive(Default)]
pub struct Drafts {
    /// Each finished draft: its pixels and their PNG.
    done: Mutex<Vec<(Canvas, Vec<u8>)>>,
    /// The threads still drawing.
    pending: Mutex<Vec<JoinHandle<()>>>,
    /// Drafts a report has taken.
    used: AtomicUsize,
}

impl fmt::Debug for Drafts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Drafts")
            .field("used", &self.used())
            .finish_non_exhaustive()
    }
}

/// One preview to draw ahead: sample `position` of the output in `dir`,
/// which is expected to hold `len` samples once finished.
pub struct Draft {
    /// The output directory, as the report will be given it.
    pub dir: std::path::PathBuf,
    /// The manifest the run will write, without its shards and counts.
    pub manifest: Manifest,
    /// Samples the finished output is expected to hold.
    pub len: usize,
    /// The sample's position in the output.
    pub position: usize,
    /// The sample as the report will read it, and the original it was made
    /// from when the output keeps it (each with its position).
    pub known: Vec<(usize, SampleView)>,
}

impl Drafts {
    /// Draw and encode `draft` on a thread of its own, at idle priority
    /// where the system has one, so it takes only time the run leaves over.
    pub fn start(self: &Arc<Self>, draft: Draft) {
        let me = Arc::clone(self);
        let spawned = std::thread::Builder::new()
            .name("seispipe-preview".into())
            .spawn(move || {
                idle_priority();
                let source = Source::draft(&draft.dir, draft.manifest, draft.len, draft.known);
                // A draft that cannot be drawn is left to the report, which
                // draws it again and says what went wrong.
                if let Ok(canvas) =
                    preview::picture(&source, draft.position, DEFAULT_CLIP_PERCENTILE)
                {
                    let png = canvas.png();
                    me.done
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push((canvas, png));
                }
            });
        // Without a thread there is no draft; the report encodes as usual.
        if let Ok(handle) = spawned {
            self.pending
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(handle);
        }
    }

    /// The PNG of `canvas`, if a draft drew the same pixels (after waiting
    /// for drafts still being drawn).
    pub(super) fn png_of(&self, canvas: &Canvas) -> Option<Vec<u8>> {
        {
            let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
            for handle in pending.drain(..) {
                // A draft thread that panicked left no draft: nothing to use.
                let _ = handle.join();
            }
        }
        let done = self.done.lock().unwrap_or_else(PoisonError::into_inner);
        let png = done
            .iter()
            .find(|(c, _)| c == canvas)
            .map(|(_, png)| png.clone())?;
        self.used.fetch_add(1, Ordering::Relaxed);
        Some(png)
    }

    /// How many previews a report took from drafts.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }
}

/// Put the calling thread at idle priority (Linux `SCHED_IDLE`): it runs
/// only on a core nothing else wants. Elsewhere, or if refused, it keeps
/// its priority.
fn idle_priority() {
    #[cfg(target_os = "linux")]
    {
        let param = libc::sched_param { sched_priority: 0 };
        // SAFETY: `param` is a valid sched_param for the call's duration;
        // pid 0 is the calling thread, and SCHED_IDLE takes priority 0.
        unsafe {
            libc::sched_setscheduler(0, libc::SCHED_IDLE, &raw const param);
        }
    }
}
