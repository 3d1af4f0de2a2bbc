//! What the database file sits on: the metering wrapper every store's storage goes through, and
//! the in-memory [`Disk`] that tests and simulations crash, fill up or break at will.
//!
//! A real disk keeps two images of a file: what was written (the page cache, which a process
//! crash keeps) and what was synced (what a power loss keeps). [`Disk`] keeps both, so a test can
//! drop exactly the unsynced writes and find out whether the store acknowledged any of them.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::ops::Bound;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use redb::{BackendError, StorageBackend};

use super::Location;

/// Any backend, forwarded as is, with its length kept where the store's figures can read it
/// (redb owns the backend once it is opened, so the file's size is published from here).
#[derive(Debug)]
pub(super) struct Metered {
    inner: Box<dyn StorageBackend>,
    len: Arc<AtomicU64>,
}

impl Metered {
    pub(super) fn new(inner: Box<dyn StorageBackend>, len: Arc<AtomicU64>) -> io::Result<Self> {
        len.store(inner.len()?, Ordering::Relaxed);
        Ok(Self { inner, len })
    }
}

impl StorageBackend for Metered {
    fn len(&self) -> io::Result<u64> {
        self.inner.len()
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        self.inner.read(offset, out)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.inner.set_len(len)?;
        self.len.store(len, Ordering::Relaxed);
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        self.inner.sync_data()
    }

    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.inner.write(offset, data)
    }

    fn close(&self) -> io::Result<()> {
        self.inner.close()
    }

    // The locks must reach the file: they are what refuses a second server on the same file.
    fn try_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.inner.try_lock_range(start, end)
    }

    fn try_lock_shared_range(
        &self,
        start: Bound<u64>,
        end: Bound<u64>,
    ) -> Result<bool, BackendError> {
        self.inner.try_lock_shared_range(start, end)
    }

    fn lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.inner.lock_range(start, end)
    }

    fn lock_shared_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.inner.lock_shared_range(start, end)
    }

    fn unlock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.inner.unlock_range(start, end)
    }

    fn query_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.inner.query_lock_range(start, end)
    }
}

/// A backend that never writes to the one under it: writes land in memory, over the file.
///
/// It lets the store read from the last good state while the disk refuses writes. redb reopens
/// a file only by repairing it, and the repair writes (after a failed commit the file is marked
/// as needing recovery); over this, the repair's writes stay in memory and the file is untouched.
#[derive(Debug)]
pub(super) struct Overlay {
    inner: Box<dyn StorageBackend>,
    state: Mutex<OverlayState>,
}

#[derive(Debug)]
struct OverlayState {
    len: u64,
    /// The file's bytes below this are still what it holds (a shrink hides the rest for good).
    inner_len: u64,
    /// Written chunks, by index.
    chunks: HashMap<u64, Box<[u8]>>,
}

const CHUNK: u64 = 4096;

impl Overlay {
    pub(super) fn new(inner: Box<dyn StorageBackend>) -> io::Result<Self> {
        let len = inner.len()?;
        Ok(Self {
            inner,
            state: Mutex::new(OverlayState {
                len,
                inner_len: len,
                chunks: HashMap::new(),
            }),
        })
    }

    fn state(&self) -> MutexGuard<'_, OverlayState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Chunk `index` as the file has it (zeros past its end).
    fn load(&self, state: &OverlayState, index: u64) -> io::Result<Box<[u8]>> {
        let mut chunk = vec![0; CHUNK as usize].into_boxed_slice();
        let start = index * CHUNK;
        let end = (start + CHUNK).min(state.inner_len);
        if start < end {
            self.inner
                .read(start, &mut chunk[..(end - start) as usize])?;
        }
        Ok(chunk)
    }
}

impl StorageBackend for Overlay {
    fn len(&self) -> io::Result<u64> {
        Ok(self.state().len)
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        let state = self.state();
        if offset + out.len() as u64 > state.len {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "read past the end",
            ));
        }
        let mut done = 0;
        while done < out.len() {
            let at = offset + done as u64;
            let (index, within) = (at / CHUNK, (at % CHUNK) as usize);
            let n = (CHUNK as usize - within).min(out.len() - done);
            let part = &mut out[done..done + n];
            match state.chunks.get(&index) {
                Some(chunk) => part.copy_from_slice(&chunk[within..within + n]),
                None => part.copy_from_slice(&self.load(&state, index)?[within..within + n]),
            }
            done += n;
        }
        Ok(())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let mut state = self.state();
        if len < state.len {
            state.inner_len = state.inner_len.min(len);
            state.chunks.retain(|index, _| index * CHUNK < len);
            // Bytes past the end must read as zeros if it grows again.
            if let Some(chunk) = state.chunks.get_mut(&(len / CHUNK)) {
                chunk[(len % CHUNK) as usize..].fill(0);
            }
        }
        state.len = len;
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        Ok(())
    }

    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        let mut state = self.state();
        let mut done = 0;
        while done < data.len() {
            let at = offset + done as u64;
            let (index, within) = (at / CHUNK, (at % CHUNK) as usize);
            let n = (CHUNK as usize - within).min(data.len() - done);
            if !state.chunks.contains_key(&index) {
                let chunk = self.load(&state, index)?;
                state.chunks.insert(index, chunk);
            }
            let chunk = state.chunks.get_mut(&index).expect("just inserted");
            chunk[within..within + n].copy_from_slice(&data[done..done + n]);
            done += n;
        }
        state.len = state.len.max(offset + data.len() as u64);
        Ok(())
    }

    fn close(&self) -> io::Result<()> {
        self.inner.close()
    }

    // Locked like the file itself, so a second server cannot open it meanwhile.
    fn try_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.inner.try_lock_range(start, end)
    }

    fn try_lock_shared_range(
        &self,
        start: Bound<u64>,
        end: Bound<u64>,
    ) -> Result<bool, BackendError> {
        self.inner.try_lock_shared_range(start, end)
    }

    fn lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.inner.lock_range(start, end)
    }

    fn lock_shared_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.inner.lock_shared_range(start, end)
    }

    fn unlock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.inner.unlock_range(start, end)
    }

    fn query_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.inner.query_lock_range(start, end)
    }
}

/// A crashable, fillable in-memory disk holding one database file. Cloning shares the disk.
/// For simulations and tests (`StoreAt::Disk`): not a production backend.
#[derive(Clone, Default)]
pub struct Disk(Arc<Mutex<Image>>);

#[derive(Default)]
struct Image {
    /// What has been written: what a reader sees while the machine stays up.
    live: Vec<u8>,
    /// What the last `sync_data` made durable: all that survives a crash.
    durable: Vec<u8>,
    /// Bumped by each crash; a backend of an older one is dead.
    boot: u64,
    /// Writes and growth fail with `StorageFull`.
    full: bool,
    /// `sync_data` fails with an I/O error, as a dying disk's fsync does.
    sync_broken: bool,
    syncs: u64,
}

impl fmt::Debug for Disk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let image = self.image();
        (f.debug_struct("Disk"))
            .field("live", &image.live.len())
            .field("durable", &image.durable.len())
            .field("boot", &image.boot)
            .finish()
    }
}

impl Disk {
    pub fn new() -> Self {
        Self::default()
    }

    /// A backend over the file as it is now (what a process opening it would see).
    pub(crate) fn backend(&self) -> DiskBackend {
        DiskBackend {
            disk: self.clone(),
            boot: self.image().boot,
        }
    }

    /// Where a store opens this disk: every (re)open gets a fresh backend, as a reopened file
    /// gets a fresh descriptor.
    pub(crate) fn location(&self) -> Location {
        let disk = self.clone();
        Location::Backend {
            name: "in-memory disk".to_owned(),
            open: Box::new(move || Box::new(disk.backend()) as Box<dyn StorageBackend>),
        }
    }

    /// Power loss: everything not synced is gone, and every backend handed out so far fails
    /// from now on (the process that held them is dead).
    pub fn crash(&self) {
        let mut image = self.image();
        image.boot += 1;
        image.live = image.durable.clone();
    }

    /// A full disk (`true`) or one with room again (`false`).
    pub fn set_full(&self, full: bool) {
        self.image().full = full;
    }

    /// An fsync that reports an I/O error (`true`), as when the kernel dropped dirty pages.
    pub fn set_sync_broken(&self, broken: bool) {
        self.image().sync_broken = broken;
    }

    /// How many syncs reached the disk.
    pub fn syncs(&self) -> u64 {
        self.image().syncs
    }

    /// The file's bytes, to corrupt them.
    #[cfg(test)]
    pub(crate) fn edit(&self, change: impl FnOnce(&mut Vec<u8>)) {
        let mut image = self.image();
        change(&mut image.live);
        image.durable = image.live.clone();
    }

    fn image(&self) -> MutexGuard<'_, Image> {
        // A panic while holding the lock leaves plain bytes behind, still worth reading.
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// One open of a [`Disk`]'s file.
pub(crate) struct DiskBackend {
    disk: Disk,
    boot: u64,
}

impl fmt::Debug for DiskBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DiskBackend")
            .field("boot", &self.boot)
            .finish()
    }
}

impl DiskBackend {
    /// The image, unless a crash since this backend was handed out killed it.
    fn image(&self) -> io::Result<MutexGuard<'_, Image>> {
        let image = self.disk.image();
        if image.boot != self.boot {
            return Err(io::Error::other("the disk crashed under this backend"));
        }
        Ok(image)
    }
}

fn full() -> io::Error {
    io::Error::new(io::ErrorKind::StorageFull, "no space left on device")
}

impl StorageBackend for DiskBackend {
    fn len(&self) -> io::Result<u64> {
        Ok(self.image()?.live.len() as u64)
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        let image = self.image()?;
        let start = usize::try_from(offset).map_err(io::Error::other)?;
        let bytes = (image.live.get(start..start + out.len()))
            .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "read past the end"))?;
        out.copy_from_slice(bytes);
        Ok(())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let mut image = self.image()?;
        let len = usize::try_from(len).map_err(io::Error::other)?;
        if image.full && len > image.live.len() {
            return Err(full());
        }
        image.live.resize(len, 0);
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        let mut image = self.image()?;
        if image.sync_broken {
            return Err(io::Error::other("input/output error"));
        }
        image.durable = image.live.clone();
        image.syncs += 1;
        Ok(())
    }

    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        let mut image = self.image()?;
        if image.full {
            return Err(full());
        }
        let start = usize::try_from(offset).map_err(io::Error::other)?;
        let end = start + data.len();
        if end > image.live.len() {
            image.live.resize(end, 0);
        }
        image.live[start..end].copy_from_slice(data);
        Ok(())
    }
}
