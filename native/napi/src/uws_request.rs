//! The request head uWS parsed, read in one call (`uwsRequestHead`): the method, the URL and
//! every header as offsets into one Latin-1 string of the head's bytes, instead of uWS.js's
//! `getCaseSensitiveMethod`, `getUrl`, `getQuery` and `forEach`, which cost a call into
//! uWS each and, for `forEach`, a call back into JavaScript per header with two new strings.
//!
//! It reads uWebSockets 20.30's `uWS::HttpRequest`, which uWS.js keeps in the request
//! object's one internal field while the handler runs (HttpRequestWrapper.h; the object is
//! read by `sluice_uws_socket`, src/uws_socket.cc). That struct starts with its
//! `headers[]` array of `{ std::string_view key, value }` (libstdc++: length, then pointer):
//! entry 0 is the method and the URL (query included, `getUrl` stops at the first `?`), the
//! headers follow, and an entry with an empty key ends them (uWS's own `forEach` stops there).
//! The parser leaves every view pointing into the bytes it parsed, in order, header names
//! lower-cased in place.
//!
//! Must never: dereference a view before the views are known to describe one ordered span of
//! plausible size (a layout that is not the expected one answers "no", it does not crash on
//! the first plausible-looking check); answer when the head has a byte >= 0x80 (uWS.js makes
//! its strings with `NewFromUtf8`, a Latin-1 string would differ), or when it cannot describe
//! every header. The caller (`RequestReader`, src/workers/http/downstream/request-head.ts) holds the first
//! answer of each listener to uWS's own functions before it trusts any.

use std::ptr;

use napi::sys;
use sluice_core::head::has_high_byte;

/// libstdc++'s `std::string_view`.
#[repr(C)]
#[derive(Clone, Copy)]
struct View {
    len: usize,
    ptr: *const u8,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct Header {
    key: View,
    value: View,
}

/// Entries of `HttpRequest::headers` in uWS 20.30 (`UWS_HTTP_MAX_HEADERS_COUNT`: the method
/// and URL, then headers; a 49th header closes the connection, UWS-NOTES.md).
const MAX_ENTRIES: usize = 50;
/// More than any head uWS keeps in one buffer (its receive buffer is 512 KiB): a longer span
/// is no head, so the layout is not the expected one.
const MAX_SPAN: usize = 512 * 1024;

/// Answers in `out[0]` when there is no string.
pub const NOT_A_REQUEST: i32 = -1;
pub const NON_ASCII: i32 = -2;
pub const UNEXPECTED_LAYOUT: i32 = -3;
pub const OUT_TOO_SMALL: i32 = -4;

/// `out` slots: the count (or an answer above), the method, the URL, where its first `?` is
/// (-1: none), then a name and a value per header; starts and ends in the string.
pub const OUT_COUNT: usize = 0;
pub const OUT_METHOD: usize = 1;
pub const OUT_URL: usize = 3;
pub const OUT_QUERY: usize = 5;
pub const OUT_HEADERS: usize = 6;

/// The `out` of `uwsRequestBind` for this thread, kept alive by its reference.
#[derive(Clone, Copy)]
struct Bound {
    out: *mut i32,
    len: usize,
    reference: sys::napi_ref,
}

thread_local! {
    static BOUND: std::cell::Cell<Option<Bound>> = const { std::cell::Cell::new(None) };
}

/// `uwsRequestBind(out)`: the Int32Array `uwsRequestHead` writes its offsets into on this
/// thread (bound once: a typed-array argument per request costs a `napi_get_typedarray_info`).
/// A later call replaces it.
///
/// # Safety
/// Called by Node-API only, on the JS thread, with a valid `env` and `info`.
pub unsafe extern "C" fn uws_request_bind_raw(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
    let mut argc: usize = 1;
    let mut argv: [sys::napi_value; 1] = [ptr::null_mut(); 1];
    if sys::napi_get_cb_info(env, info, &mut argc, argv.as_mut_ptr(), ptr::null_mut(), ptr::null_mut()) != sys::Status::napi_ok {
        return ptr::null_mut();
    }
    let Some(out) = crate::typed_array::<i32>(env, argv[0], sys::TypedarrayType::int32_array).filter(|o| argc >= 1 && o.1 > OUT_HEADERS) else {
        return crate::throw_type_error(env, c"uwsRequestBind: out must be an Int32Array of more than 6 slots");
    };
    let mut reference = ptr::null_mut();
    if sys::napi_create_reference(env, argv[0], 1, &mut reference) != sys::Status::napi_ok {
        return crate::throw_type_error(env, c"uwsRequestBind: cannot keep the array");
    }
    if let Some(old) = BOUND.get() {
        sys::napi_delete_reference(env, old.reference);
    }
    BOUND.set(Some(Bound { out: out.0, len: out.1, reference }));
    let mut v = ptr::null_mut();
    sys::napi_get_undefined(env, &mut v);
    v
}

/// Where the views of `req`'s entries 0..=n lie, or the answer when they do not describe one
/// ordered span: (start of the span, its length, n).
///
/// # Safety
/// `req` must point to at least `MAX_ENTRIES` entries of readable memory (a uWS HttpRequest).
unsafe fn span(req: *const Header) -> Result<(*const u8, usize, usize), i32> {
    let first = *req;
    let start = first.key.ptr;
    if start.is_null() || first.key.len == 0 || first.key.len > 64 || first.value.len > MAX_SPAN {
        return Err(UNEXPECTED_LAYOUT);
    }
    // Each view must start at or after the end of the one before it, within MAX_SPAN of the
    // start: checked on the numbers alone, before any byte is read.
    let base = start as usize;
    let mut end = base;
    let within = |v: View, after: usize| -> Option<usize> {
        let at = v.ptr as usize;
        if v.ptr.is_null() && v.len == 0 {
            return Some(after);
        }
        (at >= after && at - base <= MAX_SPAN && v.len <= MAX_SPAN - (at - base)).then_some(at + v.len)
    };
    for i in 0..MAX_ENTRIES {
        let h = *req.add(i);
        if i > 0 && h.key.len == 0 {
            return Ok((start, end - base, i - 1));
        }
        let Some(after_key) = within(h.key, end) else {
            return Err(UNEXPECTED_LAYOUT);
        };
        let Some(after_value) = within(h.value, after_key) else {
            return Err(UNEXPECTED_LAYOUT);
        };
        end = after_value;
    }
    Err(UNEXPECTED_LAYOUT)
}

/// `uwsRequestHead(req)` (see the module doc): the head's bytes from the method to the end of
/// the last header value as one Latin-1 string, with the `out` of `uwsRequestBind` holding
/// the count of headers and the offsets; or null, with `out[0]` saying why (NOT_A_REQUEST,
/// NON_ASCII, UNEXPECTED_LAYOUT, OUT_TOO_SMALL), and the caller asks uWS. Bound by hand:
/// once per request.
///
/// # Safety
/// Called by Node-API only, on the JS thread, with a valid `env` and `info`. `req` must be
/// the uWS.js HttpRequest of the handler now running (src/uws_socket.cc).
pub unsafe extern "C" fn uws_request_head_raw(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
    let mut argc: usize = 1;
    let mut argv: [sys::napi_value; 1] = [ptr::null_mut(); 1];
    if sys::napi_get_cb_info(env, info, &mut argc, argv.as_mut_ptr(), ptr::null_mut(), ptr::null_mut()) != sys::Status::napi_ok {
        return ptr::null_mut();
    }
    let Some(b) = BOUND.get() else {
        return crate::throw_type_error(env, c"uwsRequestHead: uwsRequestBind was not called on this thread");
    };
    // SAFETY: a live Int32Array held by its reference; JS is blocked in this call.
    let out = std::slice::from_raw_parts_mut(b.out, b.len);
    let mut null = ptr::null_mut();
    sys::napi_get_null(env, &mut null);
    let req = crate::sluice_uws_socket(argv[0]) as *const Header;
    if req.is_null() {
        out[OUT_COUNT] = NOT_A_REQUEST;
        return null;
    }
    let (start, len, n) = match span(req) {
        Ok(s) => s,
        Err(why) => {
            out[OUT_COUNT] = why;
            return null;
        }
    };
    if OUT_HEADERS + 4 * n > out.len() {
        out[OUT_COUNT] = OUT_TOO_SMALL;
        return null;
    }
    let bytes = std::slice::from_raw_parts(start, len);
    if has_high_byte(bytes) {
        out[OUT_COUNT] = NON_ASCII;
        return null;
    }
    let base = start as usize;
    let off = |v: View| -> (i32, i32) {
        let a = if v.ptr.is_null() { 0 } else { v.ptr as usize - base };
        (a as i32, (a + v.len) as i32)
    };
    let first = *req;
    (out[OUT_METHOD], out[OUT_METHOD + 1]) = off(first.key);
    (out[OUT_URL], out[OUT_URL + 1]) = off(first.value);
    let url = if first.value.ptr.is_null() { &[][..] } else { std::slice::from_raw_parts(first.value.ptr, first.value.len) };
    out[OUT_QUERY] = match url.iter().position(|&c| c == b'?') {
        Some(q) => out[OUT_URL] + q as i32,
        None => -1,
    };
    for i in 0..n {
        let h = *req.add(i + 1);
        let at = OUT_HEADERS + 4 * i;
        (out[at], out[at + 1]) = off(h.key);
        (out[at + 2], out[at + 3]) = off(h.value);
    }
    out[OUT_COUNT] = n as i32;
    let mut text = ptr::null_mut();
    if sys::napi_create_string_latin1(env, start as *const _, len as isize, &mut text) != sys::Status::napi_ok {
        out[OUT_COUNT] = UNEXPECTED_LAYOUT;
        return null;
    }
    text
}
