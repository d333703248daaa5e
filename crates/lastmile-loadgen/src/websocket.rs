//! The WebSocket worker: opens `ws://target/ws` (or `wss://`, over whatever stream the
//! [`Connector`] opens), sends a text message every 100 ms, expects each one echoed, and
//! reconnects after the server closes it.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::io::{
    AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader, ReadHalf,
    WriteHalf,
};
use tokio::sync::{mpsc, watch};
use tokio::time::MissedTickBehavior;

use crate::connector::Connector;
use crate::frame::{self, Frame};
use crate::http::describe_io;
use crate::report::{FailureKind, Recorder};
use crate::{LoadConfig, stopped};

/// How often a message is sent.
const MESSAGE_INTERVAL: Duration = Duration::from_millis(100);
/// How long an echo may take before the socket counts as dropped.
const ECHO_TIMEOUT: Duration = Duration::from_secs(2);
/// How long the handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long to wait for the server to answer our close when stopping.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);
/// Pause after a dropped socket, so a dead server is not hammered.
const RECONNECT_PAUSE: Duration = Duration::from_millis(100);

/// Close codes a server may use to end a socket on purpose during a deploy.
const CLOSE_NORMAL: u16 = 1000;
const CLOSE_GOING_AWAY: u16 = 1001;
const CLOSE_SERVICE_RESTART: u16 = 1012;

/// The reading side of an open socket; leftover handshake bytes stay in its buffer.
type Reader<S> = BufReader<ReadHalf<S>>;

/// One WebSocket worker; it keeps a socket open (reconnecting as needed) until stopped.
pub(crate) async fn worker<C: Connector>(
    config: Arc<LoadConfig>,
    connector: Arc<C>,
    index: u32,
    recorder: Arc<Recorder>,
    mut stop: watch::Receiver<bool>,
) {
    let mut messages = 0u64;
    while !*stop.borrow() {
        let session = Session {
            config: &config,
            connector: &*connector,
            index,
            recorder: &recorder,
        };
        let end = tokio::select! {
            biased;
            _ = stopped(&mut stop) => return,
            opened = session.open() => opened,
        };
        let end = match end {
            Ok((reader, writer)) => {
                recorder.ws_opened();
                session.run(reader, writer, &mut messages, &mut stop).await
            }
            Err((reason, kind)) => End::NotOpened(reason, kind),
        };
        let (reason, kind) = match end {
            End::Stopped => return,
            End::ClosedClean => {
                recorder.ws_closed_clean();
                continue;
            }
            End::Dropped(reason) => (reason, FailureKind::Other),
            End::NotOpened(reason, kind) => (format!("handshake failed: {reason}"), kind),
        };
        recorder.ws_dropped(&format!("WebSocket {index}: {reason}"), kind);
        tokio::select! {
            _ = stopped(&mut stop) => return,
            _ = tokio::time::sleep(RECONNECT_PAUSE) => {}
        }
    }
}

/// How a socket's life ended.
#[derive(Debug)]
enum End {
    /// We were told to stop and closed it ourselves.
    Stopped,
    /// The server closed it with 1001 or 1012.
    ClosedClean,
    /// Anything else, with a description.
    Dropped(String),
    /// The connection or the upgrade failed, with a description and whether TLS was why.
    NotOpened(String, FailureKind),
}

struct Session<'a, C> {
    config: &'a LoadConfig,
    connector: &'a C,
    index: u32,
    recorder: &'a Recorder,
}

impl<C: Connector> Session<'_, C> {
    /// Connects and completes the handshake.
    async fn open(
        &self,
    ) -> Result<(Reader<C::Stream>, WriteHalf<C::Stream>), (String, FailureKind)> {
        let attempt = async {
            let stream = self
                .connector
                .connect(self.config.target)
                .await
                .map_err(|failure| (failure.reason, failure.kind))?;
            let (reader, mut writer) = tokio::io::split(stream);
            let key = frame::base64(&random_bytes::<16>());
            let host = self.config.host_header();
            let request = format!(
                "GET /ws HTTP/1.1\r\nhost: {host}\r\nupgrade: websocket\r\nconnection: Upgrade\r\n\
                 sec-websocket-key: {key}\r\nsec-websocket-version: 13\r\n\
                 user-agent: lastmile-loadgen\r\n\r\n"
            );
            let sent = async {
                writer.write_all(request.as_bytes()).await?;
                writer.flush().await
            };
            sent.await.map_err(|error| {
                (
                    format!("sending the upgrade: {}", describe_io(&error)),
                    FailureKind::Other,
                )
            })?;
            let mut reader = BufReader::new(reader);
            let head = read_head(&mut reader)
                .await
                .map_err(|reason| (reason, FailureKind::Other))?;
            let status_line = head.lines().next().unwrap_or_default();
            if status_line.split_whitespace().nth(1) != Some("101") {
                return Err((
                    format!("expected 101 Switching Protocols, got {status_line:?}"),
                    FailureKind::Other,
                ));
            }
            let accept = head.lines().find_map(|line| {
                let (name, value) = line.split_once(':')?;
                name.eq_ignore_ascii_case("sec-websocket-accept")
                    .then(|| value.trim().to_string())
            });
            if accept.as_deref() != Some(frame::accept_key(&key).as_str()) {
                return Err((
                    format!("wrong or missing sec-websocket-accept ({accept:?})"),
                    FailureKind::Other,
                ));
            }
            Ok((reader, writer))
        };
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, attempt).await {
            Ok(result) => result,
            Err(_) => Err((
                format!("no upgrade response within {HANDSHAKE_TIMEOUT:?}"),
                FailureKind::Other,
            )),
        }
    }

    /// Sends messages and checks echoes until the socket ends or we are stopped.
    async fn run(
        &self,
        reader: Reader<C::Stream>,
        mut writer: WriteHalf<C::Stream>,
        messages: &mut u64,
        stop: &mut watch::Receiver<bool>,
    ) -> End {
        // Frame reads are not cancel-safe, so a task reads and hands whole frames over.
        let (frames_tx, mut frames) = mpsc::channel(64);
        let reading = tokio::spawn(read_frames(reader, frames_tx));
        let end = self
            .exchange(&mut writer, &mut frames, messages, stop)
            .await;
        reading.abort();
        end
    }

    async fn exchange(
        &self,
        writer: &mut WriteHalf<C::Stream>,
        frames: &mut mpsc::Receiver<io::Result<Frame>>,
        messages: &mut u64,
        stop: &mut watch::Receiver<bool>,
    ) -> End {
        let mut ticks = tokio::time::interval(MESSAGE_INTERVAL);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut pending: Option<(Vec<u8>, Instant)> = None;
        loop {
            tokio::select! {
                biased;
                _ = stopped(stop) => {
                    return self.close(writer, frames).await;
                }
                frame = frames.recv() => {
                    let frame = match frame {
                        Some(Ok(frame)) => frame,
                        Some(Err(error)) => {
                            return End::Dropped(format!(
                                "connection ended without a close frame: {}",
                                describe_io(&error)
                            ));
                        }
                        None => {
                            return End::Dropped("connection ended without a close frame".into());
                        }
                    };
                    match frame.opcode {
                        frame::OP_TEXT | frame::OP_BINARY | frame::OP_CONTINUATION => {
                            match pending.take() {
                                Some((expected, _)) if frame.fin && expected == frame.payload => {
                                    self.recorder.ws_message();
                                }
                                Some((expected, _)) => {
                                    return End::Dropped(format!(
                                        "echo mismatch: sent {:?}, got {:?}",
                                        String::from_utf8_lossy(&expected),
                                        String::from_utf8_lossy(&frame.payload),
                                    ));
                                }
                                None => {
                                    return End::Dropped(format!(
                                        "unexpected message {:?}",
                                        String::from_utf8_lossy(&frame.payload)
                                    ));
                                }
                            }
                        }
                        frame::OP_PING => {
                            if let Err(error) = send(writer, frame::OP_PONG, &frame.payload).await {
                                return self.write_failed(frames, &error);
                            }
                        }
                        frame::OP_CLOSE => return self.server_closed(writer, &frame).await,
                        // Unsolicited pongs are allowed; unknown opcodes are the server's problem.
                        _ => {}
                    }
                }
                _ = ticks.tick() => {
                    if let Some((_, sent)) = &pending {
                        if sent.elapsed() > ECHO_TIMEOUT {
                            return End::Dropped(format!("no echo within {ECHO_TIMEOUT:?}"));
                        }
                        continue;
                    }
                    *messages += 1;
                    let text = format!("loadgen websocket {} message {}", self.index, messages);
                    if let Err(error) = send(writer, frame::OP_TEXT, text.as_bytes()).await {
                        return self.write_failed(frames, &error);
                    }
                    pending = Some((text.into_bytes(), Instant::now()));
                }
            }
        }
    }

    /// The server sent a close frame: answer it, and judge whether it was a clean goodbye.
    async fn server_closed(&self, writer: &mut WriteHalf<C::Stream>, close: &Frame) -> End {
        let code = close.close_code();
        // Echo the status code, as RFC 6455 5.5.1 suggests; the server may already be gone.
        let payload = code
            .map(|code| code.to_be_bytes().to_vec())
            .unwrap_or_default();
        let _ = send(writer, frame::OP_CLOSE, &payload).await;
        let _ = writer.shutdown().await;
        match code {
            Some(CLOSE_GOING_AWAY | CLOSE_SERVICE_RESTART) => End::ClosedClean,
            Some(code) => End::Dropped(format!("server closed with code {code}")),
            None => End::Dropped("server closed without a status code".into()),
        }
    }

    /// A write failed; if the server's close frame is already waiting, that explains it.
    fn write_failed(
        &self,
        frames: &mut mpsc::Receiver<io::Result<Frame>>,
        error: &io::Error,
    ) -> End {
        while let Ok(Ok(frame)) = frames.try_recv() {
            let code = frame.close_code();
            if frame.opcode == frame::OP_CLOSE
                && matches!(code, Some(CLOSE_GOING_AWAY | CLOSE_SERVICE_RESTART))
            {
                return End::ClosedClean;
            }
        }
        End::Dropped(format!(
            "connection ended without a close frame: {}",
            describe_io(error)
        ))
    }

    /// We are stopping: close with 1000 and wait briefly for the server's answer.
    async fn close(
        &self,
        writer: &mut WriteHalf<C::Stream>,
        frames: &mut mpsc::Receiver<io::Result<Frame>>,
    ) -> End {
        let payload = frame::close_payload(CLOSE_NORMAL, "load generator stopping");
        if send(writer, frame::OP_CLOSE, &payload).await.is_ok() {
            let answered = async {
                while let Some(Ok(frame)) = frames.recv().await {
                    if frame.opcode == frame::OP_CLOSE {
                        return;
                    }
                }
            };
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, answered).await;
        }
        let _ = writer.shutdown().await;
        End::Stopped
    }
}

async fn send<W: AsyncWrite + Unpin>(writer: &mut W, opcode: u8, payload: &[u8]) -> io::Result<()> {
    writer
        .write_all(&frame::encode(opcode, payload, Some(random_bytes::<4>())))
        .await?;
    // TLS may hold the frame back in its own buffer until flushed.
    writer.flush().await
}

/// Reads frames until the connection ends or a close frame arrives.
async fn read_frames<S: AsyncRead + Send + 'static>(
    mut reader: Reader<S>,
    frames: mpsc::Sender<io::Result<Frame>>,
) {
    loop {
        let result = frame::read_frame(&mut reader).await;
        let last = !matches!(&result, Ok(frame) if frame.opcode != frame::OP_CLOSE);
        if frames.send(result).await.is_err() || last {
            return;
        }
    }
}

async fn read_head<R: AsyncBufRead + Unpin>(reader: &mut R) -> Result<String, String> {
    let mut head = Vec::new();
    loop {
        let before = head.len();
        let read = reader
            .read_until(b'\n', &mut head)
            .await
            .map_err(|error| format!("reading the upgrade response: {}", describe_io(&error)))?;
        if read == 0 {
            return Err("connection closed before the upgrade response".to_string());
        }
        if head.len() > 64 * 1024 {
            return Err("upgrade response head larger than 64 KiB".to_string());
        }
        if &head[before..] == b"\r\n" || &head[before..] == b"\n" {
            head.truncate(before);
            return String::from_utf8(head).map_err(|_| "upgrade response is not UTF-8".into());
        }
    }
}

/// Masks and keys need to be unpredictable to intermediaries, not cryptographically strong:
/// splitmix64 over a counter seeded from the clock.
fn random_bytes<const N: usize>() -> [u8; N] {
    static STATE: AtomicU64 = AtomicU64::new(0);
    let mut out = [0u8; N];
    for chunk in out.chunks_mut(8) {
        let mut z = STATE.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed);
        if z == 0 {
            let nanos = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos());
            z = nanos as u64;
            STATE.store(z, Ordering::Relaxed);
        }
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        chunk.copy_from_slice(&z.to_le_bytes()[..chunk.len()]);
    }
    out
}
