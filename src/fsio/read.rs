//! Reading what stack wrote or the user gave, with a bound: a bundle directory's files
//! looked at without following links (`build --check`, the server's `.env`), and project
//! files read up to a limit with an error that names the file.

use std::collections::BTreeSet;
use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use super::{list_tree, parse_manifest, MANIFEST, MAX_MANIFEST_BYTES};
use crate::error::{Diagnostic, Error, Result};
use crate::model::Secrets;
use crate::render::Bundle;

/// The largest file of a bundle directory `build --check` reads back: a rendered file
/// is a few kilobytes; a larger one differs and is not shown.
pub const MAX_BUNDLE_FILE_BYTES: u64 = 4 * 1024 * 1024;

/// What a bundle directory holds at one path, looked at without following a symbolic
/// link (neither the path nor a folder on the way) and without opening anything but a
/// regular file.
#[derive(Debug, PartialEq, Eq)]
pub enum Found {
    Missing,
    /// A regular file: its contents when at most the limit, its size and its mode.
    File {
        contents: Option<Vec<u8>>,
        size: u64,
        mode: u32,
    },
    /// Something else (a symbolic link, a directory, a device, a pipe): what it is.
    Other(&'static str),
}

/// Look at `rel` (a relative path of plain components) in `dir`; read it when it is a
/// regular file of at most `limit` bytes.
pub fn inspect(dir: &Path, rel: &str, limit: u64) -> Result<Found> {
    use std::os::unix::fs::OpenOptionsExt;
    let parts: Vec<_> = Path::new(rel).components().collect();
    if parts.is_empty()
        || !parts
            .iter()
            .all(|c| matches!(c, std::path::Component::Normal(_)))
    {
        return Ok(Found::Other("not a path inside the bundle"));
    }
    let mut path = dir.to_path_buf();
    for (index, part) in parts.iter().enumerate() {
        path.push(part);
        let meta = match fs::symlink_metadata(&path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Found::Missing),
            Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => return Ok(Found::Missing),
            Err(e) => return Err(Error::io("read", &path, e)),
        };
        let last = index + 1 == parts.len();
        if !last {
            if !meta.is_dir() {
                return Ok(Found::Other(match file_kind(meta.file_type()) {
                    "a symbolic link" => "below a symbolic link",
                    _ => "below something that is not a folder",
                }));
            }
            continue;
        }
        if !meta.is_file() {
            return Ok(Found::Other(file_kind(meta.file_type())));
        }
        let mode = meta.permissions().mode() & 0o777;
        if meta.len() > limit {
            return Ok(Found::File {
                contents: None,
                size: meta.len(),
                mode,
            });
        }
    }
    // Swapped since the look: no link followed, no pipe waited on, and what was opened
    // is checked again.
    let file = match fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(&path)
    {
        Ok(file) => file,
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Ok(Found::Other("a symbolic link"))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Found::Missing),
        Err(e) => return Err(Error::io("read", &path, e)),
    };
    let meta = file.metadata().map_err(|e| Error::io("read", &path, e))?;
    if !meta.is_file() {
        return Ok(Found::Other(file_kind(meta.file_type())));
    }
    let mut contents = Vec::new();
    file.take(limit + 1)
        .read_to_end(&mut contents)
        .map_err(|e| Error::io("read", &path, e))?;
    let size = contents.len() as u64;
    Ok(Found::File {
        contents: (size <= limit).then_some(contents),
        size,
        mode: meta.permissions().mode() & 0o777,
    })
}

/// One difference between a bundle and the directory that should hold it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stale {
    /// Relative path in the bundle directory.
    pub path: String,
    /// What to print: a unified diff of a file that holds no secret, else one line that
    /// names the file and never shows its contents.
    pub text: String,
}

/// Compare `bundle` with `dir` (for `build --check`): only the files stack writes are
/// read back, without following links and with a bound; only those that hold no secret
/// are diffed. Anything else in `dir` is named, never read.
pub fn compare_bundle(bundle: &Bundle, dir: &Path) -> Result<Vec<Stale>> {
    let mut out = Vec::new();
    for (path, file) in &bundle.files {
        let found = inspect(dir, path, MAX_BUNDLE_FILE_BYTES)?;
        let (contents, size, mode) = match found {
            Found::Missing => {
                out.push(Stale {
                    path: path.clone(),
                    text: format!("`{path}` is missing\n"),
                });
                continue;
            }
            Found::Other(what) => {
                out.push(Stale {
                    path: path.clone(),
                    text: format!("`{path}` is {what}, not the file stack writes (not read)\n"),
                });
                continue;
            }
            Found::File {
                contents,
                size,
                mode,
            } => (contents, size, mode),
        };
        let same_text = contents.as_deref() == Some(file.contents.as_bytes());
        if same_text && mode == file.mode {
            continue;
        }
        let text = if same_text {
            format!("`{path}`: mode is {mode:o}, should be {:o}\n", file.mode)
        } else if file.secret {
            format!("`{path}` differs (secret, not shown)\n")
        } else if let Some(old) = contents {
            similar::TextDiff::from_lines(String::from_utf8_lossy(&old).as_ref(), &file.contents)
                .unified_diff()
                .header(&format!("a/{path}"), &format!("b/{path}"))
                .to_string()
        } else {
            format!("`{path}` differs ({size} bytes, too large to show)\n")
        };
        out.push(Stale {
            path: path.clone(),
            text,
        });
    }
    let listed = match inspect(dir, MANIFEST, MAX_MANIFEST_BYTES)? {
        Found::File {
            contents: Some(bytes),
            ..
        } => parse_manifest(&String::from_utf8_lossy(&bytes)),
        _ => BTreeSet::new(),
    };
    let on_disk = match fs::symlink_metadata(dir) {
        Ok(meta) if meta.is_dir() => list_tree(dir)?,
        _ => Vec::new(),
    };
    for path in on_disk {
        if path == MANIFEST || bundle.files.contains_key(&path) {
            continue;
        }
        let text = if listed.contains(&path) {
            format!("`{path}`: stack no longer writes it (not shown)\n")
        } else {
            format!("`{path}`: extra, stack did not write it (not read)\n")
        };
        out.push(Stale { path, text });
    }
    Ok(out)
}

/// Why a file could not be read by [`read_bounded`].
#[derive(Debug)]
pub enum ReadError {
    Missing,
    /// Not a regular file (after following symbolic links): what it is instead.
    NotAFile(&'static str),
    /// Larger than the limit: the size, when known.
    TooLarge {
        size: Option<u64>,
        limit: u64,
    },
    Denied,
    /// The path itself is wrong (a loop of links, a file where a folder should be).
    BadPath(&'static str),
    Other(std::io::Error),
}

impl ReadError {
    fn from_io(err: std::io::Error) -> Self {
        match err.kind() {
            std::io::ErrorKind::NotFound => ReadError::Missing,
            std::io::ErrorKind::PermissionDenied => ReadError::Denied,
            _ => match err.raw_os_error() {
                Some(libc::ELOOP) => ReadError::BadPath("a loop of symbolic links"),
                Some(libc::ENOTDIR) => ReadError::BadPath("a folder on its path is not a folder"),
                Some(libc::ENAMETOOLONG) => ReadError::BadPath("the path is too long"),
                _ => ReadError::Other(err),
            },
        }
    }

    /// The error for the user: bad input (exit 2) naming `shown`, except failures of
    /// the filesystem itself (exit 3).
    pub fn into_error(self, shown: &str, path: &Path) -> Error {
        let diagnostic = match self {
            ReadError::Missing => Diagnostic::new(format!("`{shown}` does not exist")),
            ReadError::NotAFile(what) => {
                Diagnostic::new(format!("`{shown}` is {what}, not a regular file"))
                    .hint("replace it with a text file, or remove it")
            }
            ReadError::TooLarge { size, limit } => Diagnostic::new(match size {
                Some(size) => format!("`{shown}` is {size} bytes; it may be at most {limit}"),
                None => format!("`{shown}` is larger than {limit} bytes, the most allowed"),
            })
            .hint("a project file holds a few kilobytes of `KEY=VALUE` lines"),
            ReadError::Denied => {
                Diagnostic::new(format!("cannot read `{shown}`: permission denied"))
                    .hint(format!("let your user read it: `chmod u+r {shown}`"))
            }
            ReadError::BadPath(what) => Diagnostic::new(format!("cannot read `{shown}`: {what}"))
                .hint("make it a text file, or remove it"),
            ReadError::Other(err) => return Error::io("read", path, err),
        };
        diagnostic.into()
    }
}

/// What a file that is not a regular file is, for messages.
fn file_kind(kind: fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if kind.is_dir() {
        "a directory"
    } else if kind.is_symlink() {
        "a symbolic link"
    } else if kind.is_fifo() {
        "a named pipe (FIFO)"
    } else if kind.is_char_device() {
        "a character device"
    } else if kind.is_block_device() {
        "a block device"
    } else if kind.is_socket() {
        "a socket"
    } else {
        "something else"
    }
}

/// Read a bundle's `.env` (missing: no secrets).
pub fn read_secrets(bundle: &Path) -> Result<Secrets> {
    let path = bundle.join(crate::render::SECRETS_FILE);
    // Stack wrote it: a regular file (no link followed) of a bounded size.
    let limit = crate::project::syntax::MAX_FILE_BYTES as u64;
    match inspect(bundle, crate::render::SECRETS_FILE, limit)? {
        Found::File {
            contents: Some(bytes),
            ..
        } => Secrets::parse(&path.display().to_string(), &bytes),
        Found::Missing => Ok(Secrets::default()),
        _ => Err(Error::outside(format!(
            "`{}` is not a secrets file stack wrote",
            path.display()
        ))),
    }
}

/// Read a whole file of at most `limit` bytes. Only a regular file (after following
/// symbolic links) is read, its size is checked before reading, and the read itself is
/// bounded, so a device, a pipe or a growing file cannot hang or exhaust memory.
pub fn read_bounded(path: &Path, limit: u64) -> Result<Vec<u8>, ReadError> {
    use std::os::unix::fs::OpenOptionsExt;
    let check = |meta: &fs::Metadata| {
        if !meta.is_file() {
            return Err(ReadError::NotAFile(file_kind(meta.file_type())));
        }
        if meta.len() > limit {
            return Err(ReadError::TooLarge {
                size: Some(meta.len()),
                limit,
            });
        }
        Ok(())
    };
    // Look before opening: opening a device or a pipe can block or have effects.
    check(&fs::metadata(path).map_err(ReadError::from_io)?)?;
    // Non-blocking, so a file swapped for a pipe since the look cannot hang the open;
    // then check what was opened.
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(ReadError::from_io)?;
    check(&file.metadata().map_err(ReadError::from_io)?)?;
    let mut bytes = Vec::new();
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(ReadError::from_io)?;
    if bytes.len() as u64 > limit {
        return Err(ReadError::TooLarge { size: None, limit });
    }
    Ok(bytes)
}
