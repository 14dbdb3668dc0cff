//! The fingerprint of a build: one hash of exactly what the builder would get (the
//! context as [`context::walk`] finds it, the Dockerfile's name, the target stage and the
//! build arguments). It is stored on the image as a label, so an unchanged build is
//! found without a request to the builder. Files are hashed through a cache keyed by
//! path, size, modification time and inode, so an unchanged file is not read again.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::engine::context::Walked;
use crate::error::{Error, Result};
use crate::model::BuildSpec;

/// Bumped when what goes into the hash changes, so an old label never matches.
const VERSION: &str = "stack-build-1";

/// A file whose modification time is this close to now is not cached: a write within the
/// same clock tick could follow the hash unseen.
const RACY_NANOS: i64 = 2_000_000_000;

/// What the cache remembers of one file.
#[derive(serde::Serialize, serde::Deserialize, Clone, PartialEq)]
struct Known {
    size: u64,
    mtime: i64,
    inode: u64,
    sha256: String,
}

/// Content hashes of one context's files, kept between runs.
pub struct HashCache {
    file: Option<PathBuf>,
    known: BTreeMap<String, Known>,
    fresh: BTreeMap<String, Known>,
}

impl HashCache {
    /// The cache of `context` in the user's cache folder (`$XDG_CACHE_HOME/stack`, else
    /// `~/.cache/stack`); an unreadable cache is an empty one.
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
        let known = file
            .as_ref()
            .and_then(|f| std::fs::read(f).ok())
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default();
        HashCache {
            file,
            known,
            fresh: BTreeMap::new(),
        }
    }

    /// The content hash of a regular file, from the cache when its stat is unchanged.
    fn sha256(&mut self, rel: &str, path: &Path, meta: &std::fs::Metadata) -> Result<String> {
        let mtime = meta.mtime() * 1_000_000_000 + meta.mtime_nsec();
        let stat = (meta.len(), mtime, meta.ino());
        if let Some(known) = self.known.get(rel) {
            if (known.size, known.mtime, known.inode) == stat {
                self.fresh.insert(rel.to_string(), known.clone());
                return Ok(known.sha256.clone());
            }
        }
        let mut file = std::fs::File::open(path).map_err(|e| Error::io("read", path, e))?;
        let mut hasher = Sha256::new();
        std::io::copy(&mut file, &mut hasher).map_err(|e| Error::io("read", path, e))?;
        let sha256 = hex(&hasher.finalize());
        if now_nanos() - mtime > RACY_NANOS {
            let known = Known {
                size: stat.0,
                mtime,
                inode: stat.2,
                sha256: sha256.clone(),
            };
            self.fresh.insert(rel.to_string(), known);
        }
        Ok(sha256)
    }

    /// Write what changed back (files gone from the context are forgotten). A cache that
    /// cannot be written only costs the next run its reads.
    pub fn save(self) {
        let Some(file) = self.file else { return };
        if self.fresh == self.known {
            return;
        }
        let Ok(text) = serde_json::to_vec(&self.fresh) else {
            return;
        };
        if let Some(folder) = file.parent() {
            let _ = std::fs::create_dir_all(folder);
        }
        let temporary = file.with_extension(format!("tmp{}", std::process::id()));
        if std::fs::write(&temporary, text).is_ok() && std::fs::rename(&temporary, &file).is_err() {
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

/// The fingerprint of the build context of `build` as it is now.
pub fn compute(walked: &Walked, build: &BuildSpec) -> Result<String> {
    let mut cache = HashCache::open(&build.context);
    let fingerprint = of(walked, build, &mut cache)?;
    cache.save();
    Ok(fingerprint)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::context;

    fn spec(dir: &Path) -> BuildSpec {
        BuildSpec {
            context: dir.to_path_buf(),
            dockerfile: None,
            target: None,
            args: BTreeMap::new(),
        }
    }

    fn fingerprint(dir: &Path, build: &BuildSpec) -> String {
        let walked = context::walk(dir).unwrap();
        let mut cache = HashCache {
            file: None,
            known: BTreeMap::new(),
            fresh: BTreeMap::new(),
        };
        of(&walked, build, &mut cache).unwrap()
    }

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
    fn the_cache_is_used_only_while_a_file_is_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.txt");
        std::fs::write(&file, "one\n").unwrap();
        let meta = std::fs::symlink_metadata(&file).unwrap();
        let mut cache = HashCache {
            file: None,
            known: BTreeMap::new(),
            fresh: BTreeMap::new(),
        };
        let real = cache.sha256("a.txt", &file, &meta).unwrap();
        // A cache entry with the file's stat is trusted; one with another size is not.
        let stat = |sha256: &str, size: u64| Known {
            size,
            mtime: meta.mtime() * 1_000_000_000 + meta.mtime_nsec(),
            inode: meta.ino(),
            sha256: sha256.into(),
        };
        cache
            .known
            .insert("a.txt".into(), stat("cached", meta.len()));
        assert_eq!(cache.sha256("a.txt", &file, &meta).unwrap(), "cached");
        cache
            .known
            .insert("a.txt".into(), stat("cached", meta.len() + 1));
        assert_eq!(cache.sha256("a.txt", &file, &meta).unwrap(), real);
    }
}
