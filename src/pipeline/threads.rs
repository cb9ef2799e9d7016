//! The threads of a run and the channels that join them: the producer (on the
//! calling thread; rayon reads samples and applies the first per-sample
//! stages), one thread per batch stage (with the per-sample stages after it),
//! the hash thread (output checks, f16 encoding, SHA-256) and the writer (npy
//! files, fsync, rename, journal). Each channel holds one chunk (the hash
//! thread passes chunks on to the writer in pieces). A thread that
//! fails sets a shared flag and closes its channels, so its neighbours stop
//! quietly and only the cause is reported.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::thread::{Scope, ScopedJoinHandle};

use crossbeam_channel::{bounded, Receiver, Sender};
use rayon::prelude::*;
use rayon::ThreadPool;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::io::atomic;
use crate::io::disk::DiskProbe;
use crate::io::manifest::{Dropped, Journal, Provenance, Shard, ShardRecord};
use crate::io::npy::{self, NpyWriter};
use crate::pipeline::drafting::{Previewing, Watch};
use crate::pipeline::records;
use crate::pipeline::shards::{provenance_path, shard_paths};
use crate::pipeline::work::{
    check_output, segments, standard, standardize, Chunk, Ctx, Item, Segment,
};
use crate::progress::{human_bytes, Printer};
use crate::stage::Stage;

/// Where the writer puts a run's shards and records them.
pub(super) struct Sink<'a> {
    /// The output directory.
    pub dir: &'a Path,
    /// Its journal of finished shards.
    pub journal: &'a Journal,
    /// Progress, counted per chunk and per shard.
    pub printer: &'a Printer,
    /// Stop after a shard when the filesystem has less than this free (0: never).
    pub disk_reserve: u64,
    /// Bytes the pending shards will take (for the message when space runs low).
    pub to_write: u64,
    /// Whether each shard's files are written through direct I/O where
    /// possible (fixed, or tried on the first shards).
    pub io: &'a crate::io::mode::IoDecision,
    /// How free space is measured.
    pub disk: &'a dyn DiskProbe,
    /// Where the report's previews are drafted (a whole run's only).
    pub previews: Option<&'a Previewing>,
}

/// Run the chain of threads over the `pending` shards, until done,
/// a failure, or `stop`. Returns the shards written, in the order written, and
/// the error that stopped the run, if any.
pub(super) fn run_chain(
    ctx: &Ctx<'_>,
    pool: &ThreadPool,
    pending: &[Shard],
    sink: &Sink<'_>,
    stop: &AtomicBool,
) -> (Vec<ShardRecord>, Option<Error>) {
    let groups = segments(ctx.pipeline);
    let failed = AtomicBool::new(false);
    let written = Mutex::new(Vec::new());
    let results: Vec<Result<()>> = std::thread::scope(|scope| {
        let (failed, written) = (&failed, &written);
        let mut handles = Vec::new();
        let (tx0, mut rx) = bounded::<Chunk>(1);
        // Middle groups: a batch stage and the per-sample stages after it.
        // The thread of the last group also prepares the output (checks,
        // f16 encoding) in parallel, so that the hash thread only hashes.
        let last = groups.len() - 1;
        for (g, group) in groups.iter().enumerate().skip(1) {
            let (in_rx, tx) = link(&mut rx);
            handles.push(spawn_linked(scope, failed, move || {
                middle_thread(ctx, pool, group, g == last, &in_rx, &tx)
            }));
        }
        // Hash thread: SHA-256 (and what the last group left undone).
        let (in_rx, tx) = link(&mut rx);
        handles.push(spawn_linked(scope, failed, move || {
            hash_thread(ctx, &in_rx, &tx)
        }));
        // Writer, at the end of the chain.
        handles.push(spawn_linked(scope, failed, move || {
            writer_thread(ctx, sink, &rx, written)
        }));
        // Producer, on this thread.
        let first: Vec<(usize, &dyn Stage)> = match groups[0].first() {
            Some(Segment::Samples(v)) => v.clone(),
            _ => Vec::new(),
        };
        let produced = linked(
            failed,
            producer(ctx, pool, pending, &first, last == 0, &tx0, stop, failed),
        );
        drop(tx0);
        let mut all = vec![produced];
        all.extend(
            handles
                .into_iter()
                .map(|h| h.join().expect("pipeline thread panicked")),
        );
        all
    });
    // A thread whose neighbour failed stops quietly (a closed channel or the
    // `failed` flag), so the only errors here are causes; report the first.
    let cause = results.into_iter().find_map(Result::err);
    (written.into_inner().expect("records lock"), cause)
}

/// Extend the chain by one channel: `end` becomes the new channel's receiver;
/// returns the old end (for the new thread to read) and the new sender (for
/// it to write).
fn link(end: &mut Receiver<Chunk>) -> (Receiver<Chunk>, Sender<Chunk>) {
    let (tx, next) = bounded::<Chunk>(1);
    (std::mem::replace(end, next), tx)
}

/// Run `body` on a thread of `scope`; if it fails, set `failed` so that the
/// other threads stop.
fn spawn_linked<'scope>(
    scope: &'scope Scope<'scope, '_>,
    failed: &'scope AtomicBool,
    body: impl FnOnce() -> Result<()> + Send + 'scope,
) -> ScopedJoinHandle<'scope, Result<()>> {
    scope.spawn(move || linked(failed, body()))
}

/// A thread's result, with `failed` set when it is an error.
fn linked(failed: &AtomicBool, r: Result<()>) -> Result<()> {
    if r.is_err() {
        failed.store(true, Ordering::SeqCst);
    }
    r
}

/// Read the `pending` shards chunk by chunk (rayon over the samples of a
/// chunk), apply the `first` per-sample stages (and, when they are the last,
/// [`Ctx::prepare_output`]), and send the chunks in order.
#[allow(clippy::too_many_arguments)]
fn producer(
    ctx: &Ctx<'_>,
    pool: &ThreadPool,
    pending: &[Shard],
    first: &[(usize, &dyn Stage)],
    finish: bool,
    tx: &Sender<Chunk>,
    stop: &AtomicBool,
    failed: &AtomicBool,
) -> Result<()> {
    let chunk_len = ctx.pipeline.plan.spec.run.chunk_samples;
    for &j in pending {
        let range = ctx.plan.shard_range(j);
        let mut start = range.start;
        while start < range.end {
            if stop.load(Ordering::SeqCst) {
                return Err(Error::Interrupted);
            }
            if failed.load(Ordering::SeqCst) {
                return Ok(()); // a later thread failed and reports why
            }
            let end = (start + chunk_len).min(range.end);
            let items: Result<Vec<Item>> = pool.install(|| {
                (start..end)
                    .into_par_iter()
                    .map(|o| {
                        let mut item = ctx.produce(o, first)?;
                        if finish {
                            ctx.prepare_output(&mut item);
                        }
                        Ok(item)
                    })
                    .collect()
            });
            let chunk = Chunk {
                shard: j,
                first_of_shard: start == range.start,
                last_of_shard: end == range.end,
                items: items?,
                digests: None,
            };
            if tx.send(chunk).is_err() {
                return Ok(()); // the next thread failed and reports why
            }
            start = end;
        }
    }
    Ok(())
}

/// A batch stage and the per-sample stages after it (rayon), chunk by chunk;
/// in the last group (`finish`), then [`Ctx::prepare_output`].
fn middle_thread(
    ctx: &Ctx<'_>,
    pool: &ThreadPool,
    group: &[Segment<'_>],
    finish: bool,
    rx: &Receiver<Chunk>,
    tx: &Sender<Chunk>,
) -> Result<()> {
    for mut chunk in rx {
        for seg in group {
            match seg {
                Segment::Batch(i, b) => ctx.run_batch(&mut chunk, *i, *b)?,
                Segment::Samples(stages) => pool.install(|| {
                    chunk
                        .items
                        .par_iter_mut()
                        .try_for_each(|it| ctx.run_samples(it, stages))
                })?,
            }
        }
        if finish {
            pool.install(|| {
                chunk
                    .items
                    .par_iter_mut()
                    .for_each(|it| ctx.prepare_output(it));
            });
        }
        if tx.send(chunk).is_err() {
            return Ok(()); // the next thread failed and reports why
        }
    }
    Ok(())
}

/// Samples the hash thread hands the writer at a time: it passes each chunk
/// on in pieces as it hashes them, so the writer copies a sample into its
/// staging buffer while the bytes are still in the cache the hash left them
/// in, and starts a chunk's writes before the whole chunk is hashed.
const PIECE: usize = 4;

/// Between the stages and the writer: apply each output sample's check in
/// output order (drop or fail by policy; the stage threads ran the checks
/// and the f16 encoding in parallel, [`Ctx::prepare_output`]), and hash each
/// file's bytes (header as planned, then every sample kept) so that the
/// writer only writes. One SHA-256 stream per file runs on one core, so this
/// thread does nothing else: it is the slowest link of a one-shard flip.
/// Chunks go on in pieces of [`PIECE`] samples.
fn hash_thread(ctx: &Ctx<'_>, rx: &Receiver<Chunk>, tx: &Sender<Chunk>) -> Result<()> {
    let dtype = ctx.pipeline.plan.spec.output.dtype;
    let write_data = ctx.pipeline.plan.spec.output.data;
    let mut hashers: Option<(Option<Sha256>, Option<Sha256>)> = None;
    for chunk in rx {
        if chunk.first_of_shard {
            let (dshape, lshape) = ctx.shard_shapes(chunk.shard);
            let data =
                write_data.then(|| Sha256::new_with_prefix(npy::header_bytes(dtype, &dshape)));
            let label = ctx
                .pipeline
                .plan
                .out_labels
                .then(|| Sha256::new_with_prefix(npy::header_bytes(dtype, &lshape)));
            hashers = Some((data, label));
        }
        let n = chunk.items.len();
        let mut piece = Chunk {
            items: Vec::with_capacity(PIECE.min(n)),
            last_of_shard: false,
            ..chunk
        };
        let mut items = chunk.items.into_iter();
        loop {
            let item = items.next();
            let end = item.is_none();
            if let Some(mut item) = item {
                let (dh, lh) = hashers.as_mut().expect("a shard is open");
                hash_item(ctx, &mut item, dtype, dh.as_mut(), lh.as_mut())?;
                piece.items.push(item);
            }
            if !end && piece.items.len() < PIECE {
                continue;
            }
            if end && chunk.last_of_shard {
                let (dh, lh) = hashers.take().expect("a shard is open");
                piece.last_of_shard = true;
                piece.digests = Some((
                    dh.map(|h| npy::hex(&h.finalize())),
                    lh.map(|h| npy::hex(&h.finalize())),
                ));
            }
            // Whole pieces, the rest of the chunk, and a chunk that starts or
            // ends its shard even when it holds no sample.
            if !piece.items.is_empty() || piece.first_of_shard || piece.last_of_shard {
                let next = Chunk {
                    shard: piece.shard,
                    first_of_shard: false,
                    last_of_shard: false,
                    items: Vec::with_capacity(PIECE.min(n)),
                    digests: None,
                };
                if tx.send(std::mem::replace(&mut piece, next)).is_err() {
                    return Ok(()); // the writer failed and reports why
                }
            }
            if end {
                break;
            }
        }
    }
    Ok(())
}

/// The hash thread's work on one sample: its check (dropping or failing it
/// by policy), then its bytes into the data and label hashes (`dh`, `lh`),
/// kept encoded on the item for the writer where they differ from the array's.
fn hash_item(
    ctx: &Ctx<'_>,
    item: &mut Item,
    dtype: crate::pipeline::spec::DType,
    dh: Option<&mut Sha256>,
    lh: Option<&mut Sha256>,
) -> Result<()> {
    if item.sample.dropped.is_none() {
        let checked = item
            .checked
            .take()
            .unwrap_or_else(|| check_output(ctx, &item.sample, dtype));
        if let Err(e) = checked {
            ctx.drop_or_fail(item, e)?;
        }
    }
    if item.sample.dropped.is_some() {
        item.encoded = None;
        return Ok(());
    }
    let s = &mut item.sample;
    standardize(s);
    if lh.is_some() && s.velocity.is_none() {
        return Err(Error::Sample {
            path: ctx.inputs.files[s.origin.input].data.clone(),
            index: s.origin.index,
            reason: "a stage removed the velocity map of a labelled sample".into(),
        });
    }
    if let Some((data, label)) = &item.encoded {
        if let Some(dh) = dh {
            dh.update(data);
        }
        if let (Some(lh), Some(label)) = (lh, label) {
            lh.update(label);
        }
        return Ok(());
    }
    let labelled = lh.is_some();
    let mut data_buf = Vec::new();
    if let Some(dh) = dh {
        dh.update(npy::item_bytes(standard(&s.seismic), dtype, &mut data_buf));
    }
    let mut label_buf = Vec::new();
    if let (Some(lh), Some(v)) = (lh, s.velocity.as_ref()) {
        lh.update(npy::item_bytes(
            v.as_slice().expect("standard layout"),
            dtype,
            &mut label_buf,
        ));
    }
    if !data_buf.is_empty() || !label_buf.is_empty() {
        item.encoded = Some((data_buf, labelled.then_some(label_buf)));
    }
    Ok(())
}

/// The shard being written: its two files and its records so far.
struct OpenShard {
    shard: Shard,
    /// None with `output.data = false`.
    data: Option<NpyWriter>,
    label: Option<NpyWriter>,
    provenance: Vec<Provenance>,
    dropped: Vec<Dropped>,
    /// Where this process runs the stages that choose a device.
    devices: std::collections::BTreeMap<String, String>,
    /// Whether its files were asked to be written direct.
    asked_direct: bool,
}

impl OpenShard {
    /// Start `shard` under temporary names in `dir`.
    fn create(ctx: &Ctx<'_>, dir: &Path, shard: Shard, direct: bool) -> Result<OpenShard> {
        let dtype = ctx.pipeline.plan.spec.output.dtype;
        let (dp, lp) = shard_paths(shard);
        let (dshape, lshape) = ctx.shard_shapes(shard);
        Ok(OpenShard {
            shard,
            data: if ctx.pipeline.plan.spec.output.data {
                Some(NpyWriter::create_unhashed(
                    &dir.join(&dp),
                    &dp,
                    dtype,
                    &dshape,
                    direct,
                )?)
            } else {
                None
            },
            label: if ctx.pipeline.plan.out_labels {
                Some(NpyWriter::create_unhashed(
                    &dir.join(&lp),
                    &lp,
                    dtype,
                    &lshape,
                    direct,
                )?)
            } else {
                None
            },
            provenance: Vec::with_capacity(dshape[0]),
            dropped: Vec::new(),
            devices: ctx.pipeline.devices.clone(),
            asked_direct: direct,
        })
    }

    /// Whether its data file (else its label file) is being written direct.
    fn is_direct(&self) -> bool {
        self.data
            .as_ref()
            .or(self.label.as_ref())
            .is_some_and(NpyWriter::is_direct)
    }

    /// Write `item`, or record why it was dropped; returns the sample bytes written.
    fn write(
        &mut self,
        ctx: &Ctx<'_>,
        watch: Option<&mut Watch<'_>>,
        mut item: Item,
    ) -> Result<u64> {
        let dtype = ctx.pipeline.plan.spec.output.dtype;
        let input = &ctx.inputs.files[item.sample.origin.input].rel;
        if let Some(reason) = item.sample.dropped.take() {
            self.dropped.push(Dropped {
                sample: records::sample_ref(item.out_index, &item.sample, input),
                reason,
            });
            return Ok(0);
        }
        // The hash thread made both arrays standard and checked the label.
        let (data_bytes, label_bytes) = match item.encoded.take() {
            Some((d, l)) => (Some(d), l),
            None => (None, None),
        };
        let mut bytes = 0u64;
        if let Some(dw) = self.data.as_mut() {
            match &data_bytes {
                Some(b) => dw.write_encoded_item(b)?,
                None => dw.write_item(standard(&item.sample.seismic))?,
            }
            bytes += (item.sample.seismic.len() * npy::itemsize(dtype)) as u64;
        }
        if let (Some(lw), Some(v)) = (self.label.as_mut(), item.sample.velocity.as_ref()) {
            match &label_bytes {
                Some(b) => lw.write_encoded_item(b)?,
                None => lw.write_item(v.as_slice().expect("standard layout"))?,
            }
            bytes += (v.len() * npy::itemsize(dtype)) as u64;
        }
        let rec = Provenance {
            sample: records::sample_ref(item.out_index, &item.sample, input),
            stages: std::mem::take(&mut item.records),
        };
        if let Some(w) = watch {
            let j = self.provenance.len();
            let (d, l) = (data_bytes.as_deref(), label_bytes.as_deref());
            w.see(ctx, self.shard, j, &item.sample, &rec, d, l);
        }
        self.provenance.push(rec);
        Ok(bytes)
    }

    /// Finish the shard: its provenance file first, then both array files
    /// (fsync, rename) with the hash thread's `digests`.
    fn finish(
        self,
        dir: &Path,
        digests: Option<(Option<String>, Option<String>)>,
    ) -> Result<ShardRecord> {
        let provenance = write_provenance(dir, self.shard, &self.provenance)?;
        let (data_sha, label_sha) = match digests {
            Some((d, l)) => (d, l),
            None => (None, None),
        };
        let mut files = Vec::with_capacity(2);
        if let Some(d) = self.data {
            files.push(d.finish_with(data_sha)?);
        }
        if let Some(l) = self.label {
            files.push(l.finish_with(label_sha)?);
        }
        Ok(ShardRecord {
            index: self.shard.number(),
            samples: self.provenance.len(),
            dropped: self.dropped,
            files,
            provenance,
            devices: self.devices,
        })
    }
}

/// Write shard `index`'s provenance file (one JSON line per sample) and
/// return its record.
fn write_provenance(dir: &Path, shard: Shard, records: &[Provenance]) -> Result<npy::WrittenFile> {
    let mut text = String::with_capacity(records.len() * 256);
    for r in records {
        text.push_str(&serde_json::to_string(r).expect("records serialise"));
        text.push('\n');
    }
    let rel = provenance_path(shard);
    atomic::write_atomic(&dir.join(&rel), text.as_bytes())?;
    Ok(npy::WrittenFile {
        path: rel,
        shape: vec![records.len()],
        dtype: "jsonl".into(),
        bytes: text.len() as u64,
        sha256: npy::hex(&Sha256::digest(text.as_bytes())),
    })
}

/// Write the chunks into shard files; journal each finished shard and add
/// its record to `written`.
fn writer_thread(
    ctx: &Ctx<'_>,
    sink: &Sink<'_>,
    rx: &Receiver<Chunk>,
    written: &Mutex<Vec<ShardRecord>>,
) -> Result<()> {
    let mut open: Option<OpenShard> = None;
    let mut left = sink.to_write;
    let mut watch = sink.previews.map(Watch::new);
    for chunk in rx {
        if chunk.first_of_shard {
            open = Some(OpenShard::create(
                ctx,
                sink.dir,
                chunk.shard,
                sink.io.next_direct(),
            )?);
        }
        let sh = open.as_mut().expect("a shard is open");
        let mut bytes = 0u64;
        let n_items = chunk.items.len();
        for item in chunk.items {
            bytes += sh.write(ctx, watch.as_mut(), item)?;
        }
        sink.printer.samples_done(n_items, bytes);
        if chunk.last_of_shard {
            let sh = open.take().expect("a shard is open");
            let (asked, direct) = (sh.asked_direct, sh.is_direct());
            let rec = sh.finish(sink.dir, chunk.digests)?;
            sink.journal.append(&rec)?;
            sink.io
                .finished(asked, direct, rec.files.iter().map(|f| f.bytes).sum());
            sink.printer.shard_done();
            left = left.saturating_sub(rec.files.iter().map(|f| f.bytes).sum());
            let shard = chunk.shard;
            written.lock().expect("records lock").push(rec);
            if sink.disk_reserve > 0 && left > 0 {
                check_reserve(sink, shard, left)?;
            }
        }
    }
    // A shard still open here was cut short (error or Ctrl-C upstream): its
    // writers are dropped, which deletes their temporary files.
    drop(open);
    Ok(())
}

/// Stop (resumable) when the output's filesystem has less free space than the
/// reserve, after `shard` with `left` bytes still to write.
fn check_reserve(sink: &Sink<'_>, shard: Shard, left: u64) -> Result<()> {
    let free = sink.disk.free_bytes(sink.dir)?;
    if free >= sink.disk_reserve {
        return Ok(());
    }
    Err(Error::DiskLow {
        dir: sink.dir.to_path_buf(),
        reason: format!(
            "free space fell to {} (the reserve is {}, --disk-reserve); stopped after {shard}, which is kept. About {} is still to write: free at least {} and run the same command again to resume",
            human_bytes(free),
            human_bytes(sink.disk_reserve),
            human_bytes(left),
            human_bytes((left + sink.disk_reserve).saturating_sub(free))
        ),
    })
}
