//! An in-memory disk holding one file, for tests and simulations: what was written (the page
//! cache, which a process crash keeps) and what was synced (what a power loss keeps), so a test
//! can drop exactly the unsynced writes, fill the disk up, or break its fsync, and see what the
//! message store acknowledged. It knows nothing of the store: `store::backend` opens it.

use std::fmt;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};

use redb::StorageBackend;

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
