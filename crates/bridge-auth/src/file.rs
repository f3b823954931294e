//! The credential file `<data dir>/auth.json`: read, atomic write (temporary file created with mode 0600,
//! fsync, rename, directory fsync) and delete.
//!
//! Invariants: the file is never world- or group-readable, not even for an instant (the temporary file is
//! created 0600); a reader sees the old or the new file, never a torn one.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use crate::AuthError;
use crate::credentials::Credentials;

/// Where credentials live inside the data directory.
pub fn credentials_path(data_dir: &Path) -> PathBuf {
    data_dir.join("auth.json")
}

/// The stored credentials, `None` when there is no file.
pub fn load(path: &Path) -> Result<Option<Credentials>, AuthError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(AuthError::io(path, e)),
    };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| AuthError::Corrupt { path: path.to_owned(), message: e.to_string() })
}

/// Creates `dir` and its missing parents with mode 0700 (data directories hold prompts and credentials);
/// an existing directory keeps its mode.
pub fn create_private_dir(dir: &std::path::Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// Replaces the file atomically with mode 0600.
pub fn save(path: &Path, credentials: &Credentials) -> Result<(), AuthError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    create_private_dir(dir).map_err(|e| AuthError::io(dir, e))?;
    let tmp = dir.join(format!(".auth.json.{}.tmp", std::process::id()));
    let text = serde_json::to_string_pretty(credentials)
        .map_err(|e| AuthError::Corrupt { path: path.to_owned(), message: e.to_string() })?;
    let written = (|| {
        let mut f = open_private(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written.map_err(|e| AuthError::io(path, e))
}

/// Removes the file; `Ok(false)` when there was none.
pub fn delete(path: &Path) -> Result<bool, AuthError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(AuthError::io(path, e)),
    }
}

#[cfg(unix)]
fn open_private(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt as _;
    std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path)
}

#[cfg(not(unix))]
fn open_private(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new().write(true).create(true).truncate(true).open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_is_private_and_atomic() {
        let dir = tempfile::tempdir().unwrap();
        let path = credentials_path(&dir.path().join("sub"));
        assert!(load(&path).unwrap().is_none());
        let c = Credentials::ApiKey { api_key: "sk-1".into() };
        save(&path, &c).unwrap();
        save(&path, &c).unwrap();
        assert_eq!(load(&path).unwrap(), Some(c));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        let leftovers: Vec<_> = std::fs::read_dir(path.parent().unwrap()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temporary files left");
        assert!(delete(&path).unwrap());
        assert!(!delete(&path).unwrap());
    }

    #[test]
    fn corrupt_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = credentials_path(dir.path());
        std::fs::write(&path, "{").unwrap();
        assert!(load(&path).unwrap_err().to_string().contains("auth.json"));
    }
}
