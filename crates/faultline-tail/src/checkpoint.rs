//! Checkpoints: one small, versioned JSON file, written atomically.
//!
//! ```json
//! { "version": 1,
//!   "files": [ { "id": "9c0f5a1e2b3d4c5f", "dev": 2049, "ino": 1234567,
//!                "birth": 1714035372413000000, "head_len": 256,
//!                "head_hash": "a1b2c3d4e5f60718", "offset": 52311,
//!                "path": "/home/me/.shotgun/logs/tk-maya.log",
//!                "updated": 1714035400 } ] }
//! ```
//!
//! `offset` is the *acknowledged* offset: everything before it was handed
//! to the consumer and acknowledged, so a restart resumes there. The file
//! is replaced with write-to-temporary, fsync, rename, fsync of the
//! directory, so a crash leaves either the old or the new version.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::identity::{DevIno, FileId, Head};

/// Version written by this crate.
pub const CHECKPOINT_VERSION: u32 = 1;

/// Errors reading or writing the checkpoint file.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// Reading, writing, syncing or renaming failed.
    #[error("checkpoint {path}: {source}")]
    Io {
        /// The checkpoint (or temporary) file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The file is not a checkpoint this crate understands.
    #[error("checkpoint {path} is corrupt: {source}")]
    Corrupt {
        /// The checkpoint file.
        path: PathBuf,
        /// The cause.
        source: serde_json::Error,
    },
    /// Written by a newer version.
    #[error(
        "checkpoint {path} has version {version}, this build reads version {CHECKPOINT_VERSION}"
    )]
    UnsupportedVersion {
        /// The checkpoint file.
        path: PathBuf,
        /// The version found.
        version: u32,
    },
}

/// What is remembered about one file (one [`FileId`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointEntry {
    /// Stream id.
    pub id: FileId,
    /// Device (volume serial on Windows).
    pub dev: u64,
    /// Inode (file index on Windows).
    pub ino: u64,
    /// Birth time in ns since the epoch, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub birth: Option<u64>,
    /// Bytes covered by the head fingerprint.
    pub head_len: u32,
    /// FNV-1a 64 of those bytes, 16 hex digits.
    #[serde(with = "hex_u64")]
    pub head_hash: u64,
    /// Acknowledged offset: resume here.
    pub offset: u64,
    /// Last path the file was seen at (lossy UTF-8; a hint for finding a
    /// rotated file after a restart).
    pub path: String,
    /// Unix seconds when the tailer last saw the file.
    pub updated: u64,
}

impl CheckpointEntry {
    pub(crate) fn devino(&self) -> DevIno {
        DevIno {
            dev: self.dev,
            ino: self.ino,
        }
    }

    pub(crate) fn head(&self) -> Head {
        Head {
            len: self.head_len,
            hash: self.head_hash,
        }
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckpointFileV1 {
    version: u32,
    files: Vec<CheckpointEntry>,
}

#[derive(Deserialize)]
struct VersionOnly {
    version: u32,
}

/// Reads and writes one checkpoint file.
#[derive(Debug, Clone)]
pub struct CheckpointStore {
    path: PathBuf,
}

impl CheckpointStore {
    /// A store for `path` (its directory must exist when saving).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        CheckpointStore { path: path.into() }
    }

    /// The checkpoint file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Loads the entries; `Ok(None)` when there is no checkpoint yet (the
    /// tailer's first start).
    pub fn load(&self) -> Result<Option<Vec<CheckpointEntry>>, CheckpointError> {
        let bytes = match fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(CheckpointError::Io {
                    path: self.path.clone(),
                    source,
                });
            }
        };
        let corrupt = |source| CheckpointError::Corrupt {
            path: self.path.clone(),
            source,
        };
        let v: VersionOnly = serde_json::from_slice(&bytes).map_err(corrupt)?;
        if v.version != CHECKPOINT_VERSION {
            return Err(CheckpointError::UnsupportedVersion {
                path: self.path.clone(),
                version: v.version,
            });
        }
        let file: CheckpointFileV1 = serde_json::from_slice(&bytes).map_err(corrupt)?;
        Ok(Some(file.files))
    }

    /// Replaces the checkpoint atomically with `entries`.
    pub fn save(&self, entries: &[CheckpointEntry]) -> Result<(), CheckpointError> {
        #[derive(Serialize)]
        struct Out<'a> {
            version: u32,
            files: &'a [CheckpointEntry],
        }
        let bytes = serde_json::to_vec_pretty(&Out {
            version: CHECKPOINT_VERSION,
            files: entries,
        })
        .expect("checkpoint entries always serialize");
        write_atomic(&self.path, &bytes)
    }
}

/// Writes `bytes` to `path` so that a crash leaves either the old or the
/// new content: temporary file in the same directory, fsync, rename over
/// the target, fsync of the directory (Unix; Windows has no directory
/// handle to sync and `rename` there is `MoveFileEx(REPLACE_EXISTING)`).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), CheckpointError> {
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(".tmp");
    let tmp = path.with_file_name(tmp_name);
    let io_err = |p: &Path| {
        let p = p.to_path_buf();
        move |source| CheckpointError::Io { path: p, source }
    };
    let mut f = File::create(&tmp).map_err(io_err(&tmp))?;
    f.write_all(bytes).map_err(io_err(&tmp))?;
    f.sync_all().map_err(io_err(&tmp))?;
    drop(f);
    fs::rename(&tmp, path).map_err(io_err(path))?;
    #[cfg(unix)]
    {
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err(dir))?;
    }
    Ok(())
}

mod hex_u64 {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&format_args!("{v:016x}"))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        let s = String::deserialize(d)?;
        u64::from_str_radix(&s, 16).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(n: u64) -> CheckpointEntry {
        CheckpointEntry {
            id: FileId::from_u64(0x1234_5678_9abc_def0 + n),
            dev: 2049,
            ino: 1000 + n,
            birth: n.is_multiple_of(2).then_some(1_714_035_372_413_000_000),
            head_len: 256,
            head_hash: u64::MAX - n,
            offset: 52311 * n,
            path: format!("/logs/tk-{n}.log"),
            updated: 1_714_035_400,
        }
    }

    #[test]
    fn round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::new(dir.path().join("checkpoints.json"));
        assert_eq!(store.load().unwrap(), None);
        let entries: Vec<_> = (0..5).map(entry).collect();
        store.save(&entries).unwrap();
        assert_eq!(store.load().unwrap(), Some(entries.clone()));
        store.save(&entries[..2]).unwrap();
        assert_eq!(store.load().unwrap(), Some(entries[..2].to_vec()));
        let text = fs::read_to_string(store.path()).unwrap();
        assert!(text.contains("\"version\": 1"));
        assert!(text.contains("\"id\": \"123456789abcdef0\""));
        assert!(text.contains("\"head_hash\": \"ffffffffffffffff\""));
    }

    #[test]
    fn atomic_write_leaves_no_temporary_and_replaces_whole() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.json");
        write_atomic(&p, b"first version, longer").unwrap();
        write_atomic(&p, b"second").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"second");
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("c.json")]);
    }

    #[test]
    fn stale_temporary_from_a_crash_is_ignored_and_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::new(dir.path().join("c.json"));
        store.save(&[entry(1)]).unwrap();
        // A crash between create and rename leaves a partial temporary.
        fs::write(dir.path().join("c.json.tmp"), b"{\"version\": 1, \"fi").unwrap();
        assert_eq!(store.load().unwrap(), Some(vec![entry(1)]));
        store.save(&[entry(2)]).unwrap();
        assert_eq!(store.load().unwrap(), Some(vec![entry(2)]));
    }

    #[test]
    fn failed_write_keeps_the_old_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.json");
        let store = CheckpointStore::new(&p);
        store.save(&[entry(1)]).unwrap();
        // Make the temporary path a directory so creating it fails.
        fs::create_dir(dir.path().join("c.json.tmp")).unwrap();
        assert!(matches!(
            store.save(&[entry(2)]),
            Err(CheckpointError::Io { .. })
        ));
        assert_eq!(store.load().unwrap(), Some(vec![entry(1)]));
    }

    #[test]
    fn rejects_corrupt_and_future_versions() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.json");
        let store = CheckpointStore::new(&p);
        fs::write(&p, b"not json").unwrap();
        assert!(matches!(store.load(), Err(CheckpointError::Corrupt { .. })));
        fs::write(&p, br#"{"version": 2, "files": []}"#).unwrap();
        assert!(matches!(
            store.load(),
            Err(CheckpointError::UnsupportedVersion { version: 2, .. })
        ));
        fs::write(&p, br#"{"version": 1, "files": [], "extra": 1}"#).unwrap();
        assert!(matches!(store.load(), Err(CheckpointError::Corrupt { .. })));
    }
}
