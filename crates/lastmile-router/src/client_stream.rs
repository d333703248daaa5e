//! The client side of a connection: plain TCP or TLS over TCP, behind one trait so the HTTP/1.1
//! fast path, hyper and the upgrade relay are monomorphized per stream type (no boxing).

use std::future::Future;
use std::io;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

/// A client connection's byte stream.
pub(crate) trait ClientStream: AsyncRead + AsyncWrite + Unpin + Send + 'static {
    /// Resolves once a read would make progress (bytes, end of stream or an error), so that an
    /// idle connection can wait without holding a read buffer.
    fn wait_readable(&mut self) -> impl Future<Output = io::Result<()>> + Send;
}

impl ClientStream for TcpStream {
    async fn wait_readable(&mut self) -> io::Result<()> {
        self.readable().await
    }
}

impl ClientStream for TlsStream<TcpStream> {
    /// The socket being readable is not enough: rustls may already hold decrypted bytes (or a
    /// close_notify) read along with an earlier record, and then the socket stays quiet forever.
    async fn wait_readable(&mut self) -> io::Result<()> {
        let (tcp, tls) = self.get_mut();
        match tls.process_new_packets() {
            Ok(state) if state.plaintext_bytes_to_read() == 0 && !state.peer_has_closed() => {
                tcp.readable().await
            }
            // Buffered plaintext, a closed peer, or a TLS error the next read reports.
            _ => Ok(()),
        }
    }
}
