//! The client side of BuildKit's file sync: the builder asks for a directory (`context`
//! or `dockerfile`), we send one stat per path, and it asks back only for the files it
//! does not hold already (by size and modification time, against its copy from the
//! last build of the same context). Only those files' bytes cross.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bollard_buildkit_proto::fsutil::types::{packet::PacketType, Packet, Stat};
use bollard_buildkit_proto::moby::filesync::packet::file_sync_server::FileSync;
use prost::Message;
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;
use tonic::{Request, Response, Status, Streaming};

use crate::engine::context::{Entry, Patterns};

/// The largest data packet, as the reference sender uses.
const CHUNK: usize = 32 * 1024;

/// Go's `os.FileMode` bits, which the protocol carries.
const GO_DIR: u32 = 1 << 31;
const GO_SYMLINK: u32 = 1 << 27;
const GO_SETUID: u32 = 1 << 23;
const GO_SETGID: u32 = 1 << 22;
const GO_STICKY: u32 = 1 << 20;

/// What one build serves: the context as walked, and the Dockerfile's folder.
pub struct Served {
    pub context: Arc<Vec<Entry>>,
    pub dockerfile_dir: PathBuf,
    pub dockerfile: String,
    /// Bytes of every packet sent so far (stats, data, framing).
    pub sent: Arc<AtomicU64>,
}

/// One path offered to the builder.
struct Offer {
    stat: Stat,
    path: PathBuf,
    is_file: bool,
}

fn go_mode(meta: &std::fs::Metadata) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    let raw = meta.permissions().mode();
    let mut mode = raw & 0o777;
    for (bit, go) in [
        (0o4000, GO_SETUID),
        (0o2000, GO_SETGID),
        (0o1000, GO_STICKY),
    ] {
        if raw & bit != 0 {
            mode |= go;
        }
    }
    if meta.is_dir() {
        mode |= GO_DIR;
    } else if meta.file_type().is_symlink() {
        mode |= GO_SYMLINK;
    }
    mode
}

/// The stat of one path; owners are reset to root, as `docker build` does.
fn stat(rel: &Path, path: &Path, meta: &std::fs::Metadata) -> Stat {
    use std::os::unix::fs::MetadataExt;
    let linkname = if meta.file_type().is_symlink() {
        std::fs::read_link(path)
            .map(|t| t.to_string_lossy().into_owned())
            .unwrap_or_default()
    } else {
        String::new()
    };
    Stat {
        path: rel.to_string_lossy().into_owned(),
        mode: go_mode(meta),
        uid: 0,
        gid: 0,
        size: if meta.is_file() { meta.len() as i64 } else { 0 },
        mod_time: meta.mtime() * 1_000_000_000 + meta.mtime_nsec(),
        linkname,
        devmajor: 0,
        devminor: 0,
        xattrs: Default::default(),
    }
}

/// The paths of `entries` kept by the builder's patterns: an excluded path takes its
/// children with it; with include patterns, a path is kept when it or a parent matches,
/// and a folder when something below it is kept.
fn select<'a>(entries: &'a [Entry], include: &[String], exclude: &[String]) -> Vec<&'a Entry> {
    let exclude = Patterns::new(exclude.iter().map(String::as_str));
    let include_rules = Patterns::new(include.iter().map(String::as_str));
    let kept: Vec<&Entry> = entries
        .iter()
        .filter(|e| !exclude.matches(&e.rel))
        .filter(|e| include.is_empty() || include_rules.matches(&e.rel))
        .collect();
    if include.is_empty() {
        return kept;
    }
    // Parents of what the includes kept, in walk order.
    entries
        .iter()
        .filter(|e| {
            kept.iter().any(|k| std::ptr::eq(*k, *e))
                || (e.meta.is_dir() && kept.iter().any(|k| k.rel.starts_with(&e.rel)))
        })
        .collect()
}

impl Served {
    /// What to offer for the directory `name` the builder asked for.
    fn offers(&self, name: &str, include: &[String], exclude: &[String]) -> Option<Vec<Offer>> {
        let offer = |e: &Entry| Offer {
            stat: stat(&e.rel, &e.path, &e.meta),
            path: e.path.clone(),
            is_file: e.meta.is_file(),
        };
        match name {
            "context" => Some(
                select(&self.context, include, exclude)
                    .into_iter()
                    .map(offer)
                    .collect(),
            ),
            "dockerfile" => {
                // Only the Dockerfile and its own ignore file, never the folder around it.
                let wanted = [
                    self.dockerfile.clone(),
                    format!("{}.dockerignore", self.dockerfile),
                ];
                let mut out = Vec::new();
                for file in wanted {
                    let path = self.dockerfile_dir.join(&file);
                    let Ok(meta) = std::fs::symlink_metadata(&path) else {
                        continue;
                    };
                    let rel = PathBuf::from(&file);
                    let included = include.is_empty()
                        || Patterns::new(include.iter().map(String::as_str)).matches(&rel);
                    if meta.is_file() && included {
                        out.push(Offer {
                            stat: stat(&rel, &path, &meta),
                            path,
                            is_file: true,
                        });
                    }
                }
                Some(out)
            }
            _ => None,
        }
    }
}

/// The values of one request header (gRPC metadata).
fn values(request: &Request<Streaming<Packet>>, key: &str) -> Vec<String> {
    request
        .metadata()
        .get_all(key)
        .iter()
        .filter_map(|v| v.to_str().ok().map(str::to_string))
        .collect()
}

type Sender = mpsc::Sender<Result<Packet, Status>>;

async fn send(tx: &Sender, sent: &AtomicU64, packet: Packet) -> bool {
    sent.fetch_add(packet.encoded_len() as u64 + 5, Ordering::Relaxed);
    tx.send(Ok(packet)).await.is_ok()
}

fn packet(kind: PacketType, id: u32, data: Vec<u8>, stat: Option<Stat>) -> Packet {
    Packet {
        r#type: kind as i32,
        stat,
        id,
        data,
    }
}

/// Send one file's bytes in chunks, then the empty packet that ends it.
async fn send_file(tx: &Sender, sent: &AtomicU64, id: u32, path: &Path) -> Result<(), Status> {
    let mut file = tokio::fs::File::open(path)
        .await
        .map_err(|e| Status::not_found(format!("cannot open {}: {e}", path.display())))?;
    loop {
        let mut buffer = vec![0; CHUNK];
        let read = file
            .read(&mut buffer)
            .await
            .map_err(|e| Status::internal(format!("cannot read {}: {e}", path.display())))?;
        if read == 0 {
            break;
        }
        buffer.truncate(read);
        if !send(tx, sent, packet(PacketType::PacketData, id, buffer, None)).await {
            return Ok(());
        }
    }
    send(
        tx,
        sent,
        packet(PacketType::PacketData, id, Vec::new(), None),
    )
    .await;
    Ok(())
}

/// Answer the builder's requests until it says it is done.
async fn answer(
    mut incoming: Streaming<Packet>,
    tx: Sender,
    sent: Arc<AtomicU64>,
    files: Arc<Vec<(PathBuf, bool)>>,
) {
    while let Ok(Some(request)) = incoming.message().await {
        match PacketType::try_from(request.r#type) {
            Ok(PacketType::PacketReq) => {
                let Some((path, true)) = files.get(request.id as usize) else {
                    let _ = tx.send(Err(Status::invalid_argument("no such file"))).await;
                    return;
                };
                if let Err(status) = send_file(&tx, &sent, request.id, path).await {
                    let _ = tx.send(Err(status)).await;
                    return;
                }
            }
            Ok(PacketType::PacketFin) => {
                send(
                    &tx,
                    &sent,
                    packet(PacketType::PacketFin, 0, Vec::new(), None),
                )
                .await;
                return;
            }
            Ok(PacketType::PacketErr) => return,
            _ => {}
        }
    }
}

#[tonic::async_trait]
impl FileSync for Served {
    type DiffCopyStream =
        tonic::codegen::tokio_stream::wrappers::ReceiverStream<Result<Packet, Status>>;
    type TarStreamStream =
        tonic::codegen::tokio_stream::wrappers::ReceiverStream<Result<Packet, Status>>;

    async fn diff_copy(
        &self,
        request: Request<Streaming<Packet>>,
    ) -> Result<Response<Self::DiffCopyStream>, Status> {
        let name = values(&request, "dir-name").into_iter().next();
        // Paths to follow are included too, as the reference walker does (this is how
        // the builder asks for `.dockerignore` alone).
        let mut include = values(&request, "include-patterns");
        include.extend(values(&request, "followpaths"));
        let exclude = values(&request, "exclude-patterns");
        let offers = name
            .as_deref()
            .and_then(|name| self.offers(name, &include, &exclude))
            .ok_or_else(|| Status::not_found("no such directory in this build"))?;
        let (tx, rx) = mpsc::channel(64);
        let files: Arc<Vec<(PathBuf, bool)>> =
            Arc::new(offers.iter().map(|o| (o.path.clone(), o.is_file)).collect());
        let stats: Vec<Stat> = offers.into_iter().map(|o| o.stat).collect();
        let sent = self.sent.clone();
        let walker = tx.clone();
        tokio::spawn(async move {
            for stat in stats {
                if !send(
                    &walker,
                    &sent,
                    packet(PacketType::PacketStat, 0, Vec::new(), Some(stat)),
                )
                .await
                {
                    return;
                }
            }
            // An empty stat ends the listing.
            send(
                &walker,
                &sent,
                packet(PacketType::PacketStat, 0, Vec::new(), None),
            )
            .await;
        });
        let incoming = request.into_inner();
        tokio::spawn(answer(incoming, tx, self.sent.clone(), files));
        Ok(Response::new(
            tonic::codegen::tokio_stream::wrappers::ReceiverStream::new(rx),
        ))
    }

    async fn tar_stream(
        &self,
        _request: Request<Streaming<Packet>>,
    ) -> Result<Response<Self::TarStreamStream>, Status> {
        Err(Status::unimplemented(
            "stack sends contexts by diff copy only",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path, include: &[&str], exclude: &[&str]) -> Vec<String> {
        let walked = crate::engine::context::walk(dir).unwrap();
        let strings = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        select(&walked.entries, &strings(include), &strings(exclude))
            .iter()
            .map(|e| e.rel.display().to_string())
            .collect()
    }

    #[test]
    fn the_builders_patterns_pick_paths_in_walk_order() {
        let dir = tempfile::tempdir().unwrap();
        for rel in ["a/b.txt", "a.txt", "a/c/d.txt", ".dockerignore", "z.log"] {
            let path = dir.path().join(rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, "x").unwrap();
        }
        // Depth first, siblings by name: the order the receiver checks.
        assert_eq!(
            names(dir.path(), &[], &[]),
            [
                ".dockerignore",
                "a",
                "a/b.txt",
                "a/c",
                "a/c/d.txt",
                "a.txt",
                "z.log"
            ]
        );
        assert_eq!(
            names(dir.path(), &[".dockerignore"], &[]),
            [".dockerignore"]
        );
        assert_eq!(names(dir.path(), &["a/c"], &[]), ["a", "a/c", "a/c/d.txt"]);
        assert_eq!(
            names(dir.path(), &[], &["a", "*.log"]),
            [".dockerignore", "a.txt"]
        );
    }

    #[test]
    fn modes_are_go_file_modes() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, "x").unwrap();
        std::os::unix::fs::symlink("f", dir.path().join("l")).unwrap();
        let meta = |p: &Path| std::fs::symlink_metadata(p).unwrap();
        assert_eq!(go_mode(&meta(dir.path())) & GO_DIR, GO_DIR);
        let link = stat(
            Path::new("l"),
            &dir.path().join("l"),
            &meta(&dir.path().join("l")),
        );
        assert_eq!(link.mode & GO_SYMLINK, GO_SYMLINK);
        assert_eq!(link.linkname, "f");
        let plain = stat(Path::new("f"), &file, &meta(&file));
        assert_eq!((plain.size, plain.mode & (GO_DIR | GO_SYMLINK)), (1, 0));
    }
}
