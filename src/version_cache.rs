//! The remembered versions of Codex binaries, so that a fresh sidecar need
//! not run `codex --version` before its first call.
//!
//! A version is kept for a binary's canonical path together with its size,
//! modification time and inode: an upgrade in place (npm rewrites the files)
//! or a replacement (a rename onto the path) changes one of them, and the
//! binary is asked again. The file is one small JSON document in the pointer
//! dir, replaced atomically (temporary file and rename), so two sidecars
//! starting at once never read half of the other's write. It is only a
//! shortcut: a file that is missing, unreadable, corrupt or written by
//! someone else counts as empty, and failing to write it is only logged.

use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

use semver::Version;
use serde::{Deserialize, Serialize};

/// The file's name inside the pointer dir.
pub(crate) const FILE_NAME: &str = "codex-versions.json";

/// Says that the file is ours and in this shape; any other is ignored.
const FORMAT: &str = "codex-mcp-sidecar/codex-versions/1";

/// The pointer dir's mode when this creates it: the user's own, like the
/// shared app-server's files in it.
const DIR_MODE: u32 = 0o700;

/// How many binaries are remembered. A user has one or two Codex installs
/// (and tests a few pins); more than this are old installs, dropped oldest
/// first so the file never grows.
const MAX_ENTRIES: usize = 8;

/// What identifies one state of a binary on disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BinaryStamp {
    pub path: PathBuf,
    pub size: u64,
    pub mtime_sec: i64,
    pub mtime_nsec: i64,
    pub inode: u64,
}

impl BinaryStamp {
    /// The stamp of the file `path` leads to (symlinks followed); `None`
    /// when it cannot be read.
    pub fn of(path: &Path) -> Option<BinaryStamp> {
        let path = path.canonicalize().ok()?;
        let metadata = std::fs::metadata(&path).ok()?;
        Some(BinaryStamp {
            path,
            size: metadata.size(),
            mtime_sec: metadata.mtime(),
            mtime_nsec: metadata.mtime_nsec(),
            inode: metadata.ino(),
        })
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct CacheFile {
    format: String,
    /// Most recently written last.
    entries: Vec<Entry>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Entry {
    #[serde(flatten)]
    stamp: BinaryStamp,
    version: String,
}

/// The cache in one pointer dir.
#[derive(Debug, Clone)]
pub struct VersionCache {
    file: PathBuf,
}

impl VersionCache {
    pub fn in_dir(dir: &Path) -> VersionCache {
        VersionCache {
            file: dir.join(FILE_NAME),
        }
    }

    /// The version remembered for exactly this state of the binary.
    pub fn get(&self, stamp: &BinaryStamp) -> Option<Version> {
        self.read()
            .entries
            .into_iter()
            .rev()
            .find(|entry| entry.stamp == *stamp)
            .and_then(|entry| Version::parse(&entry.version).ok())
    }

    /// Remembers `version` for `stamp`, replacing what was known about the
    /// same path. Never fails the caller: a cache that cannot be written
    /// only costs the next sidecar a probe.
    pub fn put(&self, stamp: &BinaryStamp, version: &Version) {
        let mut cache = self.read();
        cache.entries.retain(|entry| entry.stamp.path != stamp.path);
        cache.entries.push(Entry {
            stamp: stamp.clone(),
            version: version.to_string(),
        });
        let excess = cache.entries.len().saturating_sub(MAX_ENTRIES);
        cache.entries.drain(..excess);
        cache.format = FORMAT.to_string();
        if let Err(error) = self.write(&cache) {
            tracing::debug!(file = %self.file.display(), %error, "could not remember the Codex version");
        }
    }

    fn read(&self) -> CacheFile {
        std::fs::read(&self.file)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<CacheFile>(&bytes).ok())
            .filter(|cache| cache.format == FORMAT)
            .unwrap_or_default()
    }

    fn write(&self, cache: &CacheFile) -> std::io::Result<()> {
        let dir = self.file.parent().unwrap_or(Path::new("."));
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(DIR_MODE)
            .create(dir)?;
        let mut temp = tempfile::NamedTempFile::new_in(dir)?;
        serde_json::to_writer(&mut temp, cache)?;
        temp.persist(&self.file).map_err(|error| error.error)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binary(dir: &Path, body: &str) -> PathBuf {
        let path = dir.join("codex");
        std::fs::write(&path, body).unwrap();
        path
    }

    #[test]
    fn remembers_a_version_for_the_same_binary_only() {
        let dir = tempfile::tempdir().unwrap();
        let cache = VersionCache::in_dir(&dir.path().join("pointer"));
        let path = binary(dir.path(), "one");
        let stamp = BinaryStamp::of(&path).unwrap();
        assert_eq!(cache.get(&stamp), None);
        cache.put(&stamp, &Version::new(0, 169, 0));
        assert_eq!(cache.get(&stamp), Some(Version::new(0, 169, 0)));
        // Reached through a symlink: the same binary.
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&path, &link).unwrap();
        assert_eq!(BinaryStamp::of(&link).as_ref(), Some(&stamp));

        // Rewritten in place with another size: asked again.
        std::fs::write(&path, "a longer body").unwrap();
        let changed = BinaryStamp::of(&path).unwrap();
        assert_ne!(changed, stamp);
        assert_eq!(cache.get(&changed), None);
        cache.put(&changed, &Version::new(0, 171, 0));
        assert_eq!(cache.get(&changed), Some(Version::new(0, 171, 0)));
        assert_eq!(cache.get(&stamp), None, "one entry a path");
    }

    #[test]
    fn a_touched_binary_of_the_same_size_is_asked_again() {
        let dir = tempfile::tempdir().unwrap();
        let cache = VersionCache::in_dir(dir.path());
        let path = binary(dir.path(), "same");
        let stamp = BinaryStamp::of(&path).unwrap();
        cache.put(&stamp, &Version::new(0, 169, 0));
        let file = std::fs::File::options().write(true).open(&path).unwrap();
        file.set_modified(std::time::SystemTime::UNIX_EPOCH)
            .unwrap();
        let touched = BinaryStamp::of(&path).unwrap();
        assert_eq!(touched.size, stamp.size);
        assert_eq!(cache.get(&touched), None);
    }

    #[test]
    fn a_corrupt_or_foreign_file_is_ignored_and_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let cache = VersionCache::in_dir(dir.path());
        let stamp = BinaryStamp::of(&binary(dir.path(), "x")).unwrap();
        for junk in [
            "not json".to_string(),
            r#"{"format":"someone-else/1","entries":[]}"#.to_string(),
            // Our shape with another format tag.
            serde_json::json!({"format": "x", "entries": [{
                "path": stamp.path, "size": stamp.size, "mtime_sec": stamp.mtime_sec,
                "mtime_nsec": stamp.mtime_nsec, "inode": stamp.inode, "version": "0.169.0"
            }]})
            .to_string(),
            // Ours, but a version that does not parse.
            serde_json::json!({"format": FORMAT, "entries": [{
                "path": stamp.path, "size": stamp.size, "mtime_sec": stamp.mtime_sec,
                "mtime_nsec": stamp.mtime_nsec, "inode": stamp.inode, "version": "banana"
            }]})
            .to_string(),
        ] {
            std::fs::write(dir.path().join(FILE_NAME), &junk).unwrap();
            assert_eq!(cache.get(&stamp), None, "{junk}");
        }
        cache.put(&stamp, &Version::new(0, 170, 0));
        assert_eq!(cache.get(&stamp), Some(Version::new(0, 170, 0)));
    }

    #[test]
    fn keeps_a_bounded_number_of_binaries() {
        let dir = tempfile::tempdir().unwrap();
        let cache = VersionCache::in_dir(dir.path());
        let stamps: Vec<BinaryStamp> = (0..MAX_ENTRIES + 2)
            .map(|n| {
                let path = dir.path().join(format!("codex-{n}"));
                std::fs::write(&path, "").unwrap();
                BinaryStamp::of(&path).unwrap()
            })
            .collect();
        for stamp in &stamps {
            cache.put(stamp, &Version::new(0, 169, 0));
        }
        assert_eq!(cache.read().entries.len(), MAX_ENTRIES);
        assert_eq!(cache.get(&stamps[0]), None, "the oldest went first");
        assert!(cache.get(&stamps[MAX_ENTRIES + 1]).is_some());
    }

    #[test]
    fn an_unwritable_dir_is_not_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("file");
        std::fs::write(&blocker, "").unwrap();
        let cache = VersionCache::in_dir(&blocker.join("pointer"));
        let stamp = BinaryStamp::of(&binary(dir.path(), "x")).unwrap();
        cache.put(&stamp, &Version::new(0, 169, 0));
        assert_eq!(cache.get(&stamp), None);
    }
}
