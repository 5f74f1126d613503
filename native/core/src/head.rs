//! One-call HTTP/1.1 response-head parser.
//!
//! [`parse_response_head`] parses the head that starts at `buf[start]`, looking at no byte at or
//! past `end`, and reports everything as numbers in a caller-owned `u32` array (`out`): status,
//! version, framing facts, and for every header four offsets into `buf`. It never allocates and
//! never builds a string, so the JavaScript caller can slice only the headers it needs.
//!
//! It is stateless: when the head is not complete yet it returns [`NEED_MORE`] (0) and the caller
//! calls again, from the same `start`, once more bytes arrived. A byte that can never be part of
//! a valid head is reported at once, complete head or not, so a garbage upstream fails fast.
//!
//! Strictness follows RFC 9112 as a proxy should read upstream responses: CRLF line endings
//! only (a bare LF or CR is an error), no whitespace between a field name and its colon, no
//! obs-fold, no control bytes other than HTAB in values, Content-Length that is a single
//! non-negative integer (identical repeats allowed) and never together with Transfer-Encoding.
//!
//! The JavaScript twin is `src/shared/native/head-parser.ts`; both must stay byte-for-byte
//! identical in what they write to `out` and return, including on errors.

// ---- `out` layout (indices into the u32 array) -------------------------------------------
/// Status code (100..=999).
pub const OUT_STATUS: usize = 0;
/// Minor version digit: 1 for HTTP/1.1, 0 for HTTP/1.0.
pub const OUT_VERSION_MINOR: usize = 1;
/// Number of header lines reported at `OUT_HEADERS`.
pub const OUT_HEADER_COUNT: usize = 2;
/// Content-Length, high 21 bits (value = hi * 2^32 + lo, at most 2^53 - 1); valid only with
/// [`FLAG_CONTENT_LENGTH`].
pub const OUT_CONTENT_LENGTH_HI: usize = 3;
/// Content-Length, low 32 bits.
pub const OUT_CONTENT_LENGTH_LO: usize = 4;
/// `FLAG_*` bits.
pub const OUT_FLAGS: usize = 5;
/// Seconds from `Keep-Alive: timeout=N` (saturated at u32::MAX); valid only with
/// [`FLAG_KEEP_ALIVE_TIMEOUT`].
pub const OUT_KEEP_ALIVE_TIMEOUT: usize = 6;
/// Offset of the reason phrase's first byte (== `OUT_REASON_END` when it is empty).
pub const OUT_REASON_START: usize = 7;
/// Offset just past the reason phrase (the CR of the status line).
pub const OUT_REASON_END: usize = 8;
/// On an error return: offset in `buf` of the byte (or line) where the error was found.
pub const OUT_ERROR_OFFSET: usize = 9;
/// First header slot; header `i` occupies `OUT_HEADERS + 4*i .. OUT_HEADERS + 4*i + 4`:
/// name start, name end, value start, value end (value trimmed of SP/HTAB on both sides).
pub const OUT_HEADERS: usize = 10;
/// Slots per header.
pub const HEADER_SLOTS: usize = 4;

// ---- flags --------------------------------------------------------------------------------
/// Transfer-Encoding present and its final coding is `chunked`.
pub const FLAG_CHUNKED: u32 = 1 << 0;
/// `Connection` lists `close`.
pub const FLAG_CONNECTION_CLOSE: u32 = 1 << 1;
/// `Connection` lists `keep-alive`.
pub const FLAG_CONNECTION_KEEP_ALIVE: u32 = 1 << 2;
/// `Connection` lists `upgrade`.
pub const FLAG_CONNECTION_UPGRADE: u32 = 1 << 3;
/// `Keep-Alive: timeout=N` present and well-formed; N is in `OUT_KEEP_ALIVE_TIMEOUT`.
pub const FLAG_KEEP_ALIVE_TIMEOUT: u32 = 1 << 4;
/// The status line said HTTP/1.0.
pub const FLAG_HTTP_1_0: u32 = 1 << 5;
/// Content-Length present (and valid); the value is in `OUT_CONTENT_LENGTH_HI/LO`.
pub const FLAG_CONTENT_LENGTH: u32 = 1 << 6;
/// Transfer-Encoding present (chunked or not). Without [`FLAG_CHUNKED`] a response body is
/// delimited by connection close (RFC 9112 §6.3 rule 4).
pub const FLAG_TRANSFER_ENCODING: u32 = 1 << 7;
/// An `Upgrade` header is present.
pub const FLAG_UPGRADE: u32 = 1 << 8;
/// The head has a byte >= 0x80 (obs-text in the reason phrase or a field value; names and the
/// rest of the syntax cannot have one): forward it as bytes, not as text.
pub const FLAG_NON_ASCII: u32 = 1 << 9;

// ---- return codes ---------------------------------------------------------------------------
/// Not complete yet: call again when more bytes arrived.
pub const NEED_MORE: i32 = 0;
/// Status line is not `HTTP/1.<digit> SP <3 digits, first 1-9> [SP reason] CRLF`, or the reason
/// holds a control byte other than HTAB.
pub const ERR_BAD_STATUS_LINE: i32 = -1;
/// A header name is empty, holds a non-token byte (including whitespace before the colon), the
/// line has no colon, or a line starts with a bare LF.
pub const ERR_BAD_HEADER_NAME: i32 = -2;
/// A header value holds NUL, a bare CR, LF or another control byte except HTAB, or DEL.
pub const ERR_BAD_HEADER_VALUE: i32 = -3;
/// A header line starts with SP or HTAB (obs-fold, or whitespace before the first header).
pub const ERR_OBS_FOLD: i32 = -4;
/// More header lines than `out` has room for.
pub const ERR_TOO_MANY_HEADERS: i32 = -5;
/// No end of head within the first `max_head_bytes` bytes.
pub const ERR_HEAD_TOO_LARGE: i32 = -6;
/// Content-Length is not a list of identical non-negative integers below 2^53, or several
/// Content-Length lines disagree.
pub const ERR_BAD_CONTENT_LENGTH: i32 = -7;
/// Both Content-Length and Transfer-Encoding are present (a response-splitting signal that
/// RFC 9112 §6.3 says ought to be handled as an error).
pub const ERR_CONTENT_LENGTH_WITH_TRANSFER_ENCODING: i32 = -8;

/// Default cap on head size when the caller passes none.
pub const DEFAULT_MAX_HEAD_BYTES: usize = 64 * 1024;

/// Largest Content-Length reported: 2^53 - 1, the largest integer a JS number holds exactly.
pub const MAX_CONTENT_LENGTH: u64 = (1 << 53) - 1;

/// Why a call could not be made at all (the glue turns these into thrown errors; the JS twin
/// throws RangeError with the same messages).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArgError {
    /// `start <= end <= buf.len()` does not hold.
    Range,
    /// `out` is shorter than `OUT_HEADERS`.
    OutTooSmall,
}

impl ArgError {
    pub fn message(self) -> &'static str {
        match self {
            ArgError::Range => "parseResponseHead: need 0 <= start <= end <= buf.length",
            ArgError::OutTooSmall => "parseResponseHead: out must hold at least 10 slots",
        }
    }
}

/// RFC 9110 `tchar`.
const TCHAR: [bool; 256] = make_tchar();

const fn make_tchar() -> [bool; 256] {
    let mut t = [false; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        t[c] = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'!' | b'#'
                    | b'$'
                    | b'%'
                    | b'&'
                    | b'\''
                    | b'*'
                    | b'+'
                    | b'-'
                    | b'.'
                    | b'^'
                    | b'_'
                    | b'`'
                    | b'|'
                    | b'~'
            );
        c += 1;
    }
    t
}

#[inline]
fn is_ows(c: u8) -> bool {
    c == b' ' || c == b'\t'
}

/// Bytes allowed in a reason phrase or a field value: HTAB, SP, VCHAR and obs-text.
const FIELD: [bool; 256] = make_field();

const fn make_field() -> [bool; 256] {
    let mut t = [false; 256];
    let mut c = 0;
    while c < 256 {
        t[c] = c == 0x09 || (c >= 0x20 && c != 0x7F);
        c += 1;
    }
    t
}

/// [`scan`] over [`FIELD`], eight bytes at a time while no byte in the word can stop it (no byte
/// below 0x20, none equal to 0x7F; HTAB and the stopping bytes are left to the byte loop). The
/// word tests are the exact "has a byte less than n" / "has a zero byte" bit tricks.
#[inline]
fn scan_field(buf: &[u8], mut p: usize, limit: usize) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    while p + 8 <= limit {
        let mut word = [0u8; 8];
        word.copy_from_slice(&buf[p..p + 8]);
        let w = u64::from_le_bytes(word);
        let below_space = w.wrapping_sub(ONES * 0x20) & !w & HIGHS;
        let d = w ^ (ONES * 0x7F);
        let del = d.wrapping_sub(ONES) & !d & HIGHS;
        if below_space | del != 0 {
            break;
        }
        p += 8;
    }
    scan(buf, p, limit, &FIELD)
}

/// Whether any byte is >= 0x80: the bytes OR-ed eight at a time (the head is read whole; a
/// byte loop with an early exit was a fifth of the parse's own time).
#[inline]
pub fn has_high_byte(b: &[u8]) -> bool {
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let mut words = b.chunks_exact(8);
    let mut acc = 0u64;
    for w in &mut words {
        let mut word = [0u8; 8];
        word.copy_from_slice(w);
        acc |= u64::from_le_bytes(word);
    }
    acc & HIGHS != 0 || words.remainder().iter().any(|&c| c >= 0x80)
}

/// Index of the first byte at or after `p` (and before `limit`) outside `class`, if any.
/// The scans below are the parser's inner loops: one table load per byte, no bounds checks.
#[inline]
fn scan(buf: &[u8], p: usize, limit: usize, class: &[bool; 256]) -> Option<usize> {
    buf[p..limit]
        .iter()
        .position(|&c| !class[c as usize])
        .map(|i| p + i)
}

/// ASCII case-insensitive compare of `s` with lowercase `lit`.
#[inline]
fn eq_lower(s: &[u8], lit: &[u8]) -> bool {
    s.len() == lit.len()
        && s.iter()
            .zip(lit)
            .all(|(&a, &b)| a.to_ascii_lowercase() == b)
}

fn trim_ows(s: &[u8]) -> &[u8] {
    let mut a = 0;
    let mut b = s.len();
    while a < b && is_ows(s[a]) {
        a += 1;
    }
    while b > a && is_ows(s[b - 1]) {
        b -= 1;
    }
    &s[a..b]
}

/// Framing facts gathered while the header lines go by.
struct Framing {
    flags: u32,
    content_length: u64,
    keep_alive_timeout: u32,
}

/// Parses a Content-Length value: a comma-separated list of identical digit strings. `prior`
/// is a value already seen on an earlier Content-Length line.
fn parse_content_length(v: &[u8], prior: Option<u64>) -> Option<u64> {
    let mut result = prior;
    for element in v.split(|&c| c == b',') {
        let digits = trim_ows(element);
        if digits.is_empty() {
            return None;
        }
        let mut n: u64 = 0;
        for &c in digits {
            if !c.is_ascii_digit() {
                return None;
            }
            n = n * 10 + (c - b'0') as u64;
            if n > MAX_CONTENT_LENGTH {
                return None;
            }
        }
        match result {
            Some(r) if r != n => return None,
            _ => result = Some(n),
        }
    }
    result
}

/// Final transfer coding of one Transfer-Encoding line, if the line names any coding: the
/// last non-empty list element, without its parameters.
fn last_transfer_coding(v: &[u8]) -> Option<&[u8]> {
    let mut last = None;
    for element in v.split(|&c| c == b',') {
        let coding = element.split(|&c| c == b';').next().unwrap_or(element);
        let coding = trim_ows(coding);
        if !coding.is_empty() {
            last = Some(coding);
        }
    }
    last
}

fn connection_flags(v: &[u8]) -> u32 {
    let mut flags = 0;
    for element in v.split(|&c| c == b',') {
        let token = trim_ows(element);
        if eq_lower(token, b"close") {
            flags |= FLAG_CONNECTION_CLOSE;
        } else if eq_lower(token, b"keep-alive") {
            flags |= FLAG_CONNECTION_KEEP_ALIVE;
        } else if eq_lower(token, b"upgrade") {
            flags |= FLAG_CONNECTION_UPGRADE;
        }
    }
    flags
}

/// `timeout=N` from a Keep-Alive value (parameters separated by `,` or `;`, N optionally
/// quoted). A malformed hint is ignored, never an error: it is advice, not framing.
fn keep_alive_timeout(v: &[u8]) -> Option<u32> {
    for element in v.split(|&c| c == b',' || c == b';') {
        let param = trim_ows(element);
        if param.len() < 7 || !eq_lower(&param[..7], b"timeout") {
            continue;
        }
        let rest = trim_ows(&param[7..]);
        if rest.first() != Some(&b'=') {
            continue;
        }
        let mut n = trim_ows(&rest[1..]);
        if n.len() >= 2 && n[0] == b'"' && n[n.len() - 1] == b'"' {
            n = &n[1..n.len() - 1];
        }
        if n.is_empty() || !n.iter().all(u8::is_ascii_digit) {
            continue;
        }
        let mut t: u64 = 0;
        for &c in n {
            t = (t * 10 + (c - b'0') as u64).min(u32::MAX as u64);
        }
        return Some(t as u32);
    }
    None
}

/// Parses one response head in `buf[start..end]`; see the module docs and the `OUT_*`,
/// `FLAG_*` and `ERR_*` constants. Returns the head's length in bytes (> 0), [`NEED_MORE`], or
/// a negative `ERR_*` code. At most `(out.len() - OUT_HEADERS) / 4` headers are accepted.
pub fn parse_response_head(
    buf: &[u8],
    start: usize,
    end: usize,
    out: &mut [u32],
    max_head_bytes: usize,
) -> Result<i32, ArgError> {
    if start > end || end > buf.len() {
        return Err(ArgError::Range);
    }
    if out.len() < OUT_HEADERS {
        return Err(ArgError::OutTooSmall);
    }
    out[..OUT_HEADERS].fill(0);
    Ok(parse(buf, start, end, out, max_head_bytes))
}

fn parse(buf: &[u8], start: usize, end: usize, out: &mut [u32], max_head_bytes: usize) -> i32 {
    let avail = end - start;
    let capped = avail >= max_head_bytes;
    let limit = if capped { start + max_head_bytes } else { end };
    let max_headers = (out.len() - OUT_HEADERS) / HEADER_SLOTS;

    // Ran out of bytes at `limit`: either wait for more, or the head is already too long.
    macro_rules! need_more {
        () => {{
            if capped {
                out[OUT_ERROR_OFFSET] = limit as u32;
                return ERR_HEAD_TOO_LARGE;
            }
            return NEED_MORE;
        }};
    }
    macro_rules! fail {
        ($code:expr, $at:expr) => {{
            out[OUT_ERROR_OFFSET] = $at as u32;
            return $code;
        }};
    }

    // ---- status line ----
    let mut p = start;
    for &expected in b"HTTP/1." {
        if p >= limit {
            need_more!();
        }
        if buf[p] != expected {
            fail!(ERR_BAD_STATUS_LINE, p);
        }
        p += 1;
    }
    if p >= limit {
        need_more!();
    }
    if !buf[p].is_ascii_digit() {
        fail!(ERR_BAD_STATUS_LINE, p);
    }
    let minor = (buf[p] - b'0') as u32;
    p += 1;
    if p >= limit {
        need_more!();
    }
    if buf[p] != b' ' {
        fail!(ERR_BAD_STATUS_LINE, p);
    }
    p += 1;
    let mut status: u32 = 0;
    for k in 0..3 {
        if p >= limit {
            need_more!();
        }
        let c = buf[p];
        if !c.is_ascii_digit() || (k == 0 && c == b'0') {
            fail!(ERR_BAD_STATUS_LINE, p);
        }
        status = status * 10 + (c - b'0') as u32;
        p += 1;
    }
    if p >= limit {
        need_more!();
    }
    // The reason phrase may be empty, with or without the SP before it ("HTTP/1.1 200\r\n").
    if buf[p] == b' ' {
        p += 1;
    } else if buf[p] != b'\r' {
        fail!(ERR_BAD_STATUS_LINE, p);
    }
    let reason_start = p;
    match scan_field(buf, p, limit) {
        None => need_more!(),
        Some(q) => p = q,
    }
    if buf[p] != b'\r' {
        fail!(ERR_BAD_STATUS_LINE, p);
    }
    let reason_end = p;
    p += 1;
    if p >= limit {
        need_more!();
    }
    if buf[p] != b'\n' {
        fail!(ERR_BAD_STATUS_LINE, p - 1);
    }
    p += 1;
    out[OUT_STATUS] = status;
    out[OUT_VERSION_MINOR] = minor;
    out[OUT_REASON_START] = reason_start as u32;
    out[OUT_REASON_END] = reason_end as u32;

    // ---- header lines ----
    let mut framing = Framing {
        flags: if minor == 0 { FLAG_HTTP_1_0 } else { 0 },
        content_length: 0,
        keep_alive_timeout: 0,
    };
    let mut count = 0usize;
    loop {
        if p >= limit {
            need_more!();
        }
        let c = buf[p];
        if c == b'\r' {
            p += 1;
            if p >= limit {
                need_more!();
            }
            if buf[p] != b'\n' {
                fail!(ERR_BAD_HEADER_NAME, p - 1);
            }
            p += 1;
            break;
        }
        if is_ows(c) {
            fail!(ERR_OBS_FOLD, p);
        }
        if count == max_headers {
            fail!(ERR_TOO_MANY_HEADERS, p);
        }
        let name_start = p;
        match scan(buf, p, limit, &TCHAR) {
            None => need_more!(),
            Some(q) => p = q,
        }
        if buf[p] != b':' {
            fail!(ERR_BAD_HEADER_NAME, p);
        }
        if p == name_start {
            fail!(ERR_BAD_HEADER_NAME, p);
        }
        let name_end = p;
        p += 1;
        loop {
            if p >= limit {
                need_more!();
            }
            if !is_ows(buf[p]) {
                break;
            }
            p += 1;
        }
        let value_start = p;
        match scan_field(buf, p, limit) {
            None => need_more!(),
            Some(q) => p = q,
        }
        if buf[p] != b'\r' {
            fail!(ERR_BAD_HEADER_VALUE, p);
        }
        let mut value_end = p;
        while value_end > value_start && is_ows(buf[value_end - 1]) {
            value_end -= 1;
        }
        p += 1;
        if p >= limit {
            need_more!();
        }
        if buf[p] != b'\n' {
            fail!(ERR_BAD_HEADER_VALUE, p - 1);
        }
        p += 1;

        let slot = OUT_HEADERS + count * HEADER_SLOTS;
        out[slot] = name_start as u32;
        out[slot + 1] = name_end as u32;
        out[slot + 2] = value_start as u32;
        out[slot + 3] = value_end as u32;
        count += 1;

        let name = &buf[name_start..name_end];
        let value = &buf[value_start..value_end];
        match name.len() {
            14 if eq_lower(name, b"content-length") => {
                let prior = if framing.flags & FLAG_CONTENT_LENGTH != 0 {
                    Some(framing.content_length)
                } else {
                    None
                };
                match parse_content_length(value, prior) {
                    Some(n) => {
                        framing.content_length = n;
                        framing.flags |= FLAG_CONTENT_LENGTH;
                    }
                    None => fail!(ERR_BAD_CONTENT_LENGTH, value_start),
                }
            }
            17 if eq_lower(name, b"transfer-encoding") => {
                framing.flags |= FLAG_TRANSFER_ENCODING;
                if let Some(coding) = last_transfer_coding(value) {
                    if eq_lower(coding, b"chunked") {
                        framing.flags |= FLAG_CHUNKED;
                    } else {
                        framing.flags &= !FLAG_CHUNKED;
                    }
                }
            }
            10 if eq_lower(name, b"connection") => framing.flags |= connection_flags(value),
            // The first well-formed hint wins.
            10 if eq_lower(name, b"keep-alive") && framing.flags & FLAG_KEEP_ALIVE_TIMEOUT == 0 => {
                if let Some(t) = keep_alive_timeout(value) {
                    framing.keep_alive_timeout = t;
                    framing.flags |= FLAG_KEEP_ALIVE_TIMEOUT;
                }
            }
            7 if eq_lower(name, b"upgrade") => framing.flags |= FLAG_UPGRADE,
            _ => {}
        }
    }

    if framing.flags & FLAG_CONTENT_LENGTH != 0 && framing.flags & FLAG_TRANSFER_ENCODING != 0 {
        fail!(ERR_CONTENT_LENGTH_WITH_TRANSFER_ENCODING, start);
    }
    if has_high_byte(&buf[start..p]) {
        framing.flags |= FLAG_NON_ASCII;
    }
    out[OUT_HEADER_COUNT] = count as u32;
    out[OUT_CONTENT_LENGTH_HI] = (framing.content_length >> 32) as u32;
    out[OUT_CONTENT_LENGTH_LO] = framing.content_length as u32;
    out[OUT_FLAGS] = framing.flags;
    out[OUT_KEEP_ALIVE_TIMEOUT] = framing.keep_alive_timeout;
    (p - start) as i32
}

// ---- forwarding a parsed head --------------------------------------------------------------

/// [`compact_response_head`] found a Connection header naming a field other than `close`,
/// `keep-alive` or `upgrade` (that field is hop-by-hop too): the caller builds the block itself.
pub const COMPACT_NOT_SIMPLE: i32 = -1;
/// [`compact_response_head`]: the block does not fit in `dst`.
pub const COMPACT_TOO_LARGE: i32 = -2;

/// Whether a response field (by name, any case) is never forwarded to the client: the
/// hop-by-hop fields of RFC 9110 §7.6.1, and Date and Content-Length, which uWS writes itself.
/// The worker's twin is `isResponseHop` (src/workers/http/call.ts).
pub fn is_response_hop(name: &[u8]) -> bool {
    match name.len() {
        2 => eq_lower(name, b"te"),
        4 => eq_lower(name, b"date"),
        7 => eq_lower(name, b"upgrade") || eq_lower(name, b"trailer"),
        10 => eq_lower(name, b"connection") || eq_lower(name, b"keep-alive"),
        14 => eq_lower(name, b"content-length"),
        16 => eq_lower(name, b"proxy-connection"),
        17 => eq_lower(name, b"transfer-encoding"),
        _ => false,
    }
}

/// Writes the header lines of a parsed head as the client gets them into `dst`:
/// `\r\nName: value` for every header of the head `out` describes (offsets into `buf`, as
/// [`parse_response_head`] left them) except [`is_response_hop`] ones, names and values as
/// received. With the status line before and the proxy's own lines after, that is the text
/// uWS's `writeStatus` takes (the glue's `compactResponseHead`). Returns the length,
/// [`COMPACT_NOT_SIMPLE`] or [`COMPACT_TOO_LARGE`]; `dst` holds garbage after either.
pub fn compact_response_head(buf: &[u8], out: &[u32], dst: &mut [u8]) -> i32 {
    let n = out.get(OUT_HEADER_COUNT).copied().unwrap_or(0) as usize;
    let mut w = Writer { dst, at: 0 };
    for i in 0..n {
        let b = OUT_HEADERS + HEADER_SLOTS * i;
        let Some(o) = out.get(b..b + HEADER_SLOTS) else { break };
        let (Some(name), Some(value)) = (buf.get(o[0] as usize..o[1] as usize), buf.get(o[2] as usize..o[3] as usize)) else {
            break;
        };
        if is_response_hop(name) {
            if name.len() == 10 && eq_lower(name, b"connection") && !only_known_tokens(value) {
                return COMPACT_NOT_SIMPLE;
            }
            continue;
        }
        if !(w.put(b"\r\n") && w.put(name) && w.put(b": ") && w.put(value)) {
            return COMPACT_TOO_LARGE;
        }
    }
    w.at as i32
}

/// A Connection value that lists only `close`, `keep-alive` and `upgrade` (fields dropped anyway).
fn only_known_tokens(v: &[u8]) -> bool {
    v.split(|&c| c == b',').all(|element| {
        let t = trim_ows(element);
        t.is_empty() || eq_lower(t, b"close") || eq_lower(t, b"keep-alive") || eq_lower(t, b"upgrade")
    })
}

struct Writer<'a> {
    dst: &'a mut [u8],
    at: usize,
}

impl Writer<'_> {
    fn put(&mut self, bytes: &[u8]) -> bool {
        let end = self.at + bytes.len();
        match self.dst.get_mut(self.at..end) {
            Some(d) => {
                d.copy_from_slice(bytes);
                self.at = end;
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn out_for(headers: usize) -> Vec<u32> {
        vec![0; OUT_HEADERS + headers * HEADER_SLOTS]
    }

    fn parse_all(head: &[u8], out: &mut [u32]) -> i32 {
        parse_response_head(head, 0, head.len(), out, DEFAULT_MAX_HEAD_BYTES).unwrap()
    }

    fn header<'a>(buf: &'a [u8], out: &[u32], i: usize) -> (&'a [u8], &'a [u8]) {
        let s = OUT_HEADERS + i * HEADER_SLOTS;
        (
            &buf[out[s] as usize..out[s + 1] as usize],
            &buf[out[s + 2] as usize..out[s + 3] as usize],
        )
    }

    #[test]
    fn typical_head() {
        let head = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 12\r\n\
                     Connection: keep-alive\r\nKeep-Alive: timeout=5, max=100\r\n\r\nhello world!";
        let mut out = out_for(16);
        let n = parse_all(head, &mut out);
        assert_eq!(n as usize, head.len() - 12);
        assert_eq!(out[OUT_STATUS], 200);
        assert_eq!(out[OUT_VERSION_MINOR], 1);
        assert_eq!(out[OUT_HEADER_COUNT], 4);
        assert_eq!(out[OUT_CONTENT_LENGTH_HI], 0);
        assert_eq!(out[OUT_CONTENT_LENGTH_LO], 12);
        assert_eq!(
            out[OUT_FLAGS],
            FLAG_CONTENT_LENGTH | FLAG_CONNECTION_KEEP_ALIVE | FLAG_KEEP_ALIVE_TIMEOUT
        );
        assert_eq!(out[OUT_KEEP_ALIVE_TIMEOUT], 5);
        assert_eq!(
            &head[out[OUT_REASON_START] as usize..out[OUT_REASON_END] as usize],
            b"OK"
        );
        assert_eq!(
            header(head, &out, 0),
            (&b"Content-Type"[..], &b"text/plain"[..])
        );
        assert_eq!(
            header(head, &out, 3),
            (&b"Keep-Alive"[..], &b"timeout=5, max=100"[..])
        );
    }

    #[test]
    fn offsets_are_absolute_and_values_trimmed() {
        let mut buf = b"garbage".to_vec();
        buf.extend_from_slice(b"HTTP/1.0 404 \r\nX-A:  \t v a l \t \r\nX-Empty:\r\n\r\n");
        let mut out = out_for(4);
        let n = parse_response_head(&buf, 7, buf.len(), &mut out, 1024).unwrap();
        assert_eq!(n as usize, buf.len() - 7);
        assert_eq!(out[OUT_FLAGS], FLAG_HTTP_1_0);
        assert_eq!(out[OUT_REASON_START], out[OUT_REASON_END]);
        assert_eq!(header(&buf, &out, 0), (&b"X-A"[..], &b"v a l"[..]));
        assert_eq!(header(&buf, &out, 1), (&b"X-Empty"[..], &b""[..]));
    }

    #[test]
    fn reason_phrase_may_be_missing() {
        let mut out = out_for(1);
        assert_eq!(parse_all(b"HTTP/1.1 204\r\n\r\n", &mut out), 16);
        assert_eq!(out[OUT_STATUS], 204);
        assert_eq!(out[OUT_REASON_START], 12);
        assert_eq!(out[OUT_REASON_END], 12);
    }

    #[test]
    fn every_prefix_of_a_valid_head_needs_more() {
        let head = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
                     Connection: Upgrade\r\n\r\n";
        let mut out = out_for(4);
        for cut in 0..head.len() {
            assert_eq!(
                parse_response_head(head, 0, cut, &mut out, 4096).unwrap(),
                NEED_MORE,
                "cut at {cut}"
            );
        }
        assert_eq!(parse_all(head, &mut out), head.len() as i32);
        assert_eq!(out[OUT_STATUS], 101);
        assert_eq!(out[OUT_FLAGS], FLAG_UPGRADE | FLAG_CONNECTION_UPGRADE);
    }

    #[test]
    fn chunked_only_when_final() {
        let mut out = out_for(4);
        parse_all(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            &mut out,
        );
        assert_eq!(out[OUT_FLAGS], FLAG_TRANSFER_ENCODING | FLAG_CHUNKED);
        parse_all(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
            &mut out,
        );
        assert_eq!(out[OUT_FLAGS], FLAG_TRANSFER_ENCODING);
        parse_all(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: CHUNKED ;x=1,\r\n\r\n",
            &mut out,
        );
        assert_eq!(out[OUT_FLAGS], FLAG_TRANSFER_ENCODING | FLAG_CHUNKED);
    }

    #[test]
    fn content_length_rules() {
        let mut out = out_for(4);
        let ok = |v: &str, out: &mut Vec<u32>| {
            let h = format!("HTTP/1.1 200 OK\r\n{v}\r\n\r\n");
            parse_all(h.as_bytes(), out)
        };
        assert!(ok("Content-Length: 5, 5", &mut out) > 0);
        assert_eq!(out[OUT_CONTENT_LENGTH_LO], 5);
        assert!(ok("Content-Length: 7\r\ncontent-length: 007", &mut out) > 0);
        assert_eq!(ok("Content-Length: 5, 6", &mut out), ERR_BAD_CONTENT_LENGTH);
        assert_eq!(
            ok("Content-Length: 5\r\nContent-Length: 6", &mut out),
            ERR_BAD_CONTENT_LENGTH
        );
        assert_eq!(ok("Content-Length: -1", &mut out), ERR_BAD_CONTENT_LENGTH);
        assert_eq!(ok("Content-Length: +1", &mut out), ERR_BAD_CONTENT_LENGTH);
        assert_eq!(ok("Content-Length: 1 2", &mut out), ERR_BAD_CONTENT_LENGTH);
        assert_eq!(ok("Content-Length:", &mut out), ERR_BAD_CONTENT_LENGTH);
        assert_eq!(ok("Content-Length: 5,", &mut out), ERR_BAD_CONTENT_LENGTH);
        assert_eq!(ok("Content-Length: 0x10", &mut out), ERR_BAD_CONTENT_LENGTH);
        assert!(ok("Content-Length: 9007199254740991", &mut out) > 0);
        assert_eq!(out[OUT_CONTENT_LENGTH_HI], 0x1F_FFFF);
        assert_eq!(out[OUT_CONTENT_LENGTH_LO], u32::MAX);
        assert_eq!(
            ok("Content-Length: 9007199254740992", &mut out),
            ERR_BAD_CONTENT_LENGTH
        );
        assert_eq!(
            ok("Content-Length: 99999999999999999999999999999999", &mut out),
            ERR_BAD_CONTENT_LENGTH
        );
        assert_eq!(
            ok("Content-Length: 3\r\nTransfer-Encoding: chunked", &mut out),
            ERR_CONTENT_LENGTH_WITH_TRANSFER_ENCODING
        );
    }

    #[test]
    fn malformed_heads() {
        let mut out = out_for(2);
        let cases: &[(&[u8], i32)] = &[
            (b"HTTP/2.0 200 OK\r\n\r\n", ERR_BAD_STATUS_LINE),
            (b"HTTP/1.1 20 OK\r\n\r\n", ERR_BAD_STATUS_LINE),
            (b"HTTP/1.1 099 OK\r\n\r\n", ERR_BAD_STATUS_LINE),
            (b"HTTP/1.1  200 OK\r\n\r\n", ERR_BAD_STATUS_LINE),
            (b"HTTP/1.1 200 O\x00K\r\n\r\n", ERR_BAD_STATUS_LINE),
            (b"HTTP/1.1 200 OK\n\r\n", ERR_BAD_STATUS_LINE),
            (b"HTTP/1.1 200 OK\rX\n\r\n", ERR_BAD_STATUS_LINE),
            (
                b"HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n",
                ERR_BAD_HEADER_NAME,
            ),
            (b"HTTP/1.1 200 OK\r\nName : x\r\n\r\n", ERR_BAD_HEADER_NAME),
            (b"HTTP/1.1 200 OK\r\n: x\r\n\r\n", ERR_BAD_HEADER_NAME),
            (b"HTTP/1.1 200 OK\r\nNoColon\r\n\r\n", ERR_BAD_HEADER_NAME),
            (b"HTTP/1.1 200 OK\r\n\n", ERR_BAD_HEADER_NAME),
            (b"HTTP/1.1 200 OK\r\n\rX", ERR_BAD_HEADER_NAME),
            (
                b"HTTP/1.1 200 OK\r\nX: a\x00b\r\n\r\n",
                ERR_BAD_HEADER_VALUE,
            ),
            (b"HTTP/1.1 200 OK\r\nX: a\rb\r\n\r\n", ERR_BAD_HEADER_VALUE),
            (
                b"HTTP/1.1 200 OK\r\nX: a\nY: b\r\n\r\n",
                ERR_BAD_HEADER_VALUE,
            ),
            (b"HTTP/1.1 200 OK\r\nX: a\x7f\r\n\r\n", ERR_BAD_HEADER_VALUE),
            (b"HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n", ERR_OBS_FOLD),
            (b"HTTP/1.1 200 OK\r\n X: a\r\n\r\n", ERR_OBS_FOLD),
            (
                b"HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n",
                ERR_TOO_MANY_HEADERS,
            ),
        ];
        for (head, code) in cases {
            assert_eq!(
                parse_all(head, &mut out),
                *code,
                "{}",
                String::from_utf8_lossy(head)
            );
        }
    }

    #[test]
    fn obs_text_is_allowed_in_values_and_reason() {
        let mut out = out_for(2);
        let head = b"HTTP/1.1 200 \xc3\xa9t\xe9\r\nX-Name: caf\xc3\xa9\xff\r\n\r\n";
        assert_eq!(parse_all(head, &mut out), head.len() as i32);
    }

    #[test]
    fn head_too_large() {
        let head = b"HTTP/1.1 200 OK\r\nX: yyyyyyyyyy\r\n\r\n";
        let mut out = out_for(2);
        let len = head.len();
        // Exactly at the limit is fine; one byte less is too large once that many bytes arrived.
        assert_eq!(
            parse_response_head(head, 0, len, &mut out, len).unwrap(),
            len as i32
        );
        assert_eq!(
            parse_response_head(head, 0, len, &mut out, len - 1).unwrap(),
            ERR_HEAD_TOO_LARGE
        );
        assert_eq!(out[OUT_ERROR_OFFSET], (len - 1) as u32);
        assert_eq!(
            parse_response_head(head, 0, len - 2, &mut out, len - 1).unwrap(),
            NEED_MORE
        );
        // An error before the limit is reported as itself.
        assert_eq!(
            parse_response_head(b"HTTP/1.1 200 OK\r\nX\x01", 0, 19, &mut out, 19).unwrap(),
            ERR_BAD_HEADER_NAME
        );
    }

    #[test]
    fn keep_alive_hint_forms() {
        let mut out = out_for(2);
        let ka = |v: &str, out: &mut Vec<u32>| {
            let h = format!("HTTP/1.1 200 OK\r\nKeep-Alive: {v}\r\n\r\n");
            parse_all(h.as_bytes(), out);
            (
                out[OUT_FLAGS] & FLAG_KEEP_ALIVE_TIMEOUT != 0,
                out[OUT_KEEP_ALIVE_TIMEOUT],
            )
        };
        assert_eq!(ka("timeout=5", &mut out), (true, 5));
        assert_eq!(ka("max=100, Timeout = 30", &mut out), (true, 30));
        assert_eq!(ka("timeout=\"7\"; max=3", &mut out), (true, 7));
        assert_eq!(ka("timeout=99999999999", &mut out), (true, u32::MAX));
        assert_eq!(ka("timeout=abc", &mut out), (false, 0));
        assert_eq!(ka("timeouts=5", &mut out), (false, 0));
        assert_eq!(ka("", &mut out), (false, 0));
    }

    #[test]
    fn word_scan_matches_byte_scan() {
        // Every byte value at every position of a 24-byte run, against the plain table scan.
        for bad in 0..=255u8 {
            for at in 0..24 {
                let mut v = vec![b'a'; 24];
                v[at] = bad;
                for start in 0..4 {
                    assert_eq!(
                        scan_field(&v, start, v.len()),
                        scan(&v, start, v.len(), &FIELD),
                        "byte {bad:#x} at {at} from {start}"
                    );
                }
            }
        }
    }

    #[test]
    fn argument_errors() {
        let mut out = out_for(1);
        assert_eq!(
            parse_response_head(b"abc", 2, 1, &mut out, 10),
            Err(ArgError::Range)
        );
        assert_eq!(
            parse_response_head(b"abc", 0, 4, &mut out, 10),
            Err(ArgError::Range)
        );
        assert_eq!(
            parse_response_head(b"abc", 0, 3, &mut out[..9], 10),
            Err(ArgError::OutTooSmall)
        );
    }

    #[test]
    fn back_to_back_heads() {
        let buf = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
        let mut out = out_for(2);
        let n = parse_all(buf, &mut out);
        assert_eq!(out[OUT_STATUS], 100);
        let m = parse_response_head(buf, n as usize, buf.len(), &mut out, 4096).unwrap();
        assert_eq!(n + m, buf.len() as i32);
        assert_eq!(out[OUT_STATUS], 200);
    }

    #[test]
    fn non_ascii_flag_covers_reason_and_values_only_when_present() {
        let mut out = out_for(4);
        let plain = b"HTTP/1.1 200 OK\r\nA: b\r\n\r\n";
        assert!(parse_response_head(plain, 0, plain.len(), &mut out, DEFAULT_MAX_HEAD_BYTES).unwrap() > 0);
        assert_eq!(out[OUT_FLAGS] & FLAG_NON_ASCII, 0);
        let value = b"HTTP/1.1 200 OK\r\nA: caf\xe9\r\n\r\n";
        assert!(parse_response_head(value, 0, value.len(), &mut out, DEFAULT_MAX_HEAD_BYTES).unwrap() > 0);
        assert_ne!(out[OUT_FLAGS] & FLAG_NON_ASCII, 0);
        let reason = b"HTTP/1.1 200 \xc3\x9cK\r\n\r\n";
        assert!(parse_response_head(reason, 0, reason.len(), &mut out, DEFAULT_MAX_HEAD_BYTES).unwrap() > 0);
        assert_ne!(out[OUT_FLAGS] & FLAG_NON_ASCII, 0);
        // Body bytes after the head do not count.
        let body = b"HTTP/1.1 200 OK\r\nA: b\r\n\r\n\xff\xff";
        assert!(parse_response_head(body, 0, body.len(), &mut out, DEFAULT_MAX_HEAD_BYTES).unwrap() > 0);
        assert_eq!(out[OUT_FLAGS] & FLAG_NON_ASCII, 0);
    }

    #[test]
    fn non_ascii_flag_at_every_offset_of_a_word_and_in_the_tail() {
        let mut out = out_for(4);
        let plain = b"HTTP/1.1 200 OK\r\nAbc: defghijklmnopqrstuv\r\n\r\n".to_vec();
        assert!(parse_response_head(&plain, 0, plain.len(), &mut out, DEFAULT_MAX_HEAD_BYTES).unwrap() > 0);
        assert_eq!(out[OUT_FLAGS] & FLAG_NON_ASCII, 0);
        // Every byte of the value, in turn: in the words, and (its last, at 40 of 45) in the
        // bytes after the last whole word.
        let first = plain.iter().position(|&c| c == b'd').unwrap();
        for i in first..first + 19 {
            for start in 0..3 {
                let mut buf = vec![b'x'; start];
                buf.extend_from_slice(&plain);
                buf[start + i] = 0xE9;
                let n = parse_response_head(&buf, start, buf.len(), &mut out, DEFAULT_MAX_HEAD_BYTES).unwrap();
                assert!(n > 0, "offset {i} start {start}");
                assert_ne!(out[OUT_FLAGS] & FLAG_NON_ASCII, 0, "offset {i} start {start}");
            }
        }
        assert!(!has_high_byte(b""));
        assert!(has_high_byte(&[0x80]));
        assert!(!has_high_byte(&[0x7F; 17]));
    }

    fn compact(head: &[u8]) -> Result<Vec<u8>, i32> {
        let mut out = out_for(16);
        parse_all(head, &mut out);
        let mut dst = vec![0u8; 256];
        let n = compact_response_head(head, &out, &mut dst);
        if n < 0 {
            return Err(n);
        }
        dst.truncate(n as usize);
        Ok(dst)
    }

    #[test]
    fn compact_drops_hop_by_hop_date_and_length() {
        let head = b"HTTP/1.1 200 Fine\r\nServer: up\r\nDate: Mon\r\nContent-Length: 3\r\n\
                     Connection: keep-alive\r\nKeep-Alive: timeout=5\r\nX-A:  b \r\nTE: x\r\n\r\n";
        assert_eq!(compact(head).unwrap(), b"\r\nServer: up\r\nX-A: b");
        assert_eq!(compact(b"HTTP/1.1 200 OK\r\n\r\n").unwrap(), b"");
    }

    #[test]
    fn compact_keeps_bytes_as_received() {
        let head = b"HTTP/1.1 200 OK\r\nX-Latin: caf\xe9\r\nSET-COOKIE: a=1\r\n\r\n";
        assert_eq!(compact(head).unwrap(), b"\r\nX-Latin: caf\xe9\r\nSET-COOKIE: a=1");
    }

    #[test]
    fn compact_refuses_connection_naming_other_fields() {
        let head = b"HTTP/1.1 200 OK\r\nConnection: close, X-Secret\r\nX-Secret: 1\r\n\r\n";
        assert_eq!(compact(head), Err(COMPACT_NOT_SIMPLE));
        let ok = b"HTTP/1.1 200 OK\r\nConnection: Close, , Upgrade\r\n\r\n";
        assert_eq!(compact(ok).unwrap(), b"");
    }

    #[test]
    fn compact_reports_a_block_too_large() {
        let head = b"HTTP/1.1 200 OK\r\nX-A: 0123456789\r\n\r\n";
        let mut out = out_for(4);
        parse_all(head, &mut out);
        // "\r\nX-A: 0123456789" is 17 bytes.
        let mut dst = vec![0u8; 16];
        assert_eq!(compact_response_head(head, &out, &mut dst), COMPACT_TOO_LARGE);
        assert_eq!(compact_response_head(head, &out, &mut dst[..0]), COMPACT_TOO_LARGE);
        let mut dst = vec![0u8; 17];
        assert_eq!(compact_response_head(head, &out, &mut dst), 17);
    }

    #[test]
    fn response_hop_names_any_case() {
        for n in ["te", "Date", "UPGRADE", "trailer", "Connection", "keep-alive", "Content-Length", "proxy-connection", "Transfer-Encoding"] {
            assert!(is_response_hop(n.as_bytes()), "{n}");
        }
        for n in ["via", "dates", "content-type", "x-request-id", ""] {
            assert!(!is_response_hop(n.as_bytes()), "{n}");
        }
    }
}
