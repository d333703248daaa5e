//! Just enough RFC 6455 for an echo endpoint: the handshake key, and the frame codec.
//!
//! SHA-1 and base64 are written out here because hello has no dependencies; they are only used
//! for `Sec-WebSocket-Accept`, where SHA-1's weakness does not matter.

use std::io::{self, Read, Write};

/// The GUID RFC 6455 appends to the client's key before hashing.
const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Largest payload accepted from a client; an echo service has no use for more.
pub const MAX_PAYLOAD: u64 = 16 * 1024 * 1024;

pub const OP_CONTINUATION: u8 = 0x0;
pub const OP_TEXT: u8 = 0x1;
pub const OP_BINARY: u8 = 0x2;
pub const OP_CLOSE: u8 = 0x8;
pub const OP_PING: u8 = 0x9;
pub const OP_PONG: u8 = 0xA;

/// Close code sent when the server is shutting down.
pub const CLOSE_GOING_AWAY: u16 = 1001;
/// Close code for a client that broke the protocol.
pub const CLOSE_PROTOCOL_ERROR: u16 = 1002;

/// The `Sec-WebSocket-Accept` value answering a client's `Sec-WebSocket-Key`.
pub fn accept_key(key: &str) -> String {
    let mut input = key.trim().as_bytes().to_vec();
    input.extend_from_slice(GUID.as_bytes());
    base64(&sha1(&input))
}

/// SHA-1 (FIPS 180-4).
pub fn sha1(message: &[u8]) -> [u8; 20] {
    let mut h: [u32; 5] = [0x6745_2301, 0xEFCD_AB89, 0x98BA_DCFE, 0x1032_5476, 0xC3D2_E1F0];
    let mut padded = message.to_vec();
    padded.push(0x80);
    while padded.len() % 64 != 56 {
        padded.push(0);
    }
    padded.extend_from_slice(&((message.len() as u64).wrapping_mul(8)).to_be_bytes());
    for block in padded.chunks_exact(64) {
        let mut w = [0u32; 80];
        for (i, word) in block.chunks_exact(4).enumerate() {
            w[i] = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
        }
        for i in 16..80 {
            w[i] = (w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]).rotate_left(1);
        }
        let [mut a, mut b, mut c, mut d, mut e] = h;
        for (i, word) in w.iter().enumerate() {
            let (f, k) = match i {
                0..=19 => ((b & c) | (!b & d), 0x5A82_7999),
                20..=39 => (b ^ c ^ d, 0x6ED9_EBA1),
                40..=59 => ((b & c) | (b & d) | (c & d), 0x8F1B_BCDC),
                _ => (b ^ c ^ d, 0xCA62_C1D6),
            };
            let temp = a
                .rotate_left(5)
                .wrapping_add(f)
                .wrapping_add(e)
                .wrapping_add(k)
                .wrapping_add(*word);
            e = d;
            d = c;
            c = b.rotate_left(30);
            b = a;
            a = temp;
        }
        for (state, value) in h.iter_mut().zip([a, b, c, d, e]) {
            *state = state.wrapping_add(value);
        }
    }
    let mut digest = [0u8; 20];
    for (chunk, word) in digest.chunks_exact_mut(4).zip(h) {
        chunk.copy_from_slice(&word.to_be_bytes());
    }
    digest
}

/// Standard base64 with padding (RFC 4648).
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// One frame as it crossed the wire, payload already unmasked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub fin: bool,
    pub opcode: u8,
    pub payload: Vec<u8>,
}

/// Reads one frame. Client frames must be masked (RFC 6455 5.1); an unmasked one is an error.
pub fn read_frame(reader: &mut impl Read) -> io::Result<Frame> {
    let mut head = [0u8; 2];
    reader.read_exact(&mut head)?;
    let fin = head[0] & 0x80 != 0;
    if head[0] & 0x70 != 0 {
        return Err(invalid("reserved bits set without a negotiated extension"));
    }
    let opcode = head[0] & 0x0F;
    let masked = head[1] & 0x80 != 0;
    let mut len = u64::from(head[1] & 0x7F);
    if len == 126 {
        let mut ext = [0u8; 2];
        reader.read_exact(&mut ext)?;
        len = u64::from(u16::from_be_bytes(ext));
    } else if len == 127 {
        let mut ext = [0u8; 8];
        reader.read_exact(&mut ext)?;
        len = u64::from_be_bytes(ext);
    }
    if opcode >= 0x8 && (len > 125 || !fin) {
        return Err(invalid("control frame longer than 125 bytes or fragmented"));
    }
    if len > MAX_PAYLOAD {
        return Err(invalid("frame larger than 16 MiB"));
    }
    if !masked {
        return Err(invalid("client frame is not masked"));
    }
    let mut mask = [0u8; 4];
    reader.read_exact(&mut mask)?;
    let mut payload = vec![0u8; len as usize];
    reader.read_exact(&mut payload)?;
    apply_mask(&mut payload, mask);
    Ok(Frame { fin, opcode, payload })
}

/// XORs the payload with the 4-byte masking key (masking and unmasking are the same).
pub fn apply_mask(payload: &mut [u8], mask: [u8; 4]) {
    for (i, byte) in payload.iter_mut().enumerate() {
        *byte ^= mask[i % 4];
    }
}

/// Encodes a final, unmasked frame, as a server sends them.
pub fn encode_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 10);
    out.push(0x80 | opcode);
    match payload.len() {
        len @ 0..=125 => out.push(len as u8),
        len @ 126..=0xFFFF => {
            out.push(126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        len => {
            out.push(127);
            out.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(payload);
    out
}

/// The payload of a close frame: status code, then a UTF-8 reason.
pub fn close_payload(code: u16, reason: &str) -> Vec<u8> {
    let mut payload = code.to_be_bytes().to_vec();
    payload.extend_from_slice(reason.as_bytes());
    payload
}

/// Writes one frame in a single `write_all`, so frames from two threads never interleave
/// as long as each holds the writer's lock.
pub fn write_frame(writer: &mut impl Write, opcode: u8, payload: &[u8]) -> io::Result<()> {
    writer.write_all(&encode_frame(opcode, payload))?;
    writer.flush()
}

fn invalid(message: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.to_string())
}

/// Reassembles fragmented messages and hands back what the server should do next.
#[derive(Debug, Default)]
pub struct Messages {
    partial: Option<(u8, Vec<u8>)>,
}

/// What a frame asks the server to do.
#[derive(Debug, PartialEq, Eq)]
pub enum Action {
    /// Send this frame back (echo or pong).
    Reply(u8, Vec<u8>),
    /// Nothing yet: a fragment, or an unsolicited pong.
    Nothing,
    /// The client closed: answer with this close payload, then end.
    Close(Vec<u8>),
}

impl Messages {
    /// Feeds one frame; a protocol violation is an error carrying the close code to send.
    pub fn feed(&mut self, frame: Frame) -> Result<Action, u16> {
        match frame.opcode {
            OP_PING => Ok(Action::Reply(OP_PONG, frame.payload)),
            OP_PONG => Ok(Action::Nothing),
            // Echo the status code back, as RFC 6455 5.5.1 suggests; no code means no payload.
            OP_CLOSE => Ok(Action::Close(frame.payload.get(..2).unwrap_or(&[]).to_vec())),
            OP_TEXT | OP_BINARY => {
                if self.partial.is_some() {
                    return Err(CLOSE_PROTOCOL_ERROR);
                }
                if frame.fin {
                    Ok(Action::Reply(frame.opcode, frame.payload))
                } else {
                    self.partial = Some((frame.opcode, frame.payload));
                    Ok(Action::Nothing)
                }
            }
            OP_CONTINUATION => {
                let Some((opcode, mut data)) = self.partial.take() else {
                    return Err(CLOSE_PROTOCOL_ERROR);
                };
                if data.len() as u64 + frame.payload.len() as u64 > MAX_PAYLOAD {
                    return Err(1009);
                }
                data.extend_from_slice(&frame.payload);
                if frame.fin {
                    Ok(Action::Reply(opcode, data))
                } else {
                    self.partial = Some((opcode, data));
                    Ok(Action::Nothing)
                }
            }
            _ => Err(CLOSE_PROTOCOL_ERROR),
        }
    }
}

/// A frame as a client sends it: masked. Tests only; the server never masks.
#[cfg(test)]
pub fn client_frame(fin: bool, opcode: u8, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
    let mut out = encode_frame(opcode, payload);
    if !fin {
        out[0] &= 0x7F;
    }
    let header_len = out.len() - payload.len();
    out[1] |= 0x80;
    let mut body = out.split_off(header_len);
    apply_mask(&mut body, mask);
    out.extend_from_slice(&mask);
    out.extend_from_slice(&body);
    out
}

/// Reads one unmasked frame, as a client receives them. Tests only.
#[cfg(test)]
pub fn read_server_frame(reader: &mut impl Read) -> io::Result<Frame> {
    let mut head = [0u8; 2];
    reader.read_exact(&mut head)?;
    assert_eq!(head[1] & 0x80, 0, "server frames must not be masked");
    let mut len = u64::from(head[1] & 0x7F);
    if len == 126 {
        let mut ext = [0u8; 2];
        reader.read_exact(&mut ext)?;
        len = u64::from(u16::from_be_bytes(ext));
    } else if len == 127 {
        let mut ext = [0u8; 8];
        reader.read_exact(&mut ext)?;
        len = u64::from_be_bytes(ext);
    }
    let mut payload = vec![0u8; len as usize];
    reader.read_exact(&mut payload)?;
    Ok(Frame { fin: head[0] & 0x80 != 0, opcode: head[0] & 0x0F, payload })
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::websocket::client_frame;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn sha1_matches_the_fips_vectors() {
        assert_eq!(hex(&sha1(b"abc")), "a9993e364706816aba3e25717850c26c9cd0d89d");
        assert_eq!(hex(&sha1(b"")), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
        assert_eq!(
            hex(&sha1(b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")),
            "84983e441c3bd26ebaae4aa1f95129e5e54670f1"
        );
        assert_eq!(hex(&sha1(&vec![b'a'; 1_000_000])), "34aa973cd4c4daa4f61eeb2bdbad27316534016f");
    }

    #[test]
    fn base64_matches_the_rfc_4648_vectors() {
        let cases = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (input, expected) in cases {
            assert_eq!(base64(input.as_bytes()), expected, "base64({input:?})");
        }
    }

    #[test]
    fn accept_key_matches_rfc_6455() {
        // RFC 6455 section 1.3 (also what Python's hashlib and base64 give).
        assert_eq!(accept_key("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }

    #[test]
    fn masked_client_frames_decode() {
        // RFC 6455 5.7: a single-frame masked text message containing "Hello".
        let wire = [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58];
        let frame = read_frame(&mut &wire[..]).unwrap();
        assert_eq!(frame, Frame { fin: true, opcode: OP_TEXT, payload: b"Hello".to_vec() });
    }

    #[test]
    fn server_frames_encode_unmasked_with_every_length_form() {
        // RFC 6455 5.7: a single-frame unmasked text message containing "Hello".
        assert_eq!(encode_frame(OP_TEXT, b"Hello"), [0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]);
        let medium = encode_frame(OP_BINARY, &[7; 256]);
        assert_eq!(&medium[..4], &[0x82, 0x7E, 0x01, 0x00]);
        assert_eq!(medium.len(), 4 + 256);
        let large = encode_frame(OP_BINARY, &[7; 65536]);
        assert_eq!(&large[..10], &[0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0]);
        assert_eq!(large.len(), 10 + 65536);
    }

    #[test]
    fn round_trips_through_a_client_mask() {
        for len in [0usize, 1, 125, 126, 65535, 65536, 70000] {
            let payload: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let wire = client_frame(true, OP_BINARY, &payload, [1, 2, 3, 4]);
            let frame = read_frame(&mut &wire[..]).unwrap();
            assert_eq!(frame.payload, payload, "length {len}");
            let echoed = encode_frame(OP_BINARY, &payload);
            assert_eq!(read_server_frame(&mut &echoed[..]).unwrap().payload, payload);
        }
    }

    #[test]
    fn rejects_unmasked_client_frames_and_oversized_control_frames() {
        let unmasked = encode_frame(OP_TEXT, b"hi");
        assert!(read_frame(&mut &unmasked[..]).is_err());
        let big_ping = client_frame(true, OP_PING, &[0; 126], [9, 9, 9, 9]);
        assert!(read_frame(&mut &big_ping[..]).is_err());
        let truncated = &client_frame(true, OP_TEXT, b"hello", [1, 1, 1, 1])[..6];
        assert!(read_frame(&mut &truncated[..]).is_err());
    }

    #[test]
    fn messages_echo_reassemble_pong_and_close() {
        let mut messages = Messages::default();
        let frame = |fin, opcode, payload: &[u8]| Frame { fin, opcode, payload: payload.to_vec() };
        assert_eq!(
            messages.feed(frame(true, OP_TEXT, b"hi")),
            Ok(Action::Reply(OP_TEXT, b"hi".to_vec()))
        );
        assert_eq!(messages.feed(frame(false, OP_BINARY, b"ab")), Ok(Action::Nothing));
        // A ping may arrive between fragments.
        assert_eq!(
            messages.feed(frame(true, OP_PING, b"p")),
            Ok(Action::Reply(OP_PONG, b"p".to_vec()))
        );
        assert_eq!(
            messages.feed(frame(true, OP_CONTINUATION, b"cd")),
            Ok(Action::Reply(OP_BINARY, b"abcd".to_vec()))
        );
        assert_eq!(messages.feed(frame(true, OP_CONTINUATION, b"x")), Err(CLOSE_PROTOCOL_ERROR));
        assert_eq!(
            messages.feed(frame(true, OP_CLOSE, &close_payload(1000, "bye"))),
            Ok(Action::Close(vec![0x03, 0xE8]))
        );
    }
}
