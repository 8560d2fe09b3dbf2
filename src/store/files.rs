//! The file primitives the store is built on: owner-only directories,
//! whole-line appends to JSONL files that many runs and processes share,
//! atomic replacement of whole files, and a JSONL reader that survives a
//! torn tail. A line exists once its `\n` is on disk; nothing else counts.

use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Seek, SeekFrom, Write};
use std::ops::Range;
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg, OFlag};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::StoreError;
use super::group_sync::Sync;

/// Owner-only: the audit holds prompts, commands and outputs of the project.
pub const DIR_MODE: u32 = 0o700;

/// Owner-only, for the same reason as [`DIR_MODE`].
pub const FILE_MODE: u32 = 0o600;

/// How far back a torn tail is searched per read: one line is usually far
/// smaller, so one read finds the last complete line.
const TAIL_SCAN_CHUNK: usize = 64 * 1024;

/// Temp files are hidden and end in `.tmp`, so no reader that looks for
/// `*.json` or `*.md` mistakes one (left by a crash) for a real file.
const TEMP_PREFIX: &str = ".";
const TEMP_SUFFIX: &str = ".tmp";

/// Creates `path` and any missing parents, owner-only. An existing directory
/// is left as it is: it may be the user's.
pub fn create_private_dir(path: &Path) -> Result<(), StoreError> {
    DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(path)
        .map_err(|source| StoreError::io(path, source))
}

/// [`create_private_dir`] for a directory the store owns (the run directory,
/// `active/`): it must not be a symbolic link, before or after. Checked
/// after too, so a link planted between the check and the create is not
/// taken for "an existing directory". Its ancestors may be links: a user may
/// keep `.codex` on another disk.
pub fn create_owned_dir(path: &Path) -> Result<(), StoreError> {
    refuse_symlink(path)?;
    create_private_dir(path)?;
    refuse_symlink(path)
}

/// Refuses a path that is a symbolic link. The store writes where a prompt
/// run in the project may have written first (the run directory is under
/// the project), and it runs outside Codex's sandbox: writing through a
/// planted link would let the sandboxed side make us append to any file of
/// the user's. A missing path is fine.
pub fn refuse_symlink(path: &Path) -> Result<(), StoreError> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => Err(StoreError::Symlink {
            path: path.to_path_buf(),
        }),
        Ok(_) => Ok(()),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(StoreError::io(path, source)),
    }
}

/// Opens `path` to append, creating it owner-only, never through a symbolic
/// link: `O_NOFOLLOW` makes the kernel refuse a link in the last component
/// at the instant of the open, so no check-then-open race is left.
pub(crate) fn open_append_nofollow(path: &Path, read: bool) -> Result<File, StoreError> {
    OpenOptions::new()
        .read(read)
        .append(true)
        .create(true)
        .mode(FILE_MODE)
        .custom_flags(OFlag::O_NOFOLLOW.bits())
        .open(path)
        .map_err(
            |source| match Errno::from_raw(source.raw_os_error().unwrap_or(0)) {
                // ELOOP is what O_NOFOLLOW answers for a link.
                Errno::ELOOP => StoreError::Symlink {
                    path: path.to_path_buf(),
                },
                _ => StoreError::io(path, source),
            },
        )
}

/// Appends `value` as one compact JSON line. Lines from any number of threads
/// and processes never interleave: see [`append_lines`].
pub fn append_json_line<T: Serialize + ?Sized>(path: &Path, value: &T) -> Result<(), StoreError> {
    append_json_line_with(path, value, Sync::No)
}

/// [`append_json_line`], then, with `Sync::ToDisk`, waits until the line is
/// durable ([`super::group_sync`]: appends made together share one sync).
pub(crate) fn append_json_line_with<T: Serialize + ?Sized>(
    path: &Path,
    value: &T,
    sync: Sync,
) -> Result<(), StoreError> {
    let mut line = serde_json::to_vec(value).map_err(|source| StoreError::Encode {
        path: path.to_path_buf(),
        source,
    })?;
    // Compact serde_json escapes every newline inside strings.
    debug_assert!(!line.contains(&b'\n'));
    line.push(b'\n');
    append_lines_with(path, &line, sync)
}

/// Appends `lines` (whole lines, each ending in `\n`) with one `write_all` on
/// a file opened `O_APPEND`, under an exclusive `flock`. `O_APPEND` alone
/// makes the kernel place each write at the end without interleaving on a
/// local filesystem; the lock also covers network filesystems and a
/// `write_all` that needs more than one `write`. A file is opened per call so
/// that each writer has its own open file description, which is what `flock`
/// locks.
pub(crate) fn append_lines(path: &Path, lines: &[u8]) -> Result<(), StoreError> {
    append_lines_with(path, lines, Sync::No)
}

fn append_lines_with(path: &Path, lines: &[u8], sync: Sync) -> Result<(), StoreError> {
    debug_assert!(lines.ends_with(b"\n"));
    let file = open_append_nofollow(path, true)?;
    let file = match lock_exclusive(file, path) {
        Ok(locked) => {
            drop_torn_tail(&locked, path)
                .and_then(|()| (&*locked).write_all(lines))
                .map_err(|source| StoreError::io(path, source))?;
            // Unlocked before the sync, so that other writers append while
            // it runs and the next sync covers them too.
            match locked.unlock() {
                Ok(file) => file,
                Err((locked, _)) => return super::group_sync::sync_appended(&locked, path, sync),
            }
        }
        // Without the lock another writer may be mid-line: leave the tail.
        Err(file) => {
            (&file)
                .write_all(lines)
                .map_err(|source| StoreError::io(path, source))?;
            file
        }
    };
    super::group_sync::sync_appended(&file, path, sync)
}

/// The file locked, or back unlocked when this filesystem cannot lock (we
/// still append: losing the event would be worse than the lock's extra
/// guarantee).
fn lock_exclusive(mut file: File, path: &Path) -> Result<Flock<File>, File> {
    loop {
        match Flock::lock(file, FlockArg::LockExclusive) {
            Ok(locked) => return Ok(locked),
            Err((back, Errno::EINTR)) => file = back,
            Err((back, errno)) => {
                // Once per process: a filesystem that cannot lock would
                // otherwise log on every line.
                static WARNED: AtomicBool = AtomicBool::new(false);
                if !WARNED.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        path = %path.display(),
                        %errno,
                        "cannot flock; appending with O_APPEND alone"
                    );
                }
                return Err(back);
            }
        }
    }
}

/// A writer killed mid-`write` (SIGKILL stops a large write between pages)
/// or a power loss leaves a last line without its `\n`. That line was never
/// acknowledged, so it is cut off; otherwise the next line would be glued to
/// it and lost too. Only called under the lock, so no live writer is mid-line.
fn drop_torn_tail(file: &File, path: &Path) -> io::Result<()> {
    let len = file.metadata()?.len();
    if len == 0 {
        return Ok(());
    }
    let mut last = [0u8; 1];
    file.read_exact_at(&mut last, len - 1)?;
    if last[0] == b'\n' {
        return Ok(());
    }
    let mut buffer = vec![0u8; TAIL_SCAN_CHUNK];
    let mut end = len;
    let mut keep = 0;
    while end > 0 {
        let start = end.saturating_sub(TAIL_SCAN_CHUNK as u64);
        let chunk = &mut buffer[..(end - start) as usize];
        file.read_exact_at(chunk, start)?;
        if let Some(newline) = chunk.iter().rposition(|&byte| byte == b'\n') {
            keep = start + newline as u64 + 1;
            break;
        }
        end = start;
    }
    tracing::warn!(
        path = %path.display(),
        dropped_bytes = len - keep,
        "cut an unfinished last line left by a crashed writer"
    );
    file.set_len(keep)
}

/// Replaces `path` with `bytes` so that a crash at any instant, a power
/// loss included, leaves either the old content or the new, never a mix or
/// an empty file: a temp file in the same directory (mode 0600 from
/// creation), written, synced, then renamed over the target. The directory
/// is not synced: that would only make the rename itself survive a power
/// loss, which the unsynced appends to the logs around it do not either,
/// and it cost a journal commit (0.2 ms here) on every run's start.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    write_atomic_with(path, Sync::ToDisk, |file| file.write_all(bytes))
}

/// Replaces `path` with `bytes` as [`write_atomic`] does (temp file, rename:
/// a crash of the process leaves the old content or the new), without the
/// fsync, which costs milliseconds on a busy disk. For files that only
/// render what other files hold (the run's Markdown summary renders its
/// JSONL log, which is appended without fsync itself): a power loss may
/// leave an older rendering, never lose a record.
pub fn replace_atomic(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    write_atomic_with(path, Sync::No, |file| file.write_all(bytes))
}

fn write_atomic_with(
    path: &Path,
    sync: Sync,
    fill: impl FnOnce(&mut File) -> io::Result<()>,
) -> Result<(), StoreError> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let name = path.file_name().ok_or_else(|| {
        StoreError::io(
            path,
            io::Error::new(io::ErrorKind::InvalidInput, "not a file name"),
        )
    })?;
    // The temp file is created `O_EXCL` and renamed over the target, which
    // replaces a link there rather than following it; only a linked
    // directory would send the bytes elsewhere.
    refuse_symlink(dir)?;
    let mut temp = tempfile::Builder::new()
        .prefix(&format!("{TEMP_PREFIX}{}.", name.to_string_lossy()))
        .suffix(TEMP_SUFFIX)
        .permissions(std::fs::Permissions::from_mode(FILE_MODE))
        .tempfile_in(dir)
        .map_err(|source| StoreError::io(dir, source))?;
    // On any error below, dropping `temp` removes the temp file.
    fill(temp.as_file_mut())
        .and_then(|()| match sync {
            Sync::ToDisk => temp.as_file().sync_all(),
            Sync::No => Ok(()),
        })
        .map_err(|source| StoreError::io(temp.path(), source))?;
    temp.persist(path)
        .map_err(|error| StoreError::io(path, error.error))?;
    Ok(())
}

/// The range of [`scan_jsonl_range`] that is every line of the file.
pub const WHOLE_FILE: Range<u64> = 0..u64::MAX;

/// Big enough that a 100,000-run index is read in a few hundred `read`s;
/// small enough that a reader holds one buffer, never the whole file.
const READ_BUFFER: usize = 256 * 1024;

/// What a JSONL read left out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Skipped {
    /// Complete lines that did not parse: torn by a power loss, or written
    /// by something else.
    pub bad_lines: usize,
    /// The last line had no `\n`: a writer is appending it right now, or
    /// died mid-line (the next append cuts it off). Never acknowledged, so
    /// not lost data.
    pub unfinished_tail: bool,
    /// The first bad line's parse error, for a log.
    pub first_error: Option<String>,
}

impl Skipped {
    pub fn is_empty(&self) -> bool {
        self.bad_lines == 0 && !self.unfinished_tail
    }
}

/// Hands every complete, non-blank line of a JSONL file (without its `\n`)
/// to `each`, streaming: memory stays one buffer and one line whatever the
/// file's size. A line `each` rejects is counted, not fatal: one bad line
/// must not hide the rest of the audit. A missing file is empty.
///
/// `each` gets bytes, so a caller may parse into borrowed or owned records,
/// or fold lines without keeping them.
pub fn scan_jsonl(
    path: &Path,
    each: impl FnMut(&[u8]) -> Result<(), serde_json::Error>,
) -> Result<Skipped, StoreError> {
    scan_jsonl_range(path, WHOLE_FILE, each)
}

/// [`scan_jsonl`] of the lines that begin in `range`, which must begin at
/// a line's start (0, or a bound from [`split_jsonl`]): so that the parts of
/// a large file can be read side by side.
pub fn scan_jsonl_range(
    path: &Path,
    range: Range<u64>,
    mut each: impl FnMut(&[u8]) -> Result<(), serde_json::Error>,
) -> Result<Skipped, StoreError> {
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Skipped::default()),
        Err(source) => return Err(StoreError::io(path, source)),
    };
    if range.start > 0 {
        file.seek(SeekFrom::Start(range.start))
            .map_err(|source| StoreError::io(path, source))?;
    }
    let mut reader = BufReader::with_capacity(READ_BUFFER, file);
    let mut skipped = Skipped::default();
    let mut line = Vec::new();
    let mut at = range.start;
    while at < range.end {
        line.clear();
        let read = reader
            .read_until(b'\n', &mut line)
            .map_err(|source| StoreError::io(path, source))?;
        if read == 0 {
            break;
        }
        at += read as u64;
        let Some(body) = line.strip_suffix(b"\n") else {
            skipped.unfinished_tail = true;
            break;
        };
        if body.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        if let Err(error) = each(body) {
            skipped.bad_lines += 1;
            skipped.first_error.get_or_insert_with(|| error.to_string());
        }
    }
    Ok(skipped)
}

/// Splits a JSONL file into at most `parts` ranges of whole lines, for
/// [`scan_jsonl_range`]. The last range is open-ended, so lines appended
/// meanwhile are still read. A missing file is one range.
pub fn split_jsonl(path: &Path, parts: usize) -> Result<Vec<Range<u64>>, StoreError> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(vec![WHOLE_FILE]),
        Err(source) => return Err(StoreError::io(path, source)),
    };
    let len = file
        .metadata()
        .map_err(|source| StoreError::io(path, source))?
        .len();
    let parts = parts.max(1) as u64;
    let mut bounds = vec![0];
    let mut chunk = vec![0u8; TAIL_SCAN_CHUNK];
    for part in 1..parts {
        let previous = bounds.last().copied().unwrap_or(0);
        // The line that holds this byte ends the part.
        let mut from = (len * part / parts).max(previous);
        let bound = loop {
            if from >= len {
                break len;
            }
            let read = file
                .read_at(&mut chunk, from)
                .map_err(|source| StoreError::io(path, source))?;
            if read == 0 {
                break len;
            }
            match chunk[..read].iter().position(|&byte| byte == b'\n') {
                Some(newline) => break from + newline as u64 + 1,
                None => from += read as u64,
            }
        };
        if bound > previous && bound < len {
            bounds.push(bound);
        }
    }
    bounds.push(u64::MAX);
    Ok(bounds.windows(2).map(|pair| pair[0]..pair[1]).collect())
}

/// Every complete line of a JSONL file that parses as `T`; a missing file is
/// empty. What [`scan_jsonl`] skips is logged as a warning.
pub fn read_jsonl<T: DeserializeOwned>(path: &Path) -> Result<Vec<T>, StoreError> {
    let mut records = Vec::new();
    let skipped = scan_jsonl(path, |line| {
        records.push(serde_json::from_slice(line)?);
        Ok(())
    })?;
    if !skipped.is_empty() {
        tracing::warn!(
            path = %path.display(),
            bad_lines = skipped.bad_lines,
            unfinished_tail = skipped.unfinished_tail,
            first_error = ?skipped.first_error,
            "skipped JSONL lines that are unfinished or do not parse"
        );
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn dirs_and_files_are_owner_only() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("a/b");
        create_private_dir(&dir).unwrap();
        assert_eq!(mode(&root.path().join("a")), DIR_MODE);
        assert_eq!(mode(&dir), DIR_MODE);
        let log = dir.join("log.jsonl");
        append_json_line(&log, &json!({"a": 1})).unwrap();
        assert_eq!(mode(&log), FILE_MODE);
        let whole = dir.join("whole.json");
        write_atomic(&whole, b"{}").unwrap();
        assert_eq!(mode(&whole), FILE_MODE);
    }

    #[test]
    fn a_failed_atomic_write_keeps_the_old_content_and_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("active.json");
        write_atomic(&path, br#"{"old":true}"#).unwrap();
        let error = write_atomic_with(&path, Sync::ToDisk, |file| {
            file.write_all(br#"{"new":"#)?;
            Err(io::Error::other("disk full"))
        })
        .unwrap_err();
        assert!(error.to_string().contains("disk full"), "{error}");
        assert_eq!(std::fs::read(&path).unwrap(), br#"{"old":true}"#);
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        assert_eq!(names, ["active.json"]);
        write_atomic(&path, br#"{"new":true}"#).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), br#"{"new":true}"#);
    }

    #[test]
    fn appends_refuse_a_symlink_and_atomic_writes_replace_one() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside.txt");
        std::fs::write(&outside, "precious\n").unwrap();
        let link = dir.path().join("index.jsonl");
        std::os::unix::fs::symlink(&outside, &link).unwrap();
        let error = append_json_line(&link, &json!({"a": 1})).unwrap_err();
        assert!(matches!(error, StoreError::Symlink { .. }), "{error}");
        assert!(error.to_string().contains("symbolic link"), "{error}");
        assert_eq!(std::fs::read_to_string(&outside).unwrap(), "precious\n");

        let whole = dir.path().join("active.json");
        std::os::unix::fs::symlink(&outside, &whole).unwrap();
        write_atomic(&whole, b"{}").unwrap();
        assert!(!std::fs::symlink_metadata(&whole).unwrap().is_symlink());
        assert_eq!(std::fs::read_to_string(&outside).unwrap(), "precious\n");

        let linked_dir = dir.path().join("linked");
        let real_dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(real_dir.path(), &linked_dir).unwrap();
        let error = write_atomic(&linked_dir.join("x.json"), b"{}").unwrap_err();
        assert!(matches!(error, StoreError::Symlink { .. }), "{error}");
        assert_eq!(std::fs::read_dir(real_dir.path()).unwrap().count(), 0);
        let error = create_owned_dir(&linked_dir).unwrap_err();
        assert!(matches!(error, StoreError::Symlink { .. }), "{error}");
    }

    #[test]
    fn a_replace_without_sync_is_whole_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.md");
        replace_atomic(&path, b"# first\n").unwrap();
        replace_atomic(&path, b"# second\n").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"# second\n");
        assert_eq!(mode(&path), FILE_MODE);
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        assert_eq!(names, ["run.md"]);
    }

    #[test]
    fn reader_skips_bad_and_torn_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.jsonl");
        assert!(read_jsonl::<Value>(&path).unwrap().is_empty());
        std::fs::write(&path, "{\"n\":1}\n\nnot json\n{\"n\":2}\n{\"n\":3").unwrap();
        let values: Vec<Value> = read_jsonl(&path).unwrap();
        assert_eq!(values, [json!({"n": 1}), json!({"n": 2})]);
        let mut seen = 0;
        let skipped = scan_jsonl(&path, |line| {
            serde_json::from_slice::<Value>(line).map(|_| seen += 1)
        })
        .unwrap();
        assert_eq!(
            (seen, skipped.bad_lines, skipped.unfinished_tail),
            (2, 1, true)
        );
        assert!(skipped.first_error.is_some());
        let missing = scan_jsonl(&dir.path().join("none.jsonl"), |_| Ok(())).unwrap();
        assert!(missing.is_empty());
    }

    #[test]
    fn parts_of_a_file_read_every_line_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.jsonl");
        let mut text = String::new();
        for n in 0..200 {
            text.push_str(&format!(
                "{{\"n\":{n},\"pad\":\"{}\"}}\n",
                "x".repeat(n % 37)
            ));
        }
        text.push_str("{\"n\":");
        std::fs::write(&path, &text).unwrap();
        for parts in [1, 2, 3, 7, 500] {
            let ranges = split_jsonl(&path, parts).unwrap();
            assert!(ranges.len() <= parts, "{ranges:?}");
            assert_eq!(ranges[0].start, 0);
            assert_eq!(ranges.last().unwrap().end, u64::MAX);
            let mut seen = Vec::new();
            let mut unfinished = 0;
            for range in ranges {
                let skipped = scan_jsonl_range(&path, range, |line| {
                    seen.push(
                        serde_json::from_slice::<Value>(line)?["n"]
                            .as_u64()
                            .unwrap(),
                    );
                    Ok(())
                })
                .unwrap();
                assert_eq!(skipped.bad_lines, 0);
                unfinished += usize::from(skipped.unfinished_tail);
            }
            assert_eq!(seen, (0..200).collect::<Vec<u64>>(), "{parts} parts");
            assert_eq!(unfinished, 1);
        }
        let missing = split_jsonl(&dir.path().join("none.jsonl"), 4).unwrap();
        assert_eq!(missing, [WHOLE_FILE]);
    }

    #[test]
    fn an_append_cuts_a_torn_tail_first() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.jsonl");
        let torn = format!("{{\"n\":1}}\n{{\"n\":2,\"pad\":\"{}", "x".repeat(200_000));
        std::fs::write(&path, torn).unwrap();
        append_json_line(&path, &json!({"n": 3})).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "{\"n\":1}\n{\"n\":3}\n"
        );
        std::fs::write(&path, "no newline at all").unwrap();
        append_json_line(&path, &json!({"n": 4})).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{\"n\":4}\n");
    }
}
