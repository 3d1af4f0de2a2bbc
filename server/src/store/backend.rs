//! What the database file sits on: the metering wrapper every store's storage goes through, the
//! read-only overlay used while the disk refuses writes, and how a store opens the simulated
//! [`Disk`] (`sim_disk.rs`) that tests and simulations crash, fill up or break at will.

use std::collections::HashMap;
use std::io;
use std::ops::Bound;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use redb::{BackendError, StorageBackend};

use super::Location;
pub(crate) use crate::sim_disk::Disk;

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

impl Disk {
    /// Where a store opens this disk: every (re)open gets a fresh backend, as a reopened file
    /// gets a fresh descriptor.
    pub(crate) fn location(&self) -> Location {
        let disk = self.clone();
        Location::Backend {
            name: "in-memory disk".to_owned(),
            open: Box::new(move || Box::new(disk.backend()) as Box<dyn StorageBackend>),
        }
    }
}
