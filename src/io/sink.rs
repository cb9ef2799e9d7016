//! Where [`super::npy::NpyWriter`] puts its bytes: straight to the disk
//! (`O_DIRECT`) where the filesystem allows it, through the page cache
//! otherwise.
//!
//! Why direct: an output shard is written once and not read back by this
//! process, yet a buffered `write` copies every byte into freshly allocated
//! page-cache pages, and the dirty pages push the user's other cached data
//! out during a multi-day run. With `O_DIRECT` the bytes go from an aligned
//! staging buffer to the device; the only copy left is into that buffer.
//! `fsync` is still called before the rename, since the device may cache
//! writes. What the copy costs: `docs/performance.md`, "Where
//! the time goes".
//!
//! Direct I/O needs the buffer address, the file offset and the length
//! aligned to the device's block size: the staging buffer is aligned to
//! [`ALIGN`] (4096, a multiple of every common logical block size), written
//! whole, and the last, partial block is padded with zeros and the file cut
//! back to its real length afterwards. Filesystems without `O_DIRECT`
//! (tmpfs, some network and FUSE filesystems) refuse it at `open` or at the
//! first write with `EINVAL`; the sink then carries on buffered, with the
//! same bytes. The caller chooses (`direct`); the program passes
//! `SEISPIPE_DIRECT_IO=0` through as buffered writes everywhere.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Seek, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crossbeam_channel::{bounded, unbounded, Receiver, Sender};

/// Alignment of direct writes (address, offset and length).
pub const ALIGN: usize = 4096;

/// Largest staging buffer (and direct write).
pub const MAX_STAGE: usize = 4 << 20;

/// A transparent huge page on x86-64 and on aarch64 with 4 KiB pages.
const HUGE_PAGE: usize = 2 << 20;

/// One direct write is in flight at a time, on one background thread: two
/// extending writes to one ext4 file serialise on the inode lock, and the
/// kernel's spinning on it costs more CPU than the second write gains
/// (measured in `docs/performance.md`, "Where the time goes").
///
/// Staging buffers per sink: one filling, one being written, one spare.
const BUFFERS: usize = 3;

/// Start writeback every this many bytes in buffered mode, so the final
/// fsync finds little left to write and disk writes overlap computing.
const WRITEBACK_STEP: u64 = 16 << 20;

/// A file being written from its start, sequentially.
pub struct Sink {
    inner: Inner,
    /// Bytes accepted so far.
    len: u64,
}

enum Inner {
    Direct(Direct),
    Buffered(Buffered),
}

/// A [`ALIGN`]-aligned window of `cap` bytes.
struct AlignedBuf {
    mem: Mem,
    start: usize,
    cap: usize,
}

/// Where an [`AlignedBuf`]'s bytes live.
enum Mem {
    Heap(Vec<u8>),
    /// A private anonymous mapping (`base`, `len`) of zero pages, owned by
    /// the buffer alone.
    Map(std::ptr::NonNull<u8>, usize),
}

// SAFETY: a mapping is owned and used by one buffer only, as a Vec's memory
// is; the buffer moves between the filling thread and the writing thread.
unsafe impl Send for Mem {}

impl Drop for Mem {
    fn drop(&mut self) {
        if let Mem::Map(base, len) = self {
            // SAFETY: `base`, `len` are a mapping this value made and owns;
            // no slice of it outlives the buffer.
            unsafe { libc::munmap(base.as_ptr().cast(), *len) };
        }
    }
}

impl AlignedBuf {
    /// A placeholder that owns no memory.
    const EMPTY: AlignedBuf = AlignedBuf {
        mem: Mem::Heap(Vec::new()),
        start: 0,
        cap: 0,
    };

    /// A buffer of `cap` bytes. One of [`HUGE_PAGE`] or more is a fresh
    /// mapping that starts on a huge-page boundary and asks Linux for
    /// transparent huge pages (taken where they are enabled for `madvise`,
    /// the default of most distributions): each direct write then pins two
    /// pages instead of a thousand and hands the device two segments, which
    /// took ~0.1 s (12 %) off a 500-sample flip + noise run
    /// (`docs/performance.md`, "Where the time goes"). The alignment
    /// padding is never touched, so it takes no memory.
    fn new(cap: usize) -> AlignedBuf {
        if cap >= HUGE_PAGE {
            if let Some(b) = AlignedBuf::mapped(cap) {
                return b;
            }
        }
        let mem = vec![0u8; cap + ALIGN];
        let start = mem.as_ptr().align_offset(ALIGN);
        AlignedBuf {
            mem: Mem::Heap(mem),
            start,
            cap,
        }
    }

    /// [`AlignedBuf::new`] in a huge-page-aligned mapping; `None` if the
    /// mapping is refused.
    fn mapped(cap: usize) -> Option<AlignedBuf> {
        let len = cap + HUGE_PAGE;
        // SAFETY: a new private anonymous mapping; nothing else refers to it.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return None;
        }
        let base = std::ptr::NonNull::new(p.cast::<u8>())?;
        let start = base.as_ptr().align_offset(HUGE_PAGE);
        // SAFETY: `start + cap` ≤ `len`: the range lies inside the mapping.
        // The advice only changes how the kernel backs it; a refusal (no
        // huge pages here) leaves ordinary pages.
        unsafe { libc::madvise(base.as_ptr().add(start).cast(), cap, libc::MADV_HUGEPAGE) };
        Some(AlignedBuf {
            mem: Mem::Map(base, len),
            start,
            cap,
        })
    }

    fn bytes(&self, len: usize) -> &[u8] {
        match &self.mem {
            Mem::Heap(v) => &v[self.start..self.start + len],
            Mem::Map(base, _) => {
                assert!(len <= self.cap);
                // SAFETY: the window's `cap` bytes lie inside the mapping
                // (zero-filled when made, so initialised), borrowed with `self`.
                unsafe { std::slice::from_raw_parts(base.as_ptr().add(self.start), len) }
            }
        }
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        match &mut self.mem {
            Mem::Heap(v) => &mut v[self.start..self.start + self.cap],
            // SAFETY: as in `bytes`, borrowed mutably with `self`.
            Mem::Map(base, _) => unsafe {
                std::slice::from_raw_parts_mut(base.as_ptr().add(self.start), self.cap)
            },
        }
    }
}

struct Direct {
    file: Arc<File>,
    cur: AlignedBuf,
    filled: usize,
    /// File offset of `cur`'s first byte (a multiple of [`ALIGN`]).
    offset: u64,
    /// Whether a direct write has succeeded (until then `EINVAL` means "no
    /// O_DIRECT here" and the sink falls back to buffered).
    proven: bool,
    io: Option<IoPool>,
}

/// The background thread that writes full windows while the next one fills.
struct IoPool {
    jobs: Option<Sender<(AlignedBuf, u64)>>,
    free: Receiver<AlignedBuf>,
    made: usize,
    error: Arc<Mutex<Option<io::Error>>>,
    thread: Option<JoinHandle<()>>,
}

impl IoPool {
    fn new(file: &Arc<File>) -> IoPool {
        let (jobs, job_rx) = unbounded::<(AlignedBuf, u64)>();
        let (free_tx, free) = bounded::<AlignedBuf>(BUFFERS);
        let error = Arc::new(Mutex::new(None));
        let thread = {
            let (rx, tx, file, error) = (job_rx, free_tx, file.clone(), error.clone());
            std::thread::spawn(move || {
                for (buf, offset) in rx {
                    let failed = error.lock().map_or(true, |e| e.is_some());
                    if !failed {
                        if let Err(e) = file.write_all_at(buf.bytes(buf.cap), offset) {
                            if let Ok(mut slot) = error.lock() {
                                slot.get_or_insert(e);
                            }
                        }
                    }
                    let _ = tx.send(buf);
                }
            })
        };
        IoPool {
            jobs: Some(jobs),
            free,
            made: 0,
            error,
            thread: Some(thread),
        }
    }

    fn take_error(&self) -> Option<io::Error> {
        self.error.lock().ok().and_then(|mut e| e.take())
    }

    /// Queue `buf` for writing at `offset` and hand back an empty buffer.
    fn submit(&mut self, buf: AlignedBuf, offset: u64) -> io::Result<AlignedBuf> {
        let cap = buf.cap;
        self.jobs
            .as_ref()
            .expect("pool is open")
            .send((buf, offset))
            .map_err(|_| io::Error::other("the direct-I/O thread stopped"))?;
        let next = match self.free.try_recv() {
            Ok(b) => b,
            Err(_) if self.made < BUFFERS - 1 => {
                self.made += 1;
                AlignedBuf::new(cap)
            }
            Err(_) => self
                .free
                .recv()
                .map_err(|_| io::Error::other("the direct-I/O thread stopped"))?,
        };
        match self.take_error() {
            Some(e) => Err(e),
            None => Ok(next),
        }
    }

    /// Wait for every queued write.
    fn drain(&mut self) -> io::Result<()> {
        self.jobs = None;
        if let Some(t) = self.thread.take() {
            t.join()
                .map_err(|_| io::Error::other("the direct-I/O thread panicked"))?;
        }
        match self.take_error() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

impl Drop for IoPool {
    fn drop(&mut self) {
        let _ = self.drain();
    }
}

struct Buffered {
    file: BufWriter<File>,
    /// Bytes already handed to the kernel for writeback.
    kicked: u64,
}

impl Sink {
    /// Create (truncate) `path` for about `expected` bytes (the planned
    /// size, which sizes the staging buffers), written through direct I/O
    /// when `direct` and the filesystem takes it (else through the page
    /// cache, with writeback started as it goes).
    ///
    /// # Errors
    /// The file cannot be created.
    ///
    /// # Errors
    /// The file cannot be created.
    pub fn create_with(path: &Path, expected: u64, direct: bool) -> io::Result<Sink> {
        if direct {
            let opened = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .custom_flags(libc::O_DIRECT)
                .open(path);
            match opened {
                Ok(file) => {
                    let want = usize::try_from(expected)
                        .unwrap_or(MAX_STAGE)
                        .clamp(ALIGN, MAX_STAGE);
                    return Ok(Sink {
                        inner: Inner::Direct(Direct {
                            file: Arc::new(file),
                            cur: AlignedBuf::new(want.div_ceil(ALIGN) * ALIGN),
                            filled: 0,
                            offset: 0,
                            proven: false,
                            io: None,
                        }),
                        len: 0,
                    });
                }
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(Sink {
            inner: Inner::Buffered(Buffered {
                file: BufWriter::with_capacity(1 << 20, File::create(path)?),
                kicked: 0,
            }),
            len: 0,
        })
    }

    /// Whether bytes go to the device directly.
    #[must_use]
    pub fn is_direct(&self) -> bool {
        matches!(self.inner, Inner::Direct(_))
    }

    /// Append `bytes`.
    ///
    /// # Errors
    /// Any write error (disk full, file too large…), possibly from an
    /// earlier window written in the background.
    pub fn write_all(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        self.len += bytes.len() as u64;
        loop {
            match &mut self.inner {
                Inner::Buffered(b) => {
                    b.file.write_all(bytes)?;
                    if self.len - b.kicked >= WRITEBACK_STEP {
                        b.file.flush()?;
                        kick_writeback(b.file.get_ref(), b.kicked, self.len);
                        b.kicked = self.len;
                    }
                    return Ok(());
                }
                Inner::Direct(d) => {
                    let mut refused = false;
                    while !bytes.is_empty() {
                        let n = bytes.len().min(d.cur.cap - d.filled);
                        copy_streaming(&mut d.cur.bytes_mut()[d.filled..d.filled + n], &bytes[..n]);
                        d.filled += n;
                        bytes = &bytes[n..];
                        if d.filled == d.cur.cap {
                            match d.window_full() {
                                Ok(()) => {}
                                Err(e) if !d.proven && e.raw_os_error() == Some(libc::EINVAL) => {
                                    refused = true;
                                    break;
                                }
                                Err(e) => return Err(e),
                            }
                        }
                    }
                    if !refused {
                        return Ok(());
                    }
                }
            }
            // The filesystem took O_DIRECT at open but refuses the writes:
            // write what is staged buffered and go on buffered.
            self.fall_back()?;
        }
    }

    /// Write what is staged, wait for background writes, cut the file to the
    /// bytes accepted, and hand back the file (no longer in direct mode) for
    /// header fixes and fsync.
    ///
    /// # Errors
    /// Any write or truncate error.
    pub fn finish(mut self) -> io::Result<File> {
        if let Inner::Direct(d) = &mut self.inner {
            if let Some(mut pool) = d.io.take() {
                pool.drain()?;
            }
            let mut refused = false;
            if d.filled > 0 {
                let padded = d.filled.div_ceil(ALIGN) * ALIGN;
                let filled = d.filled;
                d.cur.bytes_mut()[filled..padded].fill(0);
                match d.file.write_all_at(d.cur.bytes(padded), d.offset) {
                    Ok(()) => {}
                    Err(e) if !d.proven && e.raw_os_error() == Some(libc::EINVAL) => {
                        refused = true;
                    }
                    Err(e) => return Err(e),
                }
            }
            if refused {
                self.fall_back()?;
            }
        }
        let file = match self.inner {
            Inner::Direct(d) => {
                set_direct(&d.file, false)?;
                Arc::try_unwrap(d.file).map_err(|_| io::Error::other("file still shared"))?
            }
            Inner::Buffered(b) => b
                .file
                .into_inner()
                .map_err(io::IntoInnerError::into_error)?,
        };
        file.set_len(self.len)?;
        Ok(file)
    }

    /// From direct to buffered: write the staged bytes through the page
    /// cache. Only before any background write (the sink has written
    /// nothing but, at most, synchronously proven windows).
    fn fall_back(&mut self) -> io::Result<()> {
        let Inner::Direct(d) = &mut self.inner else {
            return Ok(());
        };
        if let Some(mut pool) = d.io.take() {
            pool.drain()?;
        }
        set_direct(&d.file, false)?;
        d.file.write_all_at(d.cur.bytes(d.filled), d.offset)?;
        let end = d.offset + d.filled as u64;
        let mut w = BufWriter::with_capacity(1 << 20, d.file.try_clone()?);
        w.seek(io::SeekFrom::Start(end))?;
        self.inner = Inner::Buffered(Buffered {
            file: w,
            kicked: end,
        });
        Ok(())
    }
}

impl Direct {
    /// The staging window is full: write it (synchronously until a direct
    /// write has succeeded, then in the background) and move on.
    fn window_full(&mut self) -> io::Result<()> {
        if self.proven {
            let pool = self.io.get_or_insert_with(|| IoPool::new(&self.file));
            let full = std::mem::replace(&mut self.cur, AlignedBuf::EMPTY);
            self.cur = pool.submit(full, self.offset)?;
        } else {
            self.file
                .write_all_at(self.cur.bytes(self.cur.cap), self.offset)?;
            self.proven = true;
        }
        self.offset += self.cur.cap as u64;
        self.filled = 0;
        Ok(())
    }
}

/// `dst.copy_from_slice(src)`; on x86-64, large copies use non-temporal
/// stores: a staging buffer is next read by the device, not the CPU, so its
/// lines need not be read into the cache first nor push other data out. The
/// closing `sfence` orders the stores before the buffer is handed on.
fn copy_streaming(dst: &mut [u8], src: &[u8]) {
    assert_eq!(dst.len(), src.len());
    #[cfg(target_arch = "x86_64")]
    if dst.len() >= 64 << 10 {
        use std::arch::x86_64::{__m128i, _mm_loadu_si128, _mm_sfence, _mm_stream_si128};
        let head = dst.as_ptr().align_offset(16).min(dst.len());
        dst[..head].copy_from_slice(&src[..head]);
        let body = (dst.len() - head) / 64 * 64;
        // SAFETY: SSE2 is part of x86-64. Every access is inside
        // `head..head + body` of both slices; the stores' addresses are
        // 16-byte aligned (`head` aligns them).
        unsafe {
            let d = dst.as_mut_ptr().add(head);
            let s = src.as_ptr().add(head);
            for i in (0..body).step_by(64) {
                // `loadu` takes any address; the stores' are 16-byte aligned.
                #[allow(clippy::cast_ptr_alignment)]
                for k in (0..64).step_by(16) {
                    let v = _mm_loadu_si128(s.add(i + k).cast::<__m128i>());
                    _mm_stream_si128(d.add(i + k).cast::<__m128i>(), v);
                }
            }
            _mm_sfence();
        }
        dst[head + body..].copy_from_slice(&src[head + body..]);
        return;
    }
    dst.copy_from_slice(src);
}

fn set_direct(file: &File, on: bool) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let fd = file.as_raw_fd();
    // SAFETY: fd is a valid open descriptor owned by `file`; F_GETFL/F_SETFL
    // only read and change its status flags.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    let new = if on {
        flags | libc::O_DIRECT
    } else {
        flags & !libc::O_DIRECT
    };
    // SAFETY: as above.
    if new != flags && unsafe { libc::fcntl(fd, libc::F_SETFL, new) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Ask the kernel to start writing bytes `from..to` (Linux
/// `sync_file_range(SYNC_FILE_RANGE_WRITE)`: asynchronous, no wait). Without
/// it, dirty pages pile up until the fsync, and the whole shard's disk write
/// stalls the pipeline there. Only a hint: errors are ignored.
fn kick_writeback(file: &File, from: u64, to: u64) {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        // SAFETY: the descriptor is valid for the duration of the call, which
        // only schedules writeback of the given byte range.
        let _ = unsafe {
            libc::sync_file_range(
                file.as_raw_fd(),
                from as libc::off64_t,
                (to - from) as libc::off64_t,
                libc::SYNC_FILE_RANGE_WRITE,
            )
        };
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (file, from, to);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(n: usize, seed: u8) -> Vec<u8> {
        (0..n)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect()
    }

    /// Every mix of piece sizes (smaller than, equal to and larger than the
    /// staging window, aligned or not) gives exactly the concatenated bytes.
    const CASES: &[(&[usize], u64)] = &[
        (&[], 0),
        (&[1], 1),
        (&[128, 4096 * 3 - 128], 4096 * 3),
        (&[128, 1_400_000, 1_400_000, 1_400_000, 7], 4_200_135),
        (&[10 << 20, 3, (8 << 20) + 1], 100),
        (&[4096; 5], 4096 * 5),
    ];

    /// Write `pieces` (falling back to buffered after piece `fall_back_at`,
    /// if given) and compare the file with the concatenated bytes.
    fn check(
        path: &Path,
        pieces: &[usize],
        expected: u64,
        direct: bool,
        fall_back_at: Option<usize>,
    ) {
        let mut sink = Sink::create_with(path, expected, direct).unwrap();
        let mut want = Vec::new();
        for (i, &n) in pieces.iter().enumerate() {
            let p = pattern(n, i as u8);
            sink.write_all(&p).unwrap();
            want.extend_from_slice(&p);
            if fall_back_at == Some(i) {
                sink.fall_back().unwrap();
                assert!(!sink.is_direct());
            }
        }
        drop(sink.finish().unwrap());
        let got = std::fs::read(path).unwrap();
        assert_eq!(got.len(), want.len(), "{pieces:?}");
        assert!(got == want, "{pieces:?}: bytes differ");
    }

    /// The streaming copy copies exactly, whatever the alignment of either
    /// side and the length (below, at and above where it streams).
    #[test]
    fn streaming_copy_is_exact() {
        let src = pattern((1 << 20) + 64, 5);
        for len in [0, 1, (64 << 10) - 1, 64 << 10, (64 << 10) + 13, 1 << 20] {
            for (at, from) in [(0, 0), (1, 0), (0, 3), (15, 7), (17, 33), (48, 64)] {
                let mut dst = vec![0xAAu8; len + 128];
                copy_streaming(&mut dst[at..at + len], &src[from..from + len]);
                assert!(
                    dst[at..at + len] == src[from..from + len],
                    "{len} {at} {from}"
                );
                assert!(dst[..at].iter().chain(&dst[at + len..]).all(|&b| b == 0xAA));
            }
        }
    }

    /// Staging buffers are aligned (to a huge page from 2 MiB up, where the
    /// mapping is made), zero-filled and writable to their last byte.
    #[test]
    fn staging_buffers_are_aligned_zeroed_and_whole() {
        for (cap, align) in [
            (ALIGN, ALIGN),
            (1 << 20, ALIGN),
            (HUGE_PAGE, HUGE_PAGE),
            (MAX_STAGE, HUGE_PAGE),
        ] {
            let mut b = AlignedBuf::new(cap);
            assert!(
                matches!(b.mem, Mem::Map(..)) == (align == HUGE_PAGE),
                "{cap}"
            );
            assert_eq!(b.bytes(cap).as_ptr() as usize % align, 0, "{cap}");
            assert!(b.bytes(cap).iter().all(|&x| x == 0), "{cap}");
            b.bytes_mut()[cap - 1] = 7;
            b.bytes_mut()[0] = 9;
            assert_eq!((b.bytes(cap)[0], b.bytes(cap)[cap - 1]), (9, 7));
        }
    }

    /// Every mix of piece sizes (smaller than, equal to and larger than the
    /// staging window, aligned or not) gives exactly the concatenated bytes,
    /// direct (where the filesystem has it) and buffered.
    #[test]
    fn writes_exactly_the_bytes_given() {
        let dir = tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR")).unwrap();
        for (k, (pieces, expected)) in CASES.iter().enumerate() {
            for direct in [true, false] {
                check(
                    &dir.path().join(format!("f{k}{direct}")),
                    pieces,
                    *expected,
                    direct,
                    None,
                );
            }
        }
    }

    /// Falling back from direct to buffered part-way (what happens when a
    /// filesystem takes O_DIRECT at open but refuses the writes) loses and
    /// repeats nothing.
    #[test]
    fn falling_back_mid_file_keeps_every_byte() {
        let dir = tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR")).unwrap();
        for (k, (pieces, expected)) in CASES.iter().enumerate() {
            for at in 0..pieces.len() {
                check(
                    &dir.path().join(format!("g{k}-{at}")),
                    pieces,
                    *expected,
                    true,
                    Some(at),
                );
            }
        }
    }
}
