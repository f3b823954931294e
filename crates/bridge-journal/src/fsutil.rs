//! File primitives every journal file goes through.
//!
//! Invariants:
//! - Appends write whole lines with one `write_all` on an `O_APPEND` descriptor, then `sync_data` (inside
//!   [`with_deferred_syncs`], once per file when the batch ends instead); a torn tail left by a crash (bytes
//!   after the last newline) is cut off before the next append, so a reader never sees a partial line
//!   followed by more lines.
//! - Rewrites go to a temporary file in the same directory, are synced, then renamed over the target:
//!   a reader sees the old file or the new one, never a mix.
//! - Files that may hold prompts are created with mode 0600.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::JournalError;

/// Creates `dir` and its missing parents with mode 0700 (they hold prompts); an existing one keeps its mode.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// Opens `path` for appending (created 0600 with its parent directories, 0700).
pub fn open_append(path: &Path) -> Result<File, JournalError> {
    if let Some(dir) = path.parent() {
        create_private_dir(dir).map_err(|e| JournalError::io(dir, e))?;
    }
    let file = OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| JournalError::io(path, e))?;
    Ok(file)
}

/// Cuts bytes after the last newline (a line a crash left half written). Returns the resulting length.
pub fn repair_tail(file: &mut File, path: &Path) -> Result<u64, JournalError> {
    let len = file.metadata().map_err(|e| JournalError::io(path, e))?.len();
    if len == 0 {
        return Ok(0);
    }
    let mut buf = vec![0u8; 4096];
    let mut end = len;
    let keep = loop {
        let start = end.saturating_sub(buf.len() as u64);
        let n = (end - start) as usize;
        file.seek(SeekFrom::Start(start)).map_err(|e| JournalError::io(path, e))?;
        let chunk = buf.get_mut(..n).unwrap_or_default();
        file.read_exact(chunk).map_err(|e| JournalError::io(path, e))?;
        if let Some(pos) = chunk.iter().rposition(|b| *b == b'\n') {
            break start + pos as u64 + 1;
        }
        if start == 0 {
            break 0;
        }
        end = start;
    };
    if keep != len {
        tracing::warn!(path = %path.display(), dropped = len - keep, "cut a torn line at the end of a journal file");
        file.set_len(keep).map_err(|e| JournalError::io(path, e))?;
    }
    Ok(keep)
}

thread_local! {
    /// Files appended to inside [`with_deferred_syncs`] on this thread, synced when it returns.
    static DEFERRED: std::cell::RefCell<Option<std::collections::BTreeSet<PathBuf>>> =
        const { std::cell::RefCell::new(None) };
}

/// Runs `work` with the appends' `sync_data` deferred: returns `work`'s result and the files appended to,
/// for [`sync_files`] to sync once each (a batch of turns costs one sync per file, not one per line, and the
/// writer need not wait for them). A process crash loses nothing by this (written data is in the page cache);
/// a power loss may lose what is not synced yet.
pub fn with_deferred_syncs<R>(work: impl FnOnce() -> R) -> (R, std::collections::BTreeSet<PathBuf>) {
    DEFERRED.with(|d| *d.borrow_mut() = Some(std::collections::BTreeSet::new()));
    let result = work();
    let paths = DEFERRED.with(|d| d.borrow_mut().take()).unwrap_or_default();
    (result, paths)
}

/// Syncs the data of each file; the first error, after trying them all.
pub fn sync_files<'a>(paths: impl IntoIterator<Item = &'a PathBuf>) -> Result<(), JournalError> {
    let mut synced = Ok(());
    for path in paths {
        let sync = OpenOptions::new().append(true).open(path).and_then(|f| f.sync_data());
        if let Err(e) = sync
            && synced.is_ok()
        {
            synced = Err(JournalError::io(path, e));
        }
    }
    synced
}

/// Appends `lines` (each must end with `\n`) in one write and syncs the data (or defers the sync, see
/// [`with_deferred_syncs`]).
pub fn append_durably(file: &mut File, path: &Path, lines: &[u8]) -> Result<(), JournalError> {
    file.write_all(lines).map_err(|e| JournalError::io(path, e))?;
    let deferred = DEFERRED.with(|d| d.borrow_mut().as_mut().map(|set| set.insert(path.to_owned())).is_some());
    if deferred {
        return Ok(());
    }
    file.sync_data().map_err(|e| JournalError::io(path, e))
}

/// Writes `bytes` to `path` atomically (temporary file, sync, rename), mode 0600.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), JournalError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    create_private_dir(dir).map_err(|e| JournalError::io(dir, e))?;
    let tmp = temp_path(path);
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| JournalError::io(&tmp, e))?;
        file.write_all(bytes).map_err(|e| JournalError::io(&tmp, e))?;
        file.sync_all().map_err(|e| JournalError::io(&tmp, e))?;
        std::fs::rename(&tmp, path).map_err(|e| JournalError::io(path, e))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Forces mode 0600 on an existing file.
pub fn restrict(path: &Path) -> Result<(), JournalError> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(|e| JournalError::io(path, e))
}

/// Holds an exclusive advisory lock on `<dir>/.lock` until dropped (serialises read-modify-write of
/// the JSON state files between the bridge and the CLI).
pub struct DirLock {
    _file: File,
}

impl DirLock {
    /// Blocks until the lock is held.
    pub fn acquire(dir: &Path) -> Result<Self, JournalError> {
        let path = dir.join(".lock");
        let file = open_append(&path)?;
        file.lock().map_err(|e| JournalError::io(&path, e))?;
        Ok(Self { _file: file })
    }
}

fn temp_path(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!(".{name}.{}.tmp", std::process::id()))
}
