//! File identity: stream ids, (device, inode), head fingerprints, and the
//! few platform calls the tailer needs (open without blocking the writer,
//! positioned reads, link counts).

use std::collections::hash_map::RandomState;
use std::fmt;
use std::fs::{File, OpenOptions};
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Identity of one byte stream: one file instance between two truncations.
///
/// A `FileId` is assigned when the tailer first sees a file (or sees it
/// truncated or replaced) and is persisted in the checkpoint *before* any
/// record carrying it is returned, so it survives restarts. `(FileId, byte
/// offset)` names a line forever: it is the idempotency key the agent sends.
/// Rendered as 16 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FileId(u64);

impl FileId {
    /// The raw value.
    pub fn as_u64(self) -> u64 {
        self.0
    }

    /// Rebuilds an id from [`FileId::as_u64`].
    pub fn from_u64(v: u64) -> Self {
        FileId(v)
    }

    /// A fresh id: random (per-process SipHash keys) mixed with the clock,
    /// the pid and a counter, so two ids never collide in practice.
    pub(crate) fn fresh() -> Self {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let mut h = RandomState::new().build_hasher();
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        h.write_u128(nanos);
        h.write_u32(std::process::id());
        h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
        FileId(h.finish().max(1))
    }
}

impl fmt::Display for FileId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl fmt::Debug for FileId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FileId({:016x})", self.0)
    }
}

/// Error parsing a [`FileId`] from its hex form.
#[derive(Debug, thiserror::Error)]
#[error("invalid file id {0:?}: expected 16 hex digits")]
pub struct ParseFileIdError(String);

impl FromStr for FileId {
    type Err = ParseFileIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() != 16 {
            return Err(ParseFileIdError(s.to_owned()));
        }
        u64::from_str_radix(s, 16)
            .map(FileId)
            .map_err(|_| ParseFileIdError(s.to_owned()))
    }
}

impl Serialize for FileId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for FileId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Device and inode (on Windows: volume serial number and file index).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub struct DevIno {
    /// Device (volume serial number on Windows).
    pub dev: u64,
    /// Inode (file index on Windows).
    pub ino: u64,
}

/// How many leading bytes the head fingerprint covers at most.
pub const HEAD_BYTES: usize = 256;

/// Fingerprint of the first `len` bytes of a file (`len <= HEAD_BYTES`).
///
/// It grows with the file until it covers [`HEAD_BYTES`]; a file "is still
/// the same" when it is at least `len` bytes long and its first `len` bytes
/// hash to `hash`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Head {
    /// Number of bytes covered.
    pub len: u32,
    /// FNV-1a 64 of those bytes (stable across releases and platforms).
    pub hash: u64,
}

impl Default for Head {
    /// The fingerprint of nothing: every file matches it.
    fn default() -> Self {
        Head::of(&[])
    }
}

impl Head {
    /// The fingerprint of `bytes` (at most [`HEAD_BYTES`] of them are used).
    pub fn of(bytes: &[u8]) -> Head {
        let b = &bytes[..bytes.len().min(HEAD_BYTES)];
        Head {
            len: b.len() as u32,
            hash: fnv1a(b),
        }
    }
}

/// FNV-1a, 64 bit: tiny, stable, good enough to tell two log heads apart.
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Outcome of comparing a file's current head with a known fingerprint.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum HeadCheck {
    /// Same content; the fingerprint, possibly extended to more bytes.
    Same(Head),
    /// The first `known.len` bytes changed (or the file is shorter): the
    /// content was replaced (truncated and rewritten, or inode reused).
    Different,
}

/// Reads the first bytes of `file` and compares them with `known`.
pub(crate) fn check_head(file: &File, known: Head) -> io::Result<HeadCheck> {
    let mut buf = [0u8; HEAD_BYTES];
    let n = read_full_at(file, &mut buf, 0)?;
    let same = known.len == 0
        || (n >= known.len as usize && fnv1a(&buf[..known.len as usize]) == known.hash);
    if !same {
        return Ok(HeadCheck::Different);
    }
    Ok(HeadCheck::Same(Head::of(&buf[..n])))
}

/// Reads until `buf` is full or end of file; returns the count read.
pub(crate) fn read_full_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match read_at(file, &mut buf[n..], offset + n as u64) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// What the tailer needs to know about a file.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Stat {
    pub devino: DevIno,
    pub size: u64,
    /// Hard link count; 0 once the file was deleted (still open by us).
    pub nlink: u64,
    /// Birth time in nanoseconds since the epoch when the platform and file
    /// system report it (statx on Linux, birthtime on macOS, creation time
    /// on Windows); tells an old file from a new one that reused its inode.
    pub birth: Option<u64>,
    /// Last modification, in a platform unit (only compared for equality).
    pub mtime: Option<u64>,
    pub is_file: bool,
}

/// Opens `path` for reading without ever blocking the writer: on Windows
/// with `FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE`, so the
/// application can still append, rename (rotation) and delete the file.
pub(crate) fn open_shared(path: &Path) -> io::Result<File> {
    let mut o = OpenOptions::new();
    o.read(true);
    #[cfg(windows)]
    {
        use std::os::windows::fs::OpenOptionsExt;
        const FILE_SHARE_READ: u32 = 0x1;
        const FILE_SHARE_WRITE: u32 = 0x2;
        const FILE_SHARE_DELETE: u32 = 0x4;
        o.share_mode(FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE);
    }
    o.open(path)
}

#[cfg(unix)]
fn from_meta(m: &std::fs::Metadata) -> Stat {
    use std::os::unix::fs::MetadataExt;
    Stat {
        devino: DevIno {
            dev: m.dev(),
            ino: m.ino(),
        },
        size: m.len(),
        nlink: m.nlink(),
        birth: m
            .created()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map(|d| d.as_nanos() as u64),
        mtime: Some(
            (m.mtime() as u64)
                .wrapping_mul(1_000_000_000)
                .wrapping_add(m.mtime_nsec() as u64),
        ),
        is_file: m.is_file(),
    }
}

/// Stats a path (following symlinks).
#[cfg(unix)]
pub(crate) fn stat_path(path: &Path) -> io::Result<Stat> {
    Ok(from_meta(&std::fs::metadata(path)?))
}

/// Stats an open file.
#[cfg(unix)]
pub(crate) fn stat_file(file: &File) -> io::Result<Stat> {
    Ok(from_meta(&file.metadata()?))
}

#[cfg(unix)]
pub(crate) fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    use std::os::unix::fs::FileExt;
    file.read_at(buf, offset)
}

/// Finds the entry of `dir` that is the file `devino` (after a rename the
/// tailer looks for where the file went, so a restart can finish it).
#[cfg(unix)]
pub(crate) fn locate_in_dir(dir: &Path, devino: DevIno) -> Option<PathBuf> {
    use std::os::unix::fs::DirEntryExt;
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        if entry.ino() == devino.ino {
            let p = entry.path();
            if stat_path(&p).is_ok_and(|s| s.devino == devino) {
                return Some(p);
            }
        }
    }
    None
}

#[cfg(windows)]
pub(crate) fn stat_path(path: &Path) -> io::Result<Stat> {
    let m = std::fs::metadata(path)?;
    if !m.is_file() {
        return Ok(Stat {
            devino: DevIno { dev: 0, ino: 0 },
            size: m.len(),
            nlink: 1,
            birth: None,
            mtime: None,
            is_file: false,
        });
    }
    stat_file(&open_shared(path)?)
}

#[cfg(windows)]
pub(crate) fn stat_file(file: &File) -> io::Result<Stat> {
    let info = winapi_util::file::information(file)?;
    Ok(Stat {
        devino: DevIno {
            dev: info.volume_serial_number(),
            ino: info.file_index(),
        },
        size: info.file_size(),
        nlink: info.number_of_links(),
        birth: info.creation_time(),
        mtime: info.last_write_time(),
        is_file: true,
    })
}

#[cfg(windows)]
pub(crate) fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    use std::os::windows::fs::FileExt;
    file.seek_read(buf, offset)
}

#[cfg(windows)]
pub(crate) fn locate_in_dir(dir: &Path, devino: DevIno) -> Option<PathBuf> {
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let p = entry.path();
        if stat_path(&p).is_ok_and(|s| s.is_file && s.devino == devino) {
            return Some(p);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn file_id_round_trips_through_hex_and_json() {
        let id = FileId::fresh();
        assert_eq!(id.to_string().len(), 16);
        assert_eq!(id.to_string().parse::<FileId>().unwrap(), id);
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(serde_json::from_str::<FileId>(&json).unwrap(), id);
        assert!("xyz".parse::<FileId>().is_err());
        assert_ne!(FileId::fresh(), FileId::fresh());
    }

    #[test]
    fn head_grows_and_detects_replacement() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.log");
        let mut f = File::create(&p).unwrap();
        f.write_all(b"hello\n").unwrap();
        let r = open_shared(&p).unwrap();
        let h = match check_head(&r, Head::default()).unwrap() {
            HeadCheck::Same(h) => h,
            HeadCheck::Different => panic!("empty head always matches"),
        };
        assert_eq!(h.len, 6);
        f.write_all(&[b'x'; 400]).unwrap();
        let h2 = match check_head(&r, h).unwrap() {
            HeadCheck::Same(h) => h,
            HeadCheck::Different => panic!("appending keeps the head"),
        };
        assert_eq!(h2.len as usize, HEAD_BYTES);
        // Truncate and rewrite longer with other content: detected.
        f.set_len(0).unwrap();
        std::fs::write(&p, vec![b'y'; 600]).unwrap();
        assert_eq!(check_head(&r, h2).unwrap(), HeadCheck::Different);
    }
}
