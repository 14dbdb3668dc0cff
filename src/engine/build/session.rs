//! A BuildKit session with the engine: the `/session` endpoint upgraded to HTTP/2, on
//! which the engine calls us (we are the gRPC server): health checks, and the file sync
//! that serves the build context ([`super::filesync`]).

use std::pin::Pin;
use std::task::{Context, Poll};

use bollard_buildkit_proto::health::health_server::{Health, HealthServer};
use bollard_buildkit_proto::health::{
    health_check_response::ServingStatus, HealthCheckRequest, HealthCheckResponse,
    HealthListRequest, HealthListResponse,
};
use bollard_buildkit_proto::moby::filesync::packet::file_sync_server::FileSyncServer;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tonic::{Request, Response, Status};

use super::filesync::Served;

/// The methods the session offers (the engine calls only what is announced).
const METHODS: [&str; 3] = [
    "/grpc.health.v1.Health/Check",
    "/moby.filesync.v1.FileSync/DiffCopy",
    "/moby.filesync.v1.FileSync/TarStream",
];

/// The longest answer to the upgrade request read.
const MAX_HEAD: usize = 16 * 1024;

/// A connection to the engine, over its unix socket or TCP.
pub trait Io: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Io for T {}

/// One connection, as tonic's server wants it.
pub struct Connection(pub Box<dyn Io>);

impl tonic::transport::server::Connected for Connection {
    type ConnectInfo = ();
    fn connect_info(&self) -> Self::ConnectInfo {}
}

impl AsyncRead for Connection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for Connection {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

/// Open a new connection to the engine at `endpoint` (`unix://…`, a socket path, or
/// `tcp://host:port`).
pub async fn dial(endpoint: &str) -> std::io::Result<Connection> {
    if let Some(path) = endpoint
        .strip_prefix("unix://")
        .or_else(|| endpoint.starts_with('/').then_some(endpoint))
    {
        let stream = tokio::net::UnixStream::connect(path).await?;
        return Ok(Connection(Box::new(stream)));
    }
    let address = endpoint
        .strip_prefix("tcp://")
        .or_else(|| endpoint.strip_prefix("http://"))
        .ok_or_else(|| std::io::Error::other(format!("unsupported endpoint `{endpoint}`")))?;
    let stream = tokio::net::TcpStream::connect(address.trim_end_matches('/')).await?;
    Ok(Connection(Box::new(stream)))
}

/// Always serving: the engine drops a session whose health check fails.
struct Healthy;

#[tonic::async_trait]
impl Health for Healthy {
    type WatchStream =
        tonic::codegen::tokio_stream::wrappers::ReceiverStream<Result<HealthCheckResponse, Status>>;

    async fn check(
        &self,
        _request: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        Ok(Response::new(HealthCheckResponse {
            status: ServingStatus::Serving as i32,
        }))
    }

    async fn list(
        &self,
        _request: Request<HealthListRequest>,
    ) -> Result<Response<HealthListResponse>, Status> {
        Err(Status::unimplemented("list"))
    }

    async fn watch(
        &self,
        _request: Request<HealthCheckRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        Err(Status::unimplemented("watch"))
    }
}

/// The session's identity: its ID, a name, and the key under which the engine keeps the
/// context it received (the same key for the same context folder, so the next build
/// finds last build's files and asks only for the changed ones).
pub struct Identity {
    pub id: String,
    pub name: String,
    pub shared_key: String,
}

/// Upgrade `connection` to a session (`api` is `v1.41`-style), then serve `served` on it
/// until the returned task is aborted or the engine hangs up.
pub async fn open(
    mut connection: Connection,
    api: &str,
    identity: &Identity,
    served: Served,
) -> Result<tokio::task::JoinHandle<()>, String> {
    let mut head = format!(
        "POST /{api}/session HTTP/1.1\r\nHost: docker\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\
         Content-Length: 0\r\nX-Docker-Expose-Session-Uuid: {}\r\n\
         X-Docker-Expose-Session-Name: {}\r\nX-Docker-Expose-Session-Sharedkey: {}\r\n",
        identity.id, identity.name, identity.shared_key
    );
    for method in METHODS {
        head.push_str(&format!(
            "X-Docker-Expose-Session-Grpc-Method: {method}\r\n"
        ));
    }
    head.push_str("\r\n");
    let io_error = |e: std::io::Error| format!("the session connection failed: {e}");
    connection
        .write_all(head.as_bytes())
        .await
        .map_err(io_error)?;
    // Read the answer byte by byte: what follows it is already the engine's HTTP/2.
    let mut answer = Vec::new();
    while !answer.ends_with(b"\r\n\r\n") {
        if answer.len() > MAX_HEAD {
            return Err("the engine's answer to the session request is too long".into());
        }
        let byte = connection.read_u8().await.map_err(io_error)?;
        answer.push(byte);
    }
    let answer = String::from_utf8_lossy(&answer);
    let status = answer.lines().next().unwrap_or_default().to_string();
    if !status.contains(" 101 ") {
        return Err(format!("the engine refused a session: {status}"));
    }
    let router = tonic::transport::Server::builder()
        .add_service(HealthServer::new(Healthy))
        .add_service(FileSyncServer::new(served));
    Ok(tokio::spawn(async move {
        let incoming = futures_util::stream::iter([Ok::<_, std::io::Error>(connection)]);
        let _ = router.serve_with_incoming(incoming).await;
    }))
}
