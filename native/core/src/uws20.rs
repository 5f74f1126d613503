//! The arithmetic the addon does on uWebSockets.js 20.30's memory (native/napi/src/uws20/),
//! kept here, away from the raw pointers, so that `cargo test` checks it without Node or uWS.
//! Nothing in this module reads memory through an address: addresses are numbers, and the
//! only bytes read are those of a slice the caller already proved to be the head.
//!
//! - [`request_span`]: whether the `headers[]` array of a uWS 20.30 `HttpRequest`
//!   (`{ std::string_view key, value }` entries, libstdc++'s view being length then pointer)
//!   describes one ordered span of plausible size, and which; [`request_offsets`] then turns
//!   the entries into the offsets `uwsRequestHead` hands to JavaScript.
//! - [`marked_slot`]: the one pointer-sized slot of a zeroed stand-in that uSockets'
//!   `us_socket_context_on_open` setter wrote, which is where a context keeps `on_open`.

/// libstdc++'s `std::string_view`: the length, then the pointer.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct View {
    pub len: usize,
    pub ptr: *const u8,
}

/// One entry of uWS 20.30's `HttpRequest::headers`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Header {
    pub key: View,
    pub value: View,
}

/// Entries of `HttpRequest::headers` in uWS 20.30 (`UWS_HTTP_MAX_HEADERS_COUNT`: the method
/// and URL, then headers; a 49th header makes uWS close the connection).
pub const MAX_ENTRIES: usize = 50;
/// More than any head uWS keeps in one buffer (its receive buffer is 512 KiB): a longer span
/// is no head, so the layout is not the expected one.
pub const MAX_SPAN: usize = 512 * 1024;

/// Answers in `out[OUT_COUNT]` when `uwsRequestHead` gives no string.
pub const NOT_A_REQUEST: i32 = -1;
pub const NON_ASCII: i32 = -2;
pub const UNEXPECTED_LAYOUT: i32 = -3;
pub const OUT_TOO_SMALL: i32 = -4;

/// `out` slots of `uwsRequestHead`: the count (or an answer above), the method, the URL,
/// where its first `?` is (-1: none), then a name and a value per header; starts and ends in
/// the head's string.
pub const OUT_COUNT: usize = 0;
pub const OUT_METHOD: usize = 1;
pub const OUT_URL: usize = 3;
pub const OUT_QUERY: usize = 5;
pub const OUT_HEADERS: usize = 6;

/// Where the views of `entries` (the method and URL, then the headers up to the first empty
/// key) lie: (address of the span's start, its length, the number of headers n), or
/// `UNEXPECTED_LAYOUT` when they do not describe one ordered span: each view must start at
/// or after the end of the one before it, within `MAX_SPAN` of the start, and the entries
/// must end (an empty key) within `entries`. Decided on the numbers alone, so the caller can
/// check before it dereferences anything.
pub fn request_span(entries: &[Header]) -> Result<(usize, usize, usize), i32> {
    let Some(first) = entries.first() else {
        return Err(UNEXPECTED_LAYOUT);
    };
    let base = first.key.ptr as usize;
    if base == 0 || first.key.len == 0 || first.key.len > 64 || first.value.len > MAX_SPAN {
        return Err(UNEXPECTED_LAYOUT);
    }
    let mut end = base;
    let within = |v: View, after: usize| -> Option<usize> {
        let at = v.ptr as usize;
        if at == 0 && v.len == 0 {
            return Some(after);
        }
        (at >= after && at - base <= MAX_SPAN && v.len <= MAX_SPAN - (at - base)).then_some(at + v.len)
    };
    for (i, h) in entries.iter().enumerate() {
        if i > 0 && h.key.len == 0 {
            return Ok((base, end - base, i - 1));
        }
        let after_key = within(h.key, end).ok_or(UNEXPECTED_LAYOUT)?;
        end = within(h.value, after_key).ok_or(UNEXPECTED_LAYOUT)?;
    }
    Err(UNEXPECTED_LAYOUT)
}

/// Writes the offsets of `entries[0..=n]` relative to `base` into `out` (see `OUT_*`), with
/// `head` the span's bytes (`request_span`'s start and length). `out` must hold
/// `OUT_HEADERS + 4 * n` slots (checked by the caller: `OUT_TOO_SMALL`).
pub fn request_offsets(entries: &[Header], n: usize, base: usize, head: &[u8], out: &mut [i32]) {
    let off = |v: View| -> (i32, i32) {
        let a = if v.ptr.is_null() { 0 } else { v.ptr as usize - base };
        (a as i32, (a + v.len) as i32)
    };
    let first = entries[0];
    (out[OUT_METHOD], out[OUT_METHOD + 1]) = off(first.key);
    (out[OUT_URL], out[OUT_URL + 1]) = off(first.value);
    let url = &head[out[OUT_URL] as usize..out[OUT_URL + 1] as usize];
    out[OUT_QUERY] = match url.iter().position(|&c| c == b'?') {
        Some(q) => out[OUT_URL] + q as i32,
        None => -1,
    };
    for (i, h) in entries[1..=n].iter().enumerate() {
        let at = OUT_HEADERS + 4 * i;
        (out[at], out[at + 1]) = off(h.key);
        (out[at + 2], out[at + 3]) = off(h.value);
    }
    out[OUT_COUNT] = n as i32;
}

/// The index of the one slot of `stand_in` (zeroed before the setter ran) that holds
/// `marker`, when it is the only slot that changed; None for any other outcome (nothing
/// written, several slots, another value), which means the layout is not the expected one.
pub fn marked_slot(stand_in: &[usize], marker: usize) -> Option<usize> {
    let mut changed = stand_in.iter().enumerate().filter(|(_, &v)| v != 0);
    match (changed.next(), changed.next()) {
        (Some((i, &v)), None) if v == marker => Some(i),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NONE: View = View { len: 0, ptr: std::ptr::null() };

    fn view(head: &[u8], at: usize, len: usize) -> View {
        View { len, ptr: head[at..].as_ptr() }
    }

    /// The entries uWS leaves for `GET /a?b HTTP/1.1\r\nhost: x\r\nx-y: zz\r\n\r\n`: the
    /// method, the URL, then each name (lower-cased in place) and value.
    fn entries(head: &[u8]) -> [Header; MAX_ENTRIES] {
        let mut e = [Header { key: NONE, value: NONE }; MAX_ENTRIES];
        e[0] = Header { key: view(head, 0, 3), value: view(head, 4, 4) };
        e[1] = Header { key: view(head, 19, 4), value: view(head, 25, 1) };
        e[2] = Header { key: view(head, 28, 3), value: view(head, 33, 2) };
        e
    }

    const HEAD: &[u8] = b"GET /a?b HTTP/1.1\r\nhost: x\r\nx-y: zz\r\n\r\n";

    #[test]
    fn span_and_offsets_of_a_head() {
        let e = entries(HEAD);
        let (start, len, n) = request_span(&e).unwrap();
        assert_eq!((start, len, n), (HEAD.as_ptr() as usize, 35, 2));
        let mut out = [0i32; OUT_HEADERS + 8];
        request_offsets(&e, n, start, &HEAD[..len], &mut out);
        assert_eq!(out, [2, 0, 3, 4, 8, 6, 19, 23, 25, 26, 28, 31, 33, 35]);
    }

    #[test]
    fn a_url_without_query() {
        let head = b"GET /abc HTTP/1.1\r\n\r\n";
        let mut e = [Header { key: NONE, value: NONE }; MAX_ENTRIES];
        e[0] = Header { key: view(head, 0, 3), value: view(head, 4, 4) };
        let (start, len, n) = request_span(&e).unwrap();
        assert_eq!((len, n), (8, 0));
        let mut out = [0i32; OUT_HEADERS];
        request_offsets(&e, n, start, &head[..len], &mut out);
        assert_eq!(out, [0, 0, 3, 4, 8, -1]);
    }

    #[test]
    fn an_empty_value_has_no_pointer() {
        let head = b"GET / HTTP/1.1\r\nx:\r\n\r\n";
        let mut e = [Header { key: NONE, value: NONE }; MAX_ENTRIES];
        e[0] = Header { key: view(head, 0, 3), value: view(head, 4, 1) };
        e[1] = Header { key: view(head, 16, 1), value: NONE };
        assert_eq!(request_span(&e).unwrap().1, 17);
    }

    #[test]
    fn layouts_that_are_not_a_head_are_declined() {
        let good = entries(HEAD);
        // No method, a method pointer of null, an implausible method length.
        let mut e = good;
        e[0].key.len = 0;
        assert_eq!(request_span(&e), Err(UNEXPECTED_LAYOUT));
        let mut e = good;
        e[0].key.ptr = std::ptr::null();
        assert_eq!(request_span(&e), Err(UNEXPECTED_LAYOUT));
        let mut e = good;
        e[0].key.len = 65;
        assert_eq!(request_span(&e), Err(UNEXPECTED_LAYOUT));
        // Out of order: a header before the URL's end.
        let mut e = good;
        e[1].key = view(HEAD, 5, 4);
        assert_eq!(request_span(&e), Err(UNEXPECTED_LAYOUT));
        // A view reaching past MAX_SPAN of the start (never dereferenced).
        let mut e = good;
        e[2].value = View { len: MAX_SPAN, ptr: HEAD[33..].as_ptr() };
        assert_eq!(request_span(&e), Err(UNEXPECTED_LAYOUT));
        // Fields swapped (pointer, then length): the numbers are nowhere near a span.
        let mut e = good;
        for h in &mut e[..3] {
            *h = Header {
                key: View { len: h.key.ptr as usize, ptr: h.key.len as *const u8 },
                value: View { len: h.value.ptr as usize, ptr: h.value.len as *const u8 },
            };
        }
        assert_eq!(request_span(&e), Err(UNEXPECTED_LAYOUT));
        // No empty key to end the entries.
        let full = [good[1]; MAX_ENTRIES];
        assert_eq!(request_span(&full), Err(UNEXPECTED_LAYOUT));
        assert_eq!(request_span(&[]), Err(UNEXPECTED_LAYOUT));
    }

    #[test]
    fn the_marked_slot() {
        let mut s = [0usize; 256];
        assert_eq!(marked_slot(&s, 0xabc), None);
        s[7] = 0xabc;
        assert_eq!(marked_slot(&s, 0xabc), Some(7));
        s[8] = 1;
        assert_eq!(marked_slot(&s, 0xabc), None);
        s[8] = 0;
        s[7] = 0xabd;
        assert_eq!(marked_slot(&s, 0xabc), None);
    }
}
