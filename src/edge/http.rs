//! Just enough HTTP/1.1 for the edge to find request and response boundaries:
//! request-head checks, the edge's own error answers, and a streaming response framer.
//!
//! The edge never interprets a request beyond this; the update protocol lives
//! behind tiny_http. Everything here is pure (bytes in, decisions out).

/// The end of a request head: the index just past the first `\r\n\r\n`.
pub(crate) fn find_head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
}

/// Bytes of empty lines before a request line. RFC 9112 2.2: a server should
/// ignore at least one CRLF there (some clients send one after a POST body).
pub(crate) fn leading_empty_lines(buf: &[u8]) -> usize {
    let mut i = 0;
    while buf[i..].starts_with(b"\r\n") {
        i += 2;
    }
    i
}

/// What the edge needs to know about one request head.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct RequestHead {
    /// Length of the head including the final `\r\n\r\n`.
    pub head_len: usize,
    /// Length of the body that follows (`Content-Length`, else 0).
    pub body_len: usize,
    /// The method is HEAD: the response has a head only.
    pub is_head: bool,
    /// The client asked for the connection to end after this request.
    pub close: bool,
    /// The client waits for `100 Continue` before sending its body.
    pub expect_continue: bool,
}

/// Why a request head is refused at the edge; each maps to one answer.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum HeadError {
    /// Not HTTP/1.x, or a line the edge cannot delimit unambiguously.
    Malformed(&'static str),
    /// `Transfer-Encoding` in a request: only GET and HEAD matter here, and
    /// forwarding a chunked body is where request smuggling lives.
    TransferEncoding,
    /// A body larger than the edge buffers.
    BodyTooLarge,
}

/// Every answer the edge gives by itself, before (or instead of) the update
/// service: the edge's one table of status codes. The update API's own
/// refusals are `update::Refusal`'s table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum EdgeAnswer {
    /// A request head the edge refuses (`HeadError`).
    Malformed,
    TransferEncoding,
    BodyTooLarge,
    /// The head outgrew `max_request_head_bytes`.
    HeadTooLarge,
    /// The head did not arrive within the request-head deadline.
    Timeout,
    /// The internal hop failed or answered something unreadable.
    BadGateway,
    /// The internal hop did not answer in time.
    GatewayTimeout,
}

impl EdgeAnswer {
    /// Status code and reason phrase.
    pub(crate) fn status(self) -> (u16, &'static str) {
        match self {
            EdgeAnswer::Malformed => (400, "Bad Request"),
            EdgeAnswer::TransferEncoding => (501, "Not Implemented"),
            EdgeAnswer::BodyTooLarge => (413, "Content Too Large"),
            EdgeAnswer::HeadTooLarge => (431, "Request Header Fields Too Large"),
            EdgeAnswer::Timeout => (408, "Request Timeout"),
            EdgeAnswer::BadGateway => (502, "Bad Gateway"),
            EdgeAnswer::GatewayTimeout => (504, "Gateway Timeout"),
        }
    }
}

impl HeadError {
    /// The edge's answer to this refusal.
    pub(crate) fn answer(&self) -> EdgeAnswer {
        match self {
            HeadError::Malformed(_) => EdgeAnswer::Malformed,
            HeadError::TransferEncoding => EdgeAnswer::TransferEncoding,
            HeadError::BodyTooLarge => EdgeAnswer::BodyTooLarge,
        }
    }
}

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Checks a complete request head (`head` ends with `\r\n\r\n`).
///
/// Strict where tiny_http and the edge could disagree about where a request
/// ends (bare CR or LF, line folding, space before the colon, conflicting
/// `Content-Length`), lenient everywhere else.
pub(crate) fn parse_request_head(head: &[u8], max_body: usize) -> Result<RequestHead, HeadError> {
    let text = head
        .strip_suffix(b"\r\n\r\n")
        .ok_or(HeadError::Malformed("head is not terminated"))?;
    // tiny_http reads every head line as ASCII and drops the connection without
    // an answer on any other byte (the client would get a 502 from us), so
    // refuse it here. RFC 9112 allows obs-text in field values, but a
    // recipient may reject it, and no update client sends it.
    if !text.is_ascii() {
        return Err(HeadError::Malformed("non-ASCII byte in head"));
    }
    let mut lines = head_lines(text)?.into_iter();
    let (method, http11) = request_line(lines.next().unwrap_or_default())?;
    let fields = header_fields(lines, http11)?;
    let body_len = fields.content_length.unwrap_or(0);
    if body_len > max_body {
        return Err(HeadError::BodyTooLarge);
    }
    Ok(RequestHead {
        head_len: head.len(),
        body_len,
        is_head: method == b"HEAD",
        close: fields.close,
        expect_continue: fields.expect_continue,
    })
}

/// The head's lines without their CRLF; a bare CR or LF is refused. `text`
/// lacks the final "\r\n", so every line but the last ends in "\r".
fn head_lines(text: &[u8]) -> Result<Vec<&[u8]>, HeadError> {
    let lines: Vec<&[u8]> = text.split(|&b| b == b'\n').collect();
    let last = lines.len() - 1;
    let mut checked = Vec::with_capacity(lines.len());
    for (index, raw) in lines.into_iter().enumerate() {
        let line = match raw.strip_suffix(b"\r") {
            Some(l) if index != last => l,
            None if index == last => raw,
            _ => return Err(HeadError::Malformed("bare LF in head")),
        };
        if line.contains(&b'\r') {
            return Err(HeadError::Malformed("bare CR in head"));
        }
        checked.push(line);
    }
    Ok(checked)
}

/// `METHOD TARGET HTTP/1.x`, exactly three words: the method and whether it is
/// HTTP/1.1.
fn request_line(line: &[u8]) -> Result<(&[u8], bool), HeadError> {
    let mut parts = line.split(|&b| b == b' ');
    let method = parts.next().unwrap_or_default();
    let target = parts.next().unwrap_or_default();
    let version = parts.next().unwrap_or_default();
    if method.is_empty() || !method.iter().all(|&b| is_token_byte(b)) {
        return Err(HeadError::Malformed("bad method"));
    }
    if target.is_empty() || target.iter().any(|&b| b <= b' ' || b == 0x7f) {
        return Err(HeadError::Malformed("bad request target"));
    }
    let http11 = match version {
        b"HTTP/1.1" => true,
        b"HTTP/1.0" => false,
        _ => return Err(HeadError::Malformed("not HTTP/1.0 or HTTP/1.1")),
    };
    if parts.next().is_some() {
        return Err(HeadError::Malformed("extra words in the request line"));
    }
    Ok((method, http11))
}

/// What the edge reads from the header fields.
struct Fields {
    content_length: Option<usize>,
    close: bool,
    expect_continue: bool,
}

/// The header fields: strict about the ones that delimit a request
/// (Content-Length, Transfer-Encoding) and about line syntax.
fn header_fields<'a>(
    lines: impl Iterator<Item = &'a [u8]>,
    http11: bool,
) -> Result<Fields, HeadError> {
    let mut f = Fields {
        content_length: None,
        close: !http11,
        expect_continue: false,
    };
    for line in lines {
        if line.first().is_some_and(|&b| b == b' ' || b == b'\t') {
            return Err(HeadError::Malformed("obsolete line folding"));
        }
        let colon = line
            .iter()
            .position(|&b| b == b':')
            .ok_or(HeadError::Malformed("header line without colon"))?;
        let name = &line[..colon];
        if name.is_empty() || !name.iter().all(|&b| is_token_byte(b)) {
            return Err(HeadError::Malformed("bad header name"));
        }
        let value = line[colon + 1..].trim_ascii();
        if name.eq_ignore_ascii_case(b"content-length") {
            let n = content_length(value)?;
            if f.content_length.is_some_and(|prev| prev != n) {
                return Err(HeadError::Malformed("conflicting Content-Length"));
            }
            f.content_length = Some(n);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            return Err(HeadError::TransferEncoding);
        } else if name.eq_ignore_ascii_case(b"connection") {
            for token in value.split(|&b| b == b',') {
                let token = token.trim_ascii();
                if token.eq_ignore_ascii_case(b"close") {
                    f.close = true;
                } else if token.eq_ignore_ascii_case(b"keep-alive") && !http11 {
                    f.close = false;
                }
            }
        } else if name.eq_ignore_ascii_case(b"expect")
            && value.eq_ignore_ascii_case(b"100-continue")
        {
            f.expect_continue = true;
        }
    }
    Ok(f)
}

/// A Content-Length value: digits only.
fn content_length(value: &[u8]) -> Result<usize, HeadError> {
    let text =
        std::str::from_utf8(value).map_err(|_| HeadError::Malformed("bad Content-Length"))?;
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(HeadError::Malformed("bad Content-Length"));
    }
    // Too many digits to parse is certainly too large to buffer.
    text.parse().map_err(|_| HeadError::BodyTooLarge)
}

/// The head as forwarded to tiny_http over a pooled connection (`head` passed
/// `parse_request_head`, so every line is `name: value` with a token name).
///
/// Removed: every `X-Dedyn-Client` line, whatever its case (only the edge may
/// say who the client is: `identity`, added last, is the one copy tiny_http
/// sees); `Connection`, which is hop-by-hop and would make tiny_http close the
/// pooled connection (the edge keeps or closes the client's connection itself,
/// `RequestHead::close`); and `Expect: 100-continue` when `expect_continue`,
/// because the edge has already answered it and buffered the body (tiny_http
/// would send a second `100 Continue`). Added: `Connection: keep-alive`, so an
/// HTTP/1.0 request does not end the pooled connection either.
pub(crate) fn forward_head(head: &[u8], expect_continue: bool, identity: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(head.len() + identity.len() + 32);
    let body = head.strip_suffix(b"\r\n").unwrap_or(head);
    for (index, line) in body.split_inclusive(|&b| b == b'\n').enumerate() {
        let name = line.split(|&b| b == b':').next().unwrap_or_default();
        let drop = index > 0
            && (name.eq_ignore_ascii_case(super::hop::CLIENT_HEADER.as_bytes())
                || name.eq_ignore_ascii_case(b"connection")
                || (expect_continue && name.eq_ignore_ascii_case(b"expect")));
        if !drop {
            out.extend_from_slice(line);
        }
    }
    out.extend_from_slice(b"Connection: keep-alive\r\n");
    out.extend_from_slice(identity.as_bytes());
    out.extend_from_slice(b"\r\n");
    out
}

/// A complete answer from the edge itself; the connection closes after it.
pub(crate) fn edge_response(answer: EdgeAnswer) -> Vec<u8> {
    let (status, reason) = answer.status();
    let body = format!("{reason}\n");
    format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// The interim answer to `Expect: 100-continue`.
pub(crate) const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// Response heads from tiny_http are small; anything bigger is a bug there.
const MAX_RESPONSE_HEAD: usize = 64 * 1024;
/// Chunk-size and trailer lines, likewise.
const MAX_CHUNK_LINE: usize = 4096;

/// Where a response from tiny_http ends, found as its bytes stream past.
///
/// The edge relays one request at a time, so it must know when the response is
/// complete to put the connection back into the keep-alive wait (evictable,
/// idle timeout) and to read the next pipelined request.
#[derive(Debug)]
pub(crate) struct ResponseFramer {
    state: RespState,
    head_request: bool,
    /// The client connection ends after this response.
    close: bool,
    /// tiny_http ends the connection after this response (`Connection: close`,
    /// or a body delimited by the close). An HTTP/1.0 status line alone does not:
    /// the edge asked tiny_http to keep the connection (`forward_head`).
    backend_close: bool,
}

#[derive(Debug, PartialEq, Eq)]
enum RespState {
    Head(Vec<u8>),
    Fixed(u64),
    ChunkSize(Vec<u8>),
    ChunkData(u64),
    ChunkDataEnd(u8),
    Trailer(Vec<u8>),
    UntilClose,
    Done,
}

/// tiny_http sent something that is not an HTTP/1.1 response.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct FrameError(pub &'static str);

impl ResponseFramer {
    pub(crate) fn new(head_request: bool) -> Self {
        ResponseFramer {
            state: RespState::Head(Vec::new()),
            head_request,
            close: false,
            backend_close: false,
        }
    }

    /// Not a byte of the response has arrived yet.
    pub(crate) fn is_fresh(&self) -> bool {
        matches!(&self.state, RespState::Head(acc) if acc.is_empty())
    }

    pub(crate) fn is_done(&self) -> bool {
        self.state == RespState::Done
    }

    /// The response ends only when the backend closes its connection.
    pub(crate) fn until_close(&self) -> bool {
        self.state == RespState::UntilClose
    }

    /// The client connection may carry another request after this response.
    pub(crate) fn keep_alive(&self) -> bool {
        !self.close
    }

    /// The response is complete and tiny_http keeps the connection open for the
    /// next request.
    pub(crate) fn backend_reusable(&self) -> bool {
        self.is_done() && !self.backend_close
    }

    /// Consumes the prefix of `data` that belongs to this response and returns
    /// its length; a shorter count than `data.len()` means the response ended.
    ///
    /// Long on purpose: one `match` over the framing states (head, fixed
    /// length, chunk size line, chunk data, chunk CRLF, trailers) so that every
    /// transition and its bound is visible in one place; split into helpers the
    /// state handoffs would be spread over as many functions.
    pub(crate) fn feed(&mut self, data: &[u8]) -> Result<usize, FrameError> {
        let mut i = 0;
        while i < data.len() {
            let rest = &data[i..];
            let in_trailer = matches!(self.state, RespState::Trailer(_));
            match &mut self.state {
                RespState::Done => break,
                RespState::UntilClose => i = data.len(),
                RespState::Head(acc) => {
                    // Copy up to and including the end of the head, at most.
                    let before = acc.len();
                    acc.extend_from_slice(rest);
                    // Search only where a new terminator can be (3 bytes of overlap).
                    let from = before.saturating_sub(3);
                    match find_head_end(&acc[from..]) {
                        Some(end) => {
                            let end = from + end;
                            i += end - before;
                            acc.truncate(end);
                            let head = std::mem::take(acc);
                            self.state = self.after_head(&head)?;
                        }
                        None => {
                            if acc.len() > MAX_RESPONSE_HEAD {
                                return Err(FrameError("response head too large"));
                            }
                            i = data.len();
                        }
                    }
                }
                RespState::Fixed(left) => {
                    let take = (*left).min(rest.len() as u64);
                    *left -= take;
                    i += take as usize;
                    if *left == 0 {
                        self.state = RespState::Done;
                    }
                }
                RespState::ChunkSize(line) | RespState::Trailer(line) => {
                    let (taken, complete) = match rest.iter().position(|&b| b == b'\n') {
                        Some(nl) => (nl + 1, true),
                        None => (rest.len(), false),
                    };
                    line.extend_from_slice(&rest[..taken]);
                    i += taken;
                    if line.len() > MAX_CHUNK_LINE {
                        return Err(FrameError("chunk line too long"));
                    }
                    if complete {
                        let text = line.trim_ascii();
                        self.state = if in_trailer {
                            if text.is_empty() {
                                RespState::Done
                            } else {
                                RespState::Trailer(Vec::new())
                            }
                        } else {
                            let size_text = text.split(|&b| b == b';').next().unwrap_or_default();
                            let size = std::str::from_utf8(size_text.trim_ascii())
                                .ok()
                                .and_then(|s| u64::from_str_radix(s, 16).ok())
                                .ok_or(FrameError("bad chunk size"))?;
                            if size == 0 {
                                RespState::Trailer(Vec::new())
                            } else {
                                RespState::ChunkData(size)
                            }
                        };
                    }
                }
                RespState::ChunkData(left) => {
                    let take = (*left).min(rest.len() as u64);
                    *left -= take;
                    i += take as usize;
                    if *left == 0 {
                        self.state = RespState::ChunkDataEnd(2);
                    }
                }
                RespState::ChunkDataEnd(left) => {
                    let take = (*left as usize).min(rest.len());
                    *left -= take as u8;
                    i += take;
                    if *left == 0 {
                        self.state = RespState::ChunkSize(Vec::new());
                    }
                }
            }
        }
        Ok(i)
    }

    /// Decides how the body after a complete response head is delimited
    /// (RFC 9112 6.3, in its order).
    fn after_head(&mut self, head: &[u8]) -> Result<RespState, FrameError> {
        let text =
            std::str::from_utf8(head).map_err(|_| FrameError("response head is not UTF-8"))?;
        let mut lines = text.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let mut words = status_line.split(' ');
        let version = words.next().unwrap_or_default();
        if !version.starts_with("HTTP/1.") {
            return Err(FrameError("not an HTTP/1.x status line"));
        }
        let status: u16 = words
            .next()
            .and_then(|s| s.parse().ok())
            .ok_or(FrameError("bad status code"))?;
        if version == "HTTP/1.0" {
            self.close = true;
        }

        let mut chunked = false;
        let mut has_te = false;
        let mut length: Option<u64> = None;
        for line in lines {
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                length = Some(
                    value
                        .parse()
                        .map_err(|_| FrameError("bad Content-Length"))?,
                );
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                has_te = true;
                chunked = value
                    .rsplit(',')
                    .next()
                    .is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"));
            } else if name.eq_ignore_ascii_case("connection")
                && value
                    .split(',')
                    .any(|t| t.trim().eq_ignore_ascii_case("close"))
            {
                self.close = true;
                self.backend_close = true;
            }
        }

        Ok(match status {
            // Switching protocols: whatever follows is not HTTP any more.
            101 => {
                self.close = true;
                self.backend_close = true;
                RespState::UntilClose
            }
            // Interim response (100 Continue, 103 Early Hints): relay it and
            // read the final response that follows.
            100..=199 => RespState::Head(Vec::new()),
            204 | 304 => RespState::Done,
            _ if self.head_request => RespState::Done,
            _ if has_te && chunked => RespState::ChunkSize(Vec::new()),
            _ if has_te => {
                self.close = true;
                self.backend_close = true;
                RespState::UntilClose
            }
            _ => match length {
                Some(0) => RespState::Done,
                Some(n) => RespState::Fixed(n),
                None => {
                    self.close = true;
                    self.backend_close = true;
                    RespState::UntilClose
                }
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX_BODY: usize = 64 * 1024;

    #[test]
    fn head_end_is_after_blank_line() {
        assert_eq!(find_head_end(b"GET / HTTP/1.1\r\n\r\nrest"), Some(18));
        assert_eq!(find_head_end(b"GET / HTTP/1.1\r\nHost: x\r\n"), None);
    }

    #[test]
    fn leading_crlfs_are_skipped() {
        assert_eq!(leading_empty_lines(b"\r\n\r\nGET"), 4);
        assert_eq!(leading_empty_lines(b"GET"), 0);
        assert_eq!(leading_empty_lines(b"\r"), 0);
    }

    #[test]
    fn plain_get_keeps_alive_on_http11() {
        let head = b"GET /update?hostname=a HTTP/1.1\r\nHost: x\r\n\r\n";
        let h = parse_request_head(head, MAX_BODY).expect("valid");
        assert_eq!(
            h,
            RequestHead {
                head_len: head.len(),
                body_len: 0,
                is_head: false,
                close: false,
                expect_continue: false
            }
        );
    }

    #[test]
    fn http10_closes_unless_keep_alive() {
        let h = parse_request_head(b"GET / HTTP/1.0\r\n\r\n", MAX_BODY).expect("valid");
        assert!(h.close);
        let h = parse_request_head(
            b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n",
            MAX_BODY,
        )
        .expect("valid");
        assert!(!h.close);
    }

    #[test]
    fn connection_close_and_head_method_are_seen() {
        let h = parse_request_head(
            b"HEAD / HTTP/1.1\r\nConnection: TE, close\r\n\r\n",
            MAX_BODY,
        )
        .expect("valid");
        assert!(h.close && h.is_head);
    }

    #[test]
    fn content_length_gives_body_and_expect_is_noted() {
        let h = parse_request_head(
            b"POST / HTTP/1.1\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n",
            MAX_BODY,
        )
        .expect("valid");
        assert_eq!(h.body_len, 5);
        assert!(h.expect_continue);
    }

    #[test]
    fn transfer_encoding_is_refused() {
        let r = parse_request_head(
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
            MAX_BODY,
        );
        assert_eq!(r, Err(HeadError::TransferEncoding));
    }

    #[test]
    fn ambiguous_framing_is_refused() {
        for head in [
            &b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"[..],
            b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length : 1\r\n\r\n",
            b"GET / HTTP/1.1\r\nA: b\nB: c\r\n\r\n",
            b"GET / HTTP/1.1\r\nA: b\rB: c\r\n\r\n",
            b"GET / HTTP/1.1\r\n folded\r\n\r\n",
            b"GET / HTTP/2.0\r\n\r\n",
            b"GET /a b HTTP/1.1\r\n\r\n",
            b"\x16\x03\x01\x00\x05 / HTTP/1.1\r\n\r\n",
            // tiny_http cannot read these: refused here rather than answered with 502.
            b"GET /?hostname=a\xff HTTP/1.1\r\n\r\n",
            "GET /?hostname=\u{e9} HTTP/1.1\r\n\r\n".as_bytes(),
            b"GET / HTTP/1.1\r\nX-Name: caf\xc3\xa9\r\n\r\n",
        ] {
            assert!(
                matches!(
                    parse_request_head(head, MAX_BODY),
                    Err(HeadError::Malformed(_))
                ),
                "{:?}",
                String::from_utf8_lossy(head)
            );
        }
    }

    #[test]
    fn large_body_is_refused() {
        let r = parse_request_head(
            b"POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n",
            10,
        );
        assert_eq!(r, Err(HeadError::BodyTooLarge));
        let r = parse_request_head(b"POST / HTTP/1.1\r\nContent-Length: 11\r\n\r\n", 10);
        assert_eq!(r, Err(HeadError::BodyTooLarge));
    }

    #[test]
    fn forwarded_head_drops_expect_connection_and_every_client_identity() {
        let head =
            b"POST / HTTP/1.1\r\nExpect: 100-continue\r\nx-dedyn-client: k 203.0.113.7:1 https\r\n\
            Content-Length: 1\r\nConnection: close\r\nX-DEDYN-CLIENT: k 203.0.113.8:1 http\r\n\
            X-Dedyn-Clients: kept\r\n\r\n";
        parse_request_head(head, MAX_BODY).expect("valid");
        let out = forward_head(head, true, "X-Dedyn-Client: ours\r\n");
        assert_eq!(
            String::from_utf8_lossy(&out),
            "POST / HTTP/1.1\r\nContent-Length: 1\r\nX-Dedyn-Clients: kept\r\n\
             Connection: keep-alive\r\nX-Dedyn-Client: ours\r\n\r\n"
        );
        // Without Expect: 100-continue from the edge, an Expect header is the handler's business.
        let out = forward_head(b"GET / HTTP/1.0\r\nExpect: x\r\n\r\n", false, "I: d\r\n");
        assert_eq!(
            out,
            b"GET / HTTP/1.0\r\nExpect: x\r\nConnection: keep-alive\r\nI: d\r\n\r\n"
        );
    }

    #[test]
    fn a_smuggled_identity_cannot_survive_forwarding() {
        // Every way to hide a second copy that tiny_http could still read as the
        // header is refused by the head parser, or removed by forward_head.
        for head in [
            &b"GET / HTTP/1.1\r\nA: b\r\n X-Dedyn-Client: k 1.2.3.4:1 http\r\n\r\n"[..],
            b"GET / HTTP/1.1\r\nX-Dedyn-Client : k 1.2.3.4:1 http\r\n\r\n",
            b"GET / HTTP/1.1\r\nX-Dedyn-Client\t: k 1.2.3.4:1 http\r\n\r\n",
            b"GET / HTTP/1.1\r\nA: b\nX-Dedyn-Client: k 1.2.3.4:1 http\r\n\r\n",
            b"GET / HTTP/1.1\r\nA: b\rX-Dedyn-Client: k 1.2.3.4:1 http\r\n\r\n",
        ] {
            if parse_request_head(head, MAX_BODY).is_err() {
                continue;
            }
            let out = forward_head(head, false, "");
            let text = String::from_utf8_lossy(&out).to_ascii_lowercase();
            assert!(!text.contains("x-dedyn-client"), "{text:?}");
        }
    }

    #[test]
    fn edge_response_has_length_and_closes() {
        let r = String::from_utf8(edge_response(EdgeAnswer::HeadTooLarge)).expect("utf8");
        assert!(r.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"));
        assert!(r.contains("Content-Length: 32\r\n"));
        assert!(r.contains("Connection: close\r\n"));
    }

    fn feed_all(f: &mut ResponseFramer, data: &[u8], step: usize) -> usize {
        let mut used = 0;
        for piece in data.chunks(step) {
            let n = f.feed(piece).expect("valid response");
            used += n;
            if n < piece.len() {
                break;
            }
        }
        used
    }

    #[test]
    fn fixed_length_response_ends_at_its_length_in_any_split() {
        let resp = b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\ngoodEXTRA";
        for step in 1..resp.len() {
            let mut f = ResponseFramer::new(false);
            assert_eq!(feed_all(&mut f, resp, step), resp.len() - 5, "step {step}");
            assert!(f.is_done() && f.keep_alive());
        }
    }

    #[test]
    fn chunked_response_ends_after_trailers() {
        let resp = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4;x=y\r\ngood\r\n0\r\nT: 1\r\n\r\nNEXT";
        for step in 1..resp.len() {
            let mut f = ResponseFramer::new(false);
            assert_eq!(feed_all(&mut f, resp, step), resp.len() - 4, "step {step}");
            assert!(f.is_done());
        }
    }

    #[test]
    fn head_response_and_204_have_no_body() {
        let mut f = ResponseFramer::new(true);
        let resp = b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n";
        assert_eq!(f.feed(resp), Ok(resp.len()));
        assert!(f.is_done());
        let mut f = ResponseFramer::new(false);
        let resp = b"HTTP/1.1 204 No Content\r\n\r\n";
        assert_eq!(f.feed(resp), Ok(resp.len()));
        assert!(f.is_done());
    }

    #[test]
    fn interim_response_is_followed_by_the_final_one() {
        let resp = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
        let mut f = ResponseFramer::new(false);
        assert_eq!(f.feed(resp), Ok(resp.len()));
        assert!(f.is_done());
    }

    #[test]
    fn close_delimited_response_and_connection_close() {
        let mut f = ResponseFramer::new(false);
        f.feed(b"HTTP/1.1 200 OK\r\n\r\nbody").expect("valid");
        assert!(f.until_close() && !f.keep_alive() && !f.backend_reusable());
        let mut f = ResponseFramer::new(false);
        f.feed(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
            .expect("valid");
        assert!(f.is_done() && !f.keep_alive() && !f.backend_reusable());
        // HTTP/1.0 client: its connection ends, tiny_http's stays (forward_head).
        let mut f = ResponseFramer::new(false);
        f.feed(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n")
            .expect("valid");
        assert!(f.is_done() && !f.keep_alive() && f.backend_reusable());
    }

    #[test]
    fn garbage_from_backend_is_an_error() {
        let mut f = ResponseFramer::new(false);
        assert_eq!(
            f.feed(b"SSH-2.0-x\r\n\r\n").unwrap_err().0,
            "not an HTTP/1.x status line"
        );
    }
}
