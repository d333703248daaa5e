//! Chunked transfer-coding framing, followed byte by byte so a body can be relayed verbatim
//! (or decoded for an HTTP/1.0 client) while the proxy still knows where it ends.
//!
//! The grammar is RFC 9112 §7.1 to the letter, because the body is forwarded verbatim: whatever
//! this parser accepts, the next hop must read the same way. So chunk sizes are hex digits with
//! no whitespace after them, chunk extensions are `;name[=token|"quoted"]` with optional
//! whitespace around `;` and `=` only, trailer fields are `token ":" value` lines, and every line
//! ends in CRLF (a bare LF or CR, or any control byte, is an error). Trailers that would change
//! framing or routing if a recipient merged them into the header section (`content-length`,
//! `transfer-encoding`, `host`, `connection`) are refused. In a request body, size lines,
//! extensions and trailers together may not exceed the chunk data by more than [`MAX_META`]
//! bytes, so a client cannot stream framing without limit (the data is bounded by the
//! listener's `max_body_bytes`), while an upload in many small chunks still passes. A response body ([`Chunked::response`]) may have any number of
//! chunks (a stream of events can last for hours); each size line, and the trailer section, is
//! bounded by [`MAX_META`] on its own.

/// The framing is broken (bad size line, missing CRLF, size overflow, bad extension or trailer).
#[derive(Debug)]
pub(crate) struct Invalid;

/// Most bytes of size lines, extensions and trailers beyond the chunk data of one request body,
/// or in one size line or the trailer section of a response body.
pub(crate) const MAX_META: u32 = 64 * 1024;

/// A chunk size needs at most this many significant hex digits (2^60 bytes is plenty).
const MAX_SIZE_DIGITS: u8 = 15;

/// Trailer names that may not appear (framing, routing, connection control).
const FORBIDDEN_TRAILERS: [&[u8]; 4] = [
    b"content-length",
    b"transfer-encoding",
    b"host",
    b"connection",
];
/// Longest name in `FORBIDDEN_TRAILERS`: longer names are not compared.
const NAME_PREFIX: usize = 17;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Hex digits of a chunk size.
    Size,
    /// Whitespace after the size: only `;` may follow.
    SizeWs,
    /// After `;`, before an extension name.
    ExtPreName,
    ExtName,
    /// Whitespace after an extension name: `=` or `;` may follow.
    ExtPostName,
    /// After `=`, before the value.
    ExtPreValue,
    ExtToken,
    ExtQuoted,
    ExtQuotedPair,
    /// After a value: CR, `;` or whitespace.
    ExtAfterValue,
    /// Whitespace after a value: only `;` may follow.
    ExtValueWs,
    SizeLf,
    Data,
    DataCr,
    DataLf,
    TrailerStart,
    TrailerName,
    TrailerValue,
    TrailerLf,
    EndLf,
    Done,
}

/// Position inside a chunked body.
#[derive(Debug)]
pub(crate) struct Chunked {
    state: State,
    size: u64,
    /// A hex digit of the current size went by.
    digit_seen: bool,
    /// Significant (after leading zeros) digits of the current size.
    digits: u8,
    /// Chunk data bytes so far (the body's decoded length).
    data: u64,
    /// Bytes of size lines, extensions and trailers so far (since the last chunk began, for a
    /// response).
    meta: u64,
    /// `meta` restarts at every chunk (a response body), instead of counting the whole body.
    meta_per_chunk: bool,
    /// The current trailer name, lowercased, as far as `NAME_PREFIX` bytes.
    name: [u8; NAME_PREFIX],
    name_len: u8,
}

impl Chunked {
    /// A request body: its size lines, extensions and trailers total at most the chunk data
    /// plus `MAX_META` bytes.
    pub(crate) fn new() -> Chunked {
        Chunked {
            state: State::Size,
            size: 0,
            digit_seen: false,
            digits: 0,
            data: 0,
            meta: 0,
            meta_per_chunk: false,
            name: [0; NAME_PREFIX],
            name_len: 0,
        }
    }

    /// A response body: any number of chunks, each size line (and the trailers) at most
    /// `MAX_META` bytes. A streamed response (server-sent events, long polls) sends a chunk per
    /// event for as long as it lasts, so a total would cut it off after some thousands.
    pub(crate) fn response() -> Chunked {
        Chunked {
            meta_per_chunk: true,
            ..Chunked::new()
        }
    }

    /// The last chunk, the trailers and the final CRLF went by.
    pub(crate) fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Chunk data bytes seen so far (what the body decodes to), for body size limits.
    pub(crate) fn data_len(&self) -> u64 {
        self.data
    }

    /// Follows `data`; returns how many of its bytes belong to the body (all of them unless the
    /// body ends inside `data`). `payload` receives the ranges of chunk data, for decoding.
    pub(crate) fn feed(
        &mut self,
        data: &[u8],
        mut payload: impl FnMut(usize, usize),
    ) -> Result<usize, Invalid> {
        let mut i = 0;
        while i < data.len() {
            let b = data[i];
            if self.state == State::Data {
                let take = self.size.min((data.len() - i) as u64) as usize;
                payload(i, i + take);
                i += take;
                self.size -= take as u64;
                self.data += take as u64;
                if self.size == 0 {
                    self.state = State::DataCr;
                }
                continue;
            }
            if self.state == State::Done {
                return Ok(i);
            }
            self.meta += 1;
            let allowed = if self.meta_per_chunk {
                u64::from(MAX_META)
            } else {
                u64::from(MAX_META) + self.data
            };
            if self.meta > allowed {
                return Err(Invalid);
            }
            self.state = self.step(b)?;
            i += 1;
            if self.state == State::Done {
                return Ok(i);
            }
        }
        Ok(i)
    }

    /// The state after byte `b` (outside chunk data).
    fn step(&mut self, b: u8) -> Result<State, Invalid> {
        let ws = b == b' ' || b == b'\t';
        let next = match self.state {
            State::Size => match hex(b) {
                Some(v) => {
                    if self.digits > 0 || v != 0 {
                        if self.digits >= MAX_SIZE_DIGITS {
                            return Err(Invalid);
                        }
                        self.digits += 1;
                    }
                    self.size = self.size * 16 + u64::from(v);
                    self.digit_seen = true;
                    State::Size
                }
                None if !self.digit_seen => return Err(Invalid),
                None if b == b'\r' => State::SizeLf,
                None if b == b';' => State::ExtPreName,
                None if ws => State::SizeWs,
                None => return Err(Invalid),
            },
            State::SizeWs | State::ExtValueWs => match b {
                b';' => State::ExtPreName,
                _ if ws => self.state,
                _ => return Err(Invalid),
            },
            State::ExtPreName => match b {
                _ if ws => State::ExtPreName,
                _ if is_tchar(b) => State::ExtName,
                _ => return Err(Invalid),
            },
            State::ExtName => match b {
                _ if is_tchar(b) => State::ExtName,
                b'\r' => State::SizeLf,
                b';' => State::ExtPreName,
                b'=' => State::ExtPreValue,
                _ if ws => State::ExtPostName,
                _ => return Err(Invalid),
            },
            State::ExtPostName => match b {
                _ if ws => State::ExtPostName,
                b'=' => State::ExtPreValue,
                b';' => State::ExtPreName,
                _ => return Err(Invalid),
            },
            State::ExtPreValue => match b {
                _ if ws => State::ExtPreValue,
                b'"' => State::ExtQuoted,
                _ if is_tchar(b) => State::ExtToken,
                _ => return Err(Invalid),
            },
            State::ExtToken => match b {
                _ if is_tchar(b) => State::ExtToken,
                b'\r' => State::SizeLf,
                b';' => State::ExtPreName,
                _ if ws => State::ExtValueWs,
                _ => return Err(Invalid),
            },
            State::ExtQuoted => match b {
                b'"' => State::ExtAfterValue,
                b'\\' => State::ExtQuotedPair,
                // qdtext: HTAB / SP / %x21 / %x23-5B / %x5D-7E / obs-text
                b'\t' | b' ' | 0x21 | 0x23..=0x5b | 0x5d..=0x7e | 0x80..=0xff => State::ExtQuoted,
                _ => return Err(Invalid),
            },
            State::ExtQuotedPair => match b {
                b'\t' | b' ' | 0x21..=0x7e | 0x80..=0xff => State::ExtQuoted,
                _ => return Err(Invalid),
            },
            State::ExtAfterValue => match b {
                b'\r' => State::SizeLf,
                b';' => State::ExtPreName,
                _ if ws => State::ExtValueWs,
                _ => return Err(Invalid),
            },
            State::SizeLf => {
                if b != b'\n' {
                    return Err(Invalid);
                }
                if self.size == 0 {
                    State::TrailerStart
                } else {
                    State::Data
                }
            }
            State::DataCr => {
                if b != b'\r' {
                    return Err(Invalid);
                }
                State::DataLf
            }
            State::DataLf => {
                if b != b'\n' {
                    return Err(Invalid);
                }
                self.digit_seen = false;
                self.digits = 0;
                if self.meta_per_chunk {
                    self.meta = 0;
                }
                State::Size
            }
            State::TrailerStart => match b {
                b'\r' => State::EndLf,
                _ if is_tchar(b) => {
                    self.name_len = 0;
                    self.push_name(b);
                    State::TrailerName
                }
                _ => return Err(Invalid),
            },
            State::TrailerName => match b {
                _ if is_tchar(b) => {
                    self.push_name(b);
                    State::TrailerName
                }
                b':' => {
                    let name = &self.name[..usize::from(self.name_len)];
                    if FORBIDDEN_TRAILERS.contains(&name) {
                        return Err(Invalid);
                    }
                    State::TrailerValue
                }
                _ => return Err(Invalid),
            },
            State::TrailerValue => match b {
                b'\r' => State::TrailerLf,
                b'\t' | b' '..=0x7e | 0x80..=0xff => State::TrailerValue,
                _ => return Err(Invalid),
            },
            State::TrailerLf => {
                if b != b'\n' {
                    return Err(Invalid);
                }
                State::TrailerStart
            }
            State::EndLf => {
                if b != b'\n' {
                    return Err(Invalid);
                }
                State::Done
            }
            State::Data | State::Done => self.state,
        };
        Ok(next)
    }

    /// Remembers a trailer name byte; names longer than `NAME_PREFIX` never match a forbidden one.
    fn push_name(&mut self, b: u8) {
        let n = usize::from(self.name_len);
        if n < NAME_PREFIX {
            self.name[n] = b.to_ascii_lowercase();
            self.name_len += 1;
        } else {
            // Too long to be forbidden: make the prefix unmatchable.
            self.name[0] = b'!';
        }
    }
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// A `tchar` of RFC 9110 §5.6.2 (the bytes of a token).
pub(crate) fn is_tchar(b: u8) -> bool {
    matches!(b,
        b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9'
        | b'!' | b'#' | b'$' | b'%' | b'&' | b'\'' | b'*' | b'+' | b'-' | b'.' | b'^' | b'_'
        | b'`' | b'|' | b'~')
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
