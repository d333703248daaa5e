//! How a worker gets a fresh connection to the target: plain TCP, or TCP wrapped in TLS (see
//! [`crate::tls`]). The HTTP and WebSocket clients are generic over it, so one worker type
//! serves both and the choice is made once, when the load starts.

use std::future::Future;
use std::net::SocketAddr;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use crate::http::describe_io;
use crate::report::FailureKind;

/// Opens connections to the target.
pub(crate) trait Connector: Send + Sync + 'static {
    /// What a connection reads and writes through.
    type Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static;

    /// Connects to `target`, completing any handshake below HTTP.
    fn connect(
        &self,
        target: SocketAddr,
    ) -> impl Future<Output = Result<Self::Stream, ConnectFailure>> + Send;
}

/// Why no connection could be opened.
#[derive(Debug)]
pub(crate) struct ConnectFailure {
    /// What went wrong, in the words a failure list uses.
    pub(crate) reason: String,
    /// [`FailureKind::Tls`] when TCP connected but TLS failed: a failed handshake, a rejected
    /// certificate, or TLS settings that cannot be used.
    pub(crate) kind: FailureKind,
}

/// Plain TCP: `http://` and `ws://`.
#[derive(Debug)]
pub(crate) struct PlainConnector;

impl Connector for PlainConnector {
    type Stream = TcpStream;

    fn connect(
        &self,
        target: SocketAddr,
    ) -> impl Future<Output = Result<TcpStream, ConnectFailure>> + Send {
        tcp(target)
    }
}

/// Connects over TCP with no delay on small writes.
pub(crate) async fn tcp(target: SocketAddr) -> Result<TcpStream, ConnectFailure> {
    let stream = TcpStream::connect(target)
        .await
        .map_err(|error| ConnectFailure {
            reason: format!("connect to {target}: {}", describe_io(&error)),
            kind: FailureKind::Other,
        })?;
    // Requests are small and latency matters more than packet count.
    let _ = stream.set_nodelay(true);
    Ok(stream)
}
