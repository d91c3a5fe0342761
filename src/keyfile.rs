//! The master key when none is configured: a file beside the SQLite store, made once with
//! owner-only permissions. Losing it makes every stored token unreadable.
//!
//! The file appears whole or not at all: the key is written and synced to a temporary file in
//! the same directory, which is then put in place without replacing anything there, so a crash
//! leaves no half-written key and two processes starting at once end with the first one's key.

use std::fs::File;
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::crypto::random_bytes;

pub const FILE_NAME: &str = "encryption.key";

#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("cannot read or create the key file {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the key file {path} does not hold the base64 of 32 bytes")]
    Malformed { path: PathBuf },
    #[error("store.encryption_key is required with PostgreSQL")]
    NotForPostgres,
}

/// Reads the key at `path`, or creates it (mode 0600). Returns whether it was created.
pub fn load_or_create(path: &Path) -> Result<([u8; 32], bool), KeyFileError> {
    let io = |source| KeyFileError::Io {
        path: path.to_owned(),
        source,
    };
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir).map_err(io)?;
    // Each turn either returns or saw another process change the file under it; the next
    // turn reads what that process left. Only a few: a file that keeps changing is an error.
    for _ in 0..TURNS {
        let kind = match std::fs::symlink_metadata(path) {
            Ok(metadata) => Some(metadata.file_type()),
            Err(error) if error.kind() == ErrorKind::NotFound => None,
            Err(error) => return Err(io(error)),
        };
        match kind {
            None => {
                if let Some(key) = create(path, dir).map_err(io)? {
                    return Ok((key, true));
                }
            }
            Some(kind) if kind.is_file() => match std::fs::read(path) {
                // Only a crash of an older version, between creating the file and writing it,
                // leaves it empty: it never held a key, so no token was sealed with one.
                Ok(text) if text.is_empty() => {
                    if let Some(key) = replace_empty(path, dir).map_err(io)? {
                        return Ok((key, true));
                    }
                }
                Ok(text) => return decode(&text, path).map(|key| (key, false)),
                // Gone since it was looked at: the next turn sees what is there now.
                Err(error) if error.kind() == ErrorKind::NotFound => {}
                Err(error) => return Err(io(error)),
            },
            // A symbolic link (to a mounted secret, say) is read through, never replaced: an
            // empty or missing target is the operator's to mend, not a reason for a new key.
            Some(_) => {
                let text = std::fs::read(path).map_err(io)?;
                return decode(&text, path).map(|key| (key, false));
            }
        }
    }
    Err(io(std::io::Error::other(
        "it kept changing while it was being read or created",
    )))
}

/// How many times the key file is looked at before its changing under this process is an error.
const TURNS: usize = 8;

fn decode(text: &[u8], path: &Path) -> Result<[u8; 32], KeyFileError> {
    std::str::from_utf8(text)
        .ok()
        .and_then(|text| STANDARD.decode(text.trim()).ok())
        .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
        .ok_or_else(|| KeyFileError::Malformed {
            path: path.to_owned(),
        })
}

/// A new key, written and synced to a temporary file in `dir` (mode 0600: tempfile's own).
fn new_key_file(dir: &Path) -> std::io::Result<([u8; 32], tempfile::NamedTempFile)> {
    let key = random_bytes::<32>();
    let mut file = tempfile::Builder::new()
        .prefix(".encryption.key.")
        .tempfile_in(dir)?;
    writeln!(file, "{}", STANDARD.encode(key))?;
    file.as_file().sync_all()?;
    Ok((key, file))
}

/// Puts a new key at `path` unless something is there already (then `None`: another process
/// won, and its key is the one to read).
fn create(path: &Path, dir: &Path) -> std::io::Result<Option<[u8; 32]>> {
    let (key, file) = new_key_file(dir)?;
    // Linked (or renamed with RENAME_NOREPLACE) into place: never over an existing file. On
    // failure the temporary file is removed when `error.file` drops.
    match file.persist_noclobber(path) {
        Ok(_) => {}
        Err(error) if error.error.kind() == ErrorKind::AlreadyExists => return Ok(None),
        Err(error) => return Err(error.error),
    }
    File::open(dir)?.sync_all()?;
    Ok(Some(key))
}

/// Replaces the empty file at `path` with a new key, unless another process got there first
/// (then `None`). The empty file's lock makes the check and the replacement one step for
/// every process doing the same.
fn replace_empty(path: &Path, dir: &Path) -> std::io::Result<Option<[u8; 32]>> {
    let empty = match File::open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(error),
    };
    empty.lock()?;
    let locked = empty.metadata()?;
    let still_there = std::fs::symlink_metadata(path).is_ok_and(|now| {
        use std::os::unix::fs::MetadataExt;
        now.dev() == locked.dev() && now.ino() == locked.ino()
    });
    if !still_there || locked.len() != 0 {
        return Ok(None);
    }
    let (key, file) = new_key_file(dir)?;
    file.persist(path).map_err(|error| error.error)?;
    File::open(dir)?.sync_all()?;
    Ok(Some(key))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;
    use std::sync::{Arc, Barrier};

    use super::*;

    #[test]
    fn creates_once_with_owner_only_permissions_then_reads_the_same_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data").join(FILE_NAME);
        let (key, created) = load_or_create(&path).unwrap();
        assert!(created);
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(load_or_create(&path).unwrap(), (key, false));
        only_the_key_file_is_left(dir.path().join("data"));
    }

    #[test]
    fn a_symbolic_link_is_read_through_and_never_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        // To a key elsewhere (a mounted secret): its key.
        let (key, _) = load_or_create(&dir.path().join("elsewhere").join(FILE_NAME)).unwrap();
        std::os::unix::fs::symlink(dir.path().join("elsewhere").join(FILE_NAME), &path).unwrap();
        assert_eq!(load_or_create(&path).unwrap(), (key, false));
        // To nothing, or to something empty: an error, and the link stays as it was.
        for target in [dir.path().join("missing"), PathBuf::from("/dev/null")] {
            std::fs::remove_file(&path).unwrap();
            std::os::unix::fs::symlink(&target, &path).unwrap();
            let refused = load_or_create(&path);
            assert!(
                matches!(
                    refused,
                    Err(KeyFileError::Io { .. } | KeyFileError::Malformed { .. })
                ),
                "{refused:?}"
            );
            assert_eq!(std::fs::read_link(&path).unwrap(), target);
        }
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2, "no key file left behind: {names:?}");
    }

    #[test]
    fn a_damaged_key_file_is_an_error_not_a_new_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        std::fs::write(&path, "not a key").unwrap();
        assert!(matches!(
            load_or_create(&path),
            Err(KeyFileError::Malformed { .. })
        ));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "not a key");
    }

    #[test]
    fn an_empty_file_left_by_a_crash_is_replaced_by_a_key_with_owner_only_permissions() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        std::fs::write(&path, "").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let (key, created) = load_or_create(&path).unwrap();
        assert!(created);
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(load_or_create(&path).unwrap(), (key, false));
        only_the_key_file_is_left(dir.path().to_owned());
    }

    #[test]
    fn processes_starting_at_once_all_use_the_one_key_that_was_created() {
        for leftover in [None, Some("")] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join(FILE_NAME);
            if let Some(text) = leftover {
                std::fs::write(&path, text).unwrap();
            }
            let starting = Arc::new(Barrier::new(8));
            let results: Vec<_> = (0..8)
                .map(|_| {
                    let (path, starting) = (path.clone(), Arc::clone(&starting));
                    std::thread::spawn(move || {
                        starting.wait();
                        load_or_create(&path).unwrap()
                    })
                })
                .collect::<Vec<_>>()
                .into_iter()
                .map(|thread| thread.join().unwrap())
                .collect();
            let on_disk = decode(&std::fs::read(&path).unwrap(), &path).unwrap();
            assert!(
                results.iter().all(|(key, _)| *key == on_disk),
                "{leftover:?}"
            );
            assert_eq!(
                results.iter().filter(|(_, created)| *created).count(),
                1,
                "{leftover:?}"
            );
            only_the_key_file_is_left(dir.path().to_owned());
        }
    }

    #[test]
    fn missing_directories_are_created() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a").join("b").join(FILE_NAME);
        assert!(load_or_create(&path).unwrap().1);
        only_the_key_file_is_left(dir.path().join("a").join("b"));
    }

    /// No temporary file is left beside the key.
    fn only_the_key_file_is_left(dir: PathBuf) {
        let names: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        assert_eq!(names, [FILE_NAME]);
    }
}
