//! A stream that keeps the first bytes it read, so that an answer that is
//! not HTTP can be quoted in the error.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// How much of the start of an answer is kept.
const KEPT: usize = 256;

/// The first bytes read through a [`Recorded`] stream.
#[derive(Debug, Clone, Default)]
pub(crate) struct FirstBytes(Arc<Mutex<Vec<u8>>>);

impl FirstBytes {
    /// Whether any byte of an answer came.
    pub(crate) fn any(&self) -> bool {
        !self.lock().is_empty()
    }

    /// The first line that came, lossily decoded and cut to 64 characters.
    pub(crate) fn first_line(&self) -> String {
        let bytes = self.lock();
        let line = bytes
            .split(|byte| *byte == b'\n')
            .next()
            .unwrap_or_default();
        String::from_utf8_lossy(line)
            .trim_end()
            .chars()
            .take(64)
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<u8>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// `S`, noting the first bytes read from it in a [`FirstBytes`].
#[derive(Debug)]
pub(crate) struct Recorded<S> {
    inner: S,
    first: FirstBytes,
}

impl<S> Recorded<S> {
    pub(crate) fn new(inner: S, first: FirstBytes) -> Self {
        Recorded { inner, first }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Recorded<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        let mut kept = self.first.lock();
        if kept.len() < KEPT {
            let new = &buf.filled()[before..];
            let room = KEPT - kept.len();
            kept.extend_from_slice(&new[..new.len().min(room)]);
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Recorded<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
