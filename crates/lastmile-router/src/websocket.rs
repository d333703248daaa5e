//! Relay of upgraded connections; for WebSocket, a clean close frame when the upstream vanishes.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;

/// Close frame, status 1012 "service restart": the upstream ended without closing.
pub(crate) const CLOSE_SERVICE_RESTART: [u8; 4] = [0x88, 0x02, 0x03, 0xF4];
/// Close frame, status 1001 "going away": the router's drain grace ran out.
pub(crate) const CLOSE_GOING_AWAY: [u8; 4] = [0x88, 0x02, 0x03, 0xE9];
/// How long a drain close waits for the current frame to finish.
const BOUNDARY_WAIT: Duration = Duration::from_millis(500);

/// Follows frame boundaries of the server→client direction (unmasked frames).
#[derive(Debug, Default)]
pub(crate) struct FrameTracker {
    header: [u8; 14],
    have: usize,
    need: usize,
    remaining: u64,
    /// A close frame (opcode 0x8) went by.
    pub(crate) saw_close: bool,
}

impl FrameTracker {
    /// True between frames.
    pub(crate) fn at_boundary(&self) -> bool {
        self.have == 0 && self.remaining == 0
    }

    /// Consumes relayed bytes.
    pub(crate) fn feed(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            if self.remaining > 0 {
                let take = self.remaining.min(data.len() as u64);
                self.remaining -= take;
                data = &data[take as usize..];
                continue;
            }
            self.header[self.have] = data[0];
            self.have += 1;
            data = &data[1..];
            if self.have == 2 {
                let len7 = self.header[1] & 0x7f;
                let ext = match len7 {
                    126 => 2,
                    127 => 8,
                    _ => 0,
                };
                let mask = if self.header[1] & 0x80 != 0 { 4 } else { 0 };
                self.need = 2 + ext + mask;
            }
            if self.have >= 2 && self.have == self.need {
                let len = match self.header[1] & 0x7f {
                    126 => u64::from(u16::from_be_bytes([self.header[2], self.header[3]])),
                    127 => {
                        let mut b = [0u8; 8];
                        b.copy_from_slice(&self.header[2..10]);
                        u64::from_be_bytes(b)
                    }
                    n => u64::from(n),
                };
                if self.header[0] & 0x0f == 0x8 {
                    self.saw_close = true;
                }
                self.have = 0;
                self.remaining = len;
            }
        }
    }
}

/// Copies both directions until the upstream side ends (or the drain grace runs out).
pub(crate) async fn relay<C, U>(
    client: C,
    upstream: U,
    websocket: bool,
    mut drain: watch::Receiver<u8>,
) where
    C: AsyncRead + AsyncWrite,
    U: AsyncRead + AsyncWrite,
{
    let (mut cr, mut cw) = tokio::io::split(client);
    let (mut ur, mut uw) = tokio::io::split(upstream);

    let client_to_upstream = async {
        let _ = tokio::io::copy(&mut cr, &mut uw).await;
        let _ = uw.shutdown().await;
    };
    let upstream_to_client = async {
        let mut tracker = FrameTracker::default();
        let mut buf = vec![0u8; 16 * 1024];
        let mut closing: Option<tokio::time::Instant> = None;
        let mut watching = true;
        loop {
            if closing.is_some() && (!websocket || tracker.at_boundary() || tracker.saw_close) {
                if websocket && !tracker.saw_close {
                    let _ = cw.write_all(&CLOSE_GOING_AWAY).await;
                }
                break;
            }
            let deadline =
                closing.unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(3600));
            tokio::select! {
                r = ur.read(&mut buf) => match r {
                    Ok(0) | Err(_) => {
                        if websocket && !tracker.saw_close && tracker.at_boundary() {
                            let _ = cw.write_all(&CLOSE_SERVICE_RESTART).await;
                        }
                        break;
                    }
                    Ok(n) => {
                        if websocket {
                            tracker.feed(&buf[..n]);
                        }
                        // Flushed: a TLS client stream holds written bytes until then.
                        if cw.write_all(&buf[..n]).await.is_err() || cw.flush().await.is_err() {
                            break;
                        }
                    }
                },
                over = async { drain.wait_for(|s| *s >= 2).await.is_ok() }, if closing.is_none() && watching => {
                    if over {
                        closing = Some(tokio::time::Instant::now() + BOUNDARY_WAIT);
                    } else {
                        // The router is gone: no drain will come.
                        watching = false;
                    }
                }
                _ = tokio::time::sleep_until(deadline), if closing.is_some() => break,
            }
        }
        let _ = cw.shutdown().await;
    };
    tokio::pin!(client_to_upstream, upstream_to_client);
    let mut client_done = false;
    loop {
        tokio::select! {
            _ = &mut upstream_to_client => break,
            _ = &mut client_to_upstream, if !client_done => client_done = true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::FrameTracker;

    #[test]
    fn tracks_boundaries_across_splits() {
        let mut t = FrameTracker::default();
        // text frame "hello", then a 200-byte binary frame (16-bit length), split oddly.
        let mut bytes = vec![0x81, 5, b'h', b'e', b'l', b'l', b'o', 0x82, 126, 0, 200];
        bytes.extend(std::iter::repeat_n(7u8, 200));
        for chunk in bytes.chunks(3) {
            t.feed(chunk);
        }
        assert!(t.at_boundary());
        t.feed(&[0x81, 5, b'h']);
        assert!(!t.at_boundary());
        t.feed(b"ello");
        assert!(t.at_boundary() && !t.saw_close);
        t.feed(&[0x88, 0x02]);
        assert!(!t.at_boundary());
        t.feed(&[0x03, 0xE8]);
        assert!(t.at_boundary() && t.saw_close);
    }
}
