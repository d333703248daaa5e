//! Chunked transfer-coding framing, followed byte by byte so a body can be relayed verbatim
//! (or decoded for an HTTP/1.0 client) while the proxy still knows where it ends.

/// The framing is broken (bad size line, missing CRLF, size overflow).
#[derive(Debug)]
pub(crate) struct Invalid;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Size,
    Ext,
    SizeLf,
    Data,
    DataCr,
    DataLf,
    TrailerStart,
    TrailerLine,
    TrailerLf,
    EndLf,
    Done,
}

/// Position inside a chunked body.
#[derive(Debug)]
pub(crate) struct Chunked {
    state: State,
    size: u64,
    digits: u8,
}

impl Chunked {
    pub(crate) fn new() -> Chunked {
        Chunked {
            state: State::Size,
            size: 0,
            digits: 0,
        }
    }

    /// The last chunk, the trailers and the final CRLF went by.
    pub(crate) fn is_done(&self) -> bool {
        self.state == State::Done
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
            match self.state {
                State::Size => {
                    match hex(b) {
                        Some(v) => {
                            if self.digits >= 15 {
                                return Err(Invalid);
                            }
                            self.size = self.size * 16 + u64::from(v);
                            self.digits += 1;
                        }
                        None => {
                            if self.digits == 0 {
                                return Err(Invalid);
                            }
                            self.state = match b {
                                b'\r' => State::SizeLf,
                                b';' | b' ' | b'\t' => State::Ext,
                                _ => return Err(Invalid),
                            };
                        }
                    }
                    i += 1;
                }
                State::Ext => {
                    match b {
                        b'\r' => self.state = State::SizeLf,
                        b'\n' => return Err(Invalid),
                        _ => {}
                    }
                    i += 1;
                }
                State::SizeLf => {
                    if b != b'\n' {
                        return Err(Invalid);
                    }
                    self.state = if self.size == 0 {
                        State::TrailerStart
                    } else {
                        State::Data
                    };
                    i += 1;
                }
                State::Data => {
                    let take = self.size.min((data.len() - i) as u64) as usize;
                    payload(i, i + take);
                    i += take;
                    self.size -= take as u64;
                    if self.size == 0 {
                        self.state = State::DataCr;
                    }
                }
                State::DataCr => {
                    if b != b'\r' {
                        return Err(Invalid);
                    }
                    self.state = State::DataLf;
                    i += 1;
                }
                State::DataLf => {
                    if b != b'\n' {
                        return Err(Invalid);
                    }
                    self.state = State::Size;
                    self.digits = 0;
                    i += 1;
                }
                State::TrailerStart => {
                    self.state = if b == b'\r' {
                        State::EndLf
                    } else {
                        State::TrailerLine
                    };
                    i += 1;
                }
                State::TrailerLine => {
                    if b == b'\r' {
                        self.state = State::TrailerLf;
                    }
                    i += 1;
                }
                State::TrailerLf => {
                    if b != b'\n' {
                        return Err(Invalid);
                    }
                    self.state = State::TrailerStart;
                    i += 1;
                }
                State::EndLf => {
                    if b != b'\n' {
                        return Err(Invalid);
                    }
                    self.state = State::Done;
                    return Ok(i + 1);
                }
                State::Done => return Ok(i),
            }
        }
        Ok(i)
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::Chunked;

    #[test]
    fn finds_the_end_across_splits_and_decodes() {
        let body =
            b"5;ext=1\r\nhello\r\n1A\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nX-T: 1\r\n\r\nNEXT";
        for split in 1..body.len() {
            let mut c = Chunked::new();
            let mut decoded = Vec::new();
            let mut used = 0;
            for part in body.chunks(split) {
                if c.is_done() {
                    break;
                }
                let n = c
                    .feed(part, |a, b| decoded.extend_from_slice(&part[a..b]))
                    .unwrap();
                used += n;
            }
            assert!(c.is_done());
            assert_eq!(used, body.len() - 4, "split {split}");
            assert_eq!(decoded, b"helloabcdefghijklmnopqrstuvwxyz");
        }
        assert!(Chunked::new().feed(b"zz\r\n", |_, _| {}).is_err());
        assert!(Chunked::new().feed(b"3\r\nabcX", |_, _| {}).is_err());
    }
}
