//! The fingerprint of a build: one hash of exactly what the builder would get (the
//! context as [`context::walk`] finds it, the Dockerfile's name, the target stage and the
//! build arguments). It is stored on the image as a label, so an unchanged build is
//! found without a request to the builder. Files are hashed through a cache keyed by
//! path, size, modification and change times and inode (as git's index is), so an
//! unchanged file is not read again.
//!
//! The cache is a hint, never trusted blindly: a cache file that is not a regular file
//! of ours (a symlink, a pipe, one others may write), too large, unreadable, of another
//! format or written for another context is ignored and replaced, and an entry is used
//! only when every part of its key matches the file as it is now and its hash is a
//! well-formed sha256.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::engine::context::Walked;
use crate::error::{Error, Result};
use crate::model::BuildSpec;

/// Bumped when what goes into the hash changes, so an old label never matches.
const VERSION: &str = "stack-build-1";

/// The cache file's format; a file of another format is ignored.
const CACHE_FORMAT: u32 = 2;

/// The largest cache file read (about 300,000 files' entries); a larger one is ignored.
const MAX_CACHE_BYTES: u64 = 64 << 20;

/// A file whose modification or change time is this close to now is not cached: a write
/// within the same clock tick (or the file system's time granularity) could follow the
/// hash unseen.
const RACY_NANOS: i64 = 2_000_000_000;

/// What the cache remembers of one file.
#[derive(serde::Serialize, serde::Deserialize, Clone, PartialEq, Debug)]
struct Known {
    size: u64,
    mtime: i64,
    ctime: i64,
    inode: u64,
    sha256: String,
}

/// The cache file as written.
#[derive(serde::Serialize, serde::Deserialize)]
struct Stored {
    format: u32,
    /// The context folder it was written for.
    context: String,
    files: BTreeMap<String, Known>,
}

/// Content hashes of one context's files, kept between runs.
pub struct HashCache {
    file: Option<PathBuf>,
    context: String,
    /// Files modified or changed at or after this time (nanoseconds) are hashed, not cached.
    racy_from: i64,
    known: BTreeMap<String, Known>,
    fresh: BTreeMap<String, Known>,
    /// Files read (not found in the cache) and their bytes.
    pub read: (u64, u64),
}

/// The part of a file's stat the cache is keyed by: size, modification time, change time
/// (which no one can set back, so a content change with a restored modification time is
/// seen) and inode.
fn key_of(meta: &std::fs::Metadata) -> (u64, i64, i64, u64) {
    let nanos = |seconds: i64, nanos: i64| seconds.saturating_mul(1_000_000_000) + nanos;
    (
        meta.len(),
        nanos(meta.mtime(), meta.mtime_nsec()),
        nanos(meta.ctime(), meta.ctime_nsec()),
        meta.ino(),
    )
}

fn is_sha256(text: &str) -> bool {
    text.len() == 64
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The entries of the cache file at `file` written for `context`; empty when the file is
/// missing or not to be trusted.
fn load(file: &Path, context: &str) -> BTreeMap<String, Known> {
    let Ok(meta) = std::fs::symlink_metadata(file) else {
        return BTreeMap::new();
    };
    // Ours and writable by us alone: a file others may write could claim any hash.
    let ours = meta.is_file() && meta.uid() == effective_uid() && meta.mode() & 0o022 == 0;
    if !ours {
        return BTreeMap::new();
    }
    let Ok(bytes) = crate::fsio::read_bounded(file, MAX_CACHE_BYTES) else {
        return BTreeMap::new();
    };
    match serde_json::from_slice::<Stored>(&bytes) {
        Ok(stored) if stored.format == CACHE_FORMAT && stored.context == context => stored
            .files
            .into_iter()
            .filter(|(_, known)| is_sha256(&known.sha256))
            .collect(),
        _ => BTreeMap::new(),
    }
}

fn effective_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

impl HashCache {
    /// The cache of `context` in the user's cache folder (`$XDG_CACHE_HOME/stack`, else
    /// `~/.cache/stack`); a missing or untrusted cache is an empty one.
    pub fn open(context: &Path) -> HashCache {
        let folder = std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")));
        let file = folder.map(|f| {
            let key = hex(&Sha256::digest(context.as_os_str().as_encoded_bytes()));
            f.join("stack")
                .join("context-hashes")
                .join(format!("{}.json", &key[..24]))
        });
        HashCache::at(file, context)
    }

    /// The cache of `context` kept in `file` (none: nothing kept).
    fn at(file: Option<PathBuf>, context: &Path) -> HashCache {
        let context = context.to_string_lossy().into_owned();
        let known = file
            .as_deref()
            .map(|f| load(f, &context))
            .unwrap_or_default();
        HashCache {
            file,
            context,
            racy_from: now_nanos() - RACY_NANOS,
            known,
            fresh: BTreeMap::new(),
            read: (0, 0),
        }
    }

    /// The content hash of a regular file, from the cache when its stat is unchanged.
    fn sha256(&mut self, rel: &str, path: &Path, meta: &std::fs::Metadata) -> Result<String> {
        let stat = key_of(meta);
        if let Some(known) = self.known.get(rel) {
            if (known.size, known.mtime, known.ctime, known.inode) == stat {
                self.fresh.insert(rel.to_string(), known.clone());
                return Ok(known.sha256.clone());
            }
        }
        let mut file = std::fs::File::open(path).map_err(|e| Error::io("read", path, e))?;
        let mut hasher = Sha256::new();
        std::io::copy(&mut file, &mut hasher).map_err(|e| Error::io("read", path, e))?;
        let sha256 = hex(&hasher.finalize());
        self.read = (self.read.0 + 1, self.read.1 + stat.0);
        if stat.1.max(stat.2) < self.racy_from {
            let known = Known {
                size: stat.0,
                mtime: stat.1,
                ctime: stat.2,
                inode: stat.3,
                sha256: sha256.clone(),
            };
            self.fresh.insert(rel.to_string(), known);
        }
        Ok(sha256)
    }

    /// Write what changed back (files gone from the context are forgotten), readable and
    /// writable by the user alone. A cache that cannot be written only costs the next run
    /// its reads.
    pub fn save(self) {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        let Some(file) = self.file else { return };
        if self.fresh == self.known {
            return;
        }
        let stored = Stored {
            format: CACHE_FORMAT,
            context: self.context,
            files: self.fresh,
        };
        let Ok(text) = serde_json::to_vec(&stored) else {
            return;
        };
        if let Some(folder) = file.parent() {
            let _ = std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(folder);
        }
        let temporary = file.with_extension(format!("tmp{}", std::process::id()));
        let _ = std::fs::remove_file(&temporary);
        let written = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temporary)
            .and_then(|mut f| std::io::Write::write_all(&mut f, &text));
        if written.is_err() || std::fs::rename(&temporary, &file).is_err() {
            let _ = std::fs::remove_file(&temporary);
        }
    }
}

fn now_nanos() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Feed one length-prefixed field.
fn field(hasher: &mut Sha256, bytes: &[u8]) {
    hasher.update((bytes.len() as u64).to_le_bytes());
    hasher.update(bytes);
}

/// The fingerprint (`sha256:…`) of building `walked` with `build`'s Dockerfile, target
/// and arguments. Build argument values are hashed, never stored.
pub fn of(walked: &Walked, build: &BuildSpec, cache: &mut HashCache) -> Result<String> {
    let mut hasher = Sha256::new();
    field(&mut hasher, VERSION.as_bytes());
    for entry in &walked.entries {
        let rel = entry.rel.to_string_lossy();
        field(&mut hasher, rel.as_bytes());
        hasher.update(entry.meta.mode().to_le_bytes());
        let file_type = entry.meta.file_type();
        if file_type.is_symlink() {
            let target =
                std::fs::read_link(&entry.path).map_err(|e| Error::io("read", &entry.path, e))?;
            field(&mut hasher, target.as_os_str().as_encoded_bytes());
        } else if file_type.is_file() {
            let sha256 = cache.sha256(&rel, &entry.path, &entry.meta)?;
            field(&mut hasher, sha256.as_bytes());
        }
    }
    field(&mut hasher, b"dockerfile");
    field(
        &mut hasher,
        build
            .dockerfile
            .as_deref()
            .unwrap_or("Dockerfile")
            .as_bytes(),
    );
    field(&mut hasher, b"target");
    field(
        &mut hasher,
        build.target.as_deref().unwrap_or("").as_bytes(),
    );
    for (name, value) in &build.args {
        field(&mut hasher, name.as_bytes());
        field(&mut hasher, value.as_bytes());
    }
    Ok(format!("sha256:{}", hex(&hasher.finalize())))
}

/// The fingerprint of the build context of `build` as it is now, and the files read for
/// it (count, bytes): those the cache did not know.
pub fn compute(walked: &Walked, build: &BuildSpec) -> Result<(String, (u64, u64))> {
    let mut cache = HashCache::open(&build.context);
    let fingerprint = of(walked, build, &mut cache)?;
    let read = cache.read;
    cache.save();
    Ok((fingerprint, read))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::context;
    use std::time::{Duration, SystemTime};

    fn spec(dir: &Path) -> BuildSpec {
        BuildSpec {
            context: dir.to_path_buf(),
            dockerfile: None,
            target: None,
            args: BTreeMap::new(),
        }
    }

    /// A cache kept in `file` that caches every file, however recent (a test's files are
    /// all written within the racy window).
    fn cache_at(file: Option<PathBuf>, dir: &Path) -> HashCache {
        let mut cache = HashCache::at(file, dir);
        cache.racy_from = i64::MAX;
        cache
    }

    fn fingerprint(dir: &Path, build: &BuildSpec) -> String {
        let walked = context::walk(dir).unwrap();
        of(&walked, build, &mut HashCache::at(None, dir)).unwrap()
    }

    /// The fingerprint through the cache in `file`, which is saved afterwards.
    fn cached(dir: &Path, file: &Path) -> String {
        let walked = context::walk(dir).unwrap();
        let mut cache = cache_at(Some(file.to_path_buf()), dir);
        let fingerprint = of(&walked, &spec(dir), &mut cache).unwrap();
        cache.save();
        fingerprint
    }

    fn set_mtime(path: &Path, time: SystemTime) {
        let file = std::fs::File::options().write(true).open(path).unwrap();
        file.set_modified(time).unwrap();
    }

    fn known(sha256: &str, meta: &std::fs::Metadata) -> Known {
        let (size, mtime, ctime, inode) = key_of(meta);
        Known {
            size,
            mtime,
            ctime,
            inode,
            sha256: sha256.into(),
        }
    }

    /// Makes a hostile cache file at the path given.
    type Make<'a> = Box<dyn Fn(&Path) + 'a>;

    const FAKE: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn changes_with_what_the_builder_gets_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("Dockerfile"), "FROM scratch\n").unwrap();
        std::fs::write(dir.path().join("a.txt"), "one\n").unwrap();
        std::fs::write(dir.path().join(".dockerignore"), "*.log\n").unwrap();
        let build = spec(dir.path());
        let first = fingerprint(dir.path(), &build);
        assert_eq!(first, fingerprint(dir.path(), &build));
        // An ignored file is not sent, so it does not count.
        std::fs::write(dir.path().join("debug.log"), "noise").unwrap();
        assert_eq!(first, fingerprint(dir.path(), &build));
        std::fs::write(dir.path().join("a.txt"), "two\n").unwrap();
        let second = fingerprint(dir.path(), &build);
        assert_ne!(first, second);
        let mut with_arg = spec(dir.path());
        with_arg.args.insert("VERSION".into(), "1".into());
        assert_ne!(second, fingerprint(dir.path(), &with_arg));
        let mut with_target = spec(dir.path());
        with_target.target = Some("runtime".into());
        assert_ne!(second, fingerprint(dir.path(), &with_target));
    }

    #[test]
    fn the_cache_is_used_only_while_every_part_of_the_stat_is_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.txt");
        std::fs::write(&file, "one\n").unwrap();
        let meta = std::fs::symlink_metadata(&file).unwrap();
        let mut cache = cache_at(None, dir.path());
        let real = cache.sha256("a.txt", &file, &meta).unwrap();
        // An entry with the file's stat is used; a stale one (any part differs) is not.
        cache.known.insert("a.txt".into(), known(FAKE, &meta));
        assert_eq!(cache.sha256("a.txt", &file, &meta).unwrap(), FAKE);
        let stale: [fn(&mut Known); 4] = [
            |k| k.size += 1,
            |k| k.mtime -= 1,
            |k| k.ctime -= 1,
            |k| k.inode += 1,
        ];
        for change in stale {
            let mut entry = known(FAKE, &meta);
            change(&mut entry);
            cache.known.insert("a.txt".into(), entry);
            assert_eq!(cache.sha256("a.txt", &file, &meta).unwrap(), real);
        }
    }

    #[test]
    fn same_size_and_a_restored_modification_time_is_still_a_change() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.txt");
        std::fs::write(dir.path().join("Dockerfile"), "FROM scratch\n").unwrap();
        std::fs::write(&file, "aaaa\n").unwrap();
        let old = SystemTime::now() - Duration::from_secs(3600);
        set_mtime(&file, old);
        let outside = tempfile::tempdir().unwrap();
        let cache_file = outside.path().join("cache.json");
        let first = cached(dir.path(), &cache_file);
        // Same size, the modification time set back as `touch -r`, `tar` or `rsync -t`
        // do: the change time moved, so the file is read again. (Written until the
        // kernel's coarse clock has moved: within one tick the change time stays, which
        // is the racy case the real cache leaves uncached.)
        let ctime = |f: &Path| key_of(&std::fs::symlink_metadata(f).unwrap()).2;
        let before = ctime(&file);
        for _ in 0..1_000_000 {
            std::fs::write(&file, "bbbb\n").unwrap();
            set_mtime(&file, old);
            if ctime(&file) != before {
                break;
            }
        }
        assert_ne!(ctime(&file), before, "the change time never moved");
        let second = cached(dir.path(), &cache_file);
        assert_ne!(first, second);
        assert_eq!(second, fingerprint(dir.path(), &spec(dir.path())));
    }

    #[test]
    fn a_file_changed_within_the_clock_tick_of_its_hash_is_not_cached() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.txt");
        std::fs::write(&file, "aaaa\n").unwrap();
        let meta = std::fs::symlink_metadata(&file).unwrap();
        // The real window: a file written just now is hashed, not remembered, so a
        // same-size write in the same tick (same mtime and ctime on a coarse clock) is
        // seen by the next run.
        let mut cache = HashCache::at(None, dir.path());
        cache.sha256("a.txt", &file, &meta).unwrap();
        assert!(cache.fresh.is_empty());
        // An old file is remembered.
        set_mtime(&file, SystemTime::now() - Duration::from_secs(3600));
        let mut cache = HashCache::at(None, dir.path());
        cache.racy_from = key_of(&std::fs::symlink_metadata(&file).unwrap()).2 + 1;
        let meta = std::fs::symlink_metadata(&file).unwrap();
        cache.sha256("a.txt", &file, &meta).unwrap();
        assert!(cache.fresh.contains_key("a.txt"));
    }

    #[test]
    fn a_deleted_file_changes_the_fingerprint_and_leaves_the_cache() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("Dockerfile"), "FROM scratch\n").unwrap();
        std::fs::write(dir.path().join("a.txt"), "one\n").unwrap();
        std::fs::write(dir.path().join("b.txt"), "two\n").unwrap();
        let outside = tempfile::tempdir().unwrap();
        let cache_file = outside.path().join("cache.json");
        let first = cached(dir.path(), &cache_file);
        let context = dir.path().to_string_lossy();
        assert!(load(&cache_file, &context).contains_key("b.txt"));
        std::fs::remove_file(dir.path().join("b.txt")).unwrap();
        let second = cached(dir.path(), &cache_file);
        assert_ne!(first, second);
        let kept = load(&cache_file, &context);
        assert!(!kept.contains_key("b.txt") && kept.contains_key("a.txt"));
        // Written for the user alone.
        let mode = std::fs::metadata(&cache_file).unwrap().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn a_hostile_cache_file_is_ignored_and_replaced() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let context = dir.path().join("context");
        std::fs::create_dir(&context).unwrap();
        std::fs::write(context.join("Dockerfile"), "FROM scratch\n").unwrap();
        let file = context.join("a.txt");
        std::fs::write(&file, "one\n").unwrap();
        let meta = std::fs::symlink_metadata(&file).unwrap();
        let truth = cached(&context, &dir.path().join("truth.json"));
        let name = context.to_string_lossy().into_owned();
        // A cache that would lie about a.txt's content, were it believed.
        let lying = |format: u32, context: &str, sha256: &str| {
            let files = BTreeMap::from([("a.txt".to_string(), known(sha256, &meta))]);
            let stored = Stored {
                format,
                context: context.into(),
                files,
            };
            serde_json::to_vec(&stored).unwrap()
        };
        let cache_file = dir.path().join("cache.json");
        // The control: a well-formed cache of ours is believed.
        std::fs::write(&cache_file, lying(CACHE_FORMAT, &name, FAKE)).unwrap();
        std::fs::set_permissions(&cache_file, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(load(&cache_file, &name).len(), 1);
        let cases: Vec<(&str, Make<'_>)> = vec![
            (
                "garbage",
                Box::new(|f| std::fs::write(f, b"\0{{not json").unwrap()),
            ),
            (
                "another format",
                Box::new(|f| std::fs::write(f, lying(1, &name, FAKE)).unwrap()),
            ),
            (
                "another context",
                Box::new(|f| std::fs::write(f, lying(CACHE_FORMAT, "/elsewhere", FAKE)).unwrap()),
            ),
            (
                "a hash that is not one",
                Box::new(|f| {
                    std::fs::write(f, lying(CACHE_FORMAT, &name, "../../etc/passwd")).unwrap()
                }),
            ),
            (
                "writable by others",
                Box::new(|f| {
                    std::fs::write(f, lying(CACHE_FORMAT, &name, FAKE)).unwrap();
                    std::fs::set_permissions(f, std::fs::Permissions::from_mode(0o666)).unwrap();
                }),
            ),
            (
                "a symlink",
                Box::new(|f| {
                    let target = f.with_extension("target");
                    std::fs::write(&target, lying(CACHE_FORMAT, &name, FAKE)).unwrap();
                    std::os::unix::fs::symlink(&target, f).unwrap();
                }),
            ),
            (
                "a pipe",
                Box::new(|f| {
                    let path = std::ffi::CString::new(f.as_os_str().as_encoded_bytes()).unwrap();
                    // SAFETY: a valid NUL-terminated path.
                    assert_eq!(unsafe { libc::mkfifo(path.as_ptr(), 0o600) }, 0);
                }),
            ),
            (
                "too large",
                Box::new(|f| {
                    std::fs::File::create(f)
                        .unwrap()
                        .set_len(MAX_CACHE_BYTES + 1)
                        .unwrap();
                }),
            ),
        ];
        for (what, make) in cases {
            let _ = std::fs::remove_file(&cache_file);
            make(&cache_file);
            assert!(load(&cache_file, &name).is_empty(), "{what} was believed");
            assert_eq!(cached(&context, &cache_file), truth, "{what}");
            // Replaced by a cache of ours (the Dockerfile and a.txt), which the next run
            // believes.
            let replaced = load(&cache_file, &name);
            assert_eq!(replaced.len(), 2, "{what} was not replaced");
            assert_ne!(replaced["a.txt"].sha256, FAKE);
        }
    }
}
