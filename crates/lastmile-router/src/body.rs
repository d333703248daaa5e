//! The response body type the proxy hands to hyper.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::client::conn::http1::SendRequest;

use crate::limits::LimitedBody;
use crate::upstream::InFlight;

/// Either an upstream's streamed body or a small body the router made itself.
#[derive(Debug)]
pub(crate) enum ProxyBody {
    /// Streamed from an upstream; the connection returns to the pool when it ends.
    Upstream { body: Incoming, lease: Lease },
    /// A router-made body (errors), sent once.
    Full(Option<Bytes>),
}

/// Keeps the upstream request counted while the body streams and recycles the connection.
#[derive(Debug)]
pub(crate) struct Lease {
    pub(crate) in_flight: InFlight,
    pub(crate) sender: Option<SendRequest<LimitedBody>>,
    pub(crate) done: bool,
}

impl ProxyBody {
    pub(crate) fn text(s: &'static str) -> ProxyBody {
        ProxyBody::Full(Some(Bytes::from_static(s.as_bytes())))
    }

    pub(crate) fn empty() -> ProxyBody {
        ProxyBody::Full(None)
    }
}

impl Drop for ProxyBody {
    fn drop(&mut self) {
        if let ProxyBody::Upstream { body, lease } = self
            && (lease.done || body.is_end_stream())
            && let Some(sender) = lease.sender.take()
        {
            lease.in_flight.up.put_idle(sender);
        }
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            ProxyBody::Upstream { body, lease } => {
                let r = Pin::new(body).poll_frame(cx);
                if let Poll::Ready(None) = r {
                    lease.done = true;
                }
                r
            }
            ProxyBody::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ProxyBody::Upstream { body, lease } => lease.done || body.is_end_stream(),
            ProxyBody::Full(b) => b.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ProxyBody::Upstream { body, .. } => body.size_hint(),
            ProxyBody::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            ProxyBody::Full(None) => SizeHint::with_exact(0),
        }
    }
}
