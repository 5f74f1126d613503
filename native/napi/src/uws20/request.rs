//! The request head uWS parsed, read in one call (`uwsRequestHead`): the method, the URL and
//! every header as offsets into one Latin-1 string of the head's bytes, instead of uWS.js's
//! `getCaseSensitiveMethod`, `getUrl`, `getQuery` and `forEach`, which cost a call into
//! uWS each and, for `forEach`, a call back into JavaScript per header with two new strings.
//!
//! It reads uWebSockets 20.30's `uWS::HttpRequest`, which uWS.js keeps in the request
//! object's one internal field while the handler runs (HttpRequestWrapper.h; the object is
//! read by `sluice_uws_socket`, socket.cc). That struct starts with its
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
use sluice_core::uws20::{request_offsets, request_span, Header, MAX_ENTRIES, NON_ASCII, NOT_A_REQUEST, OUT_COUNT, OUT_HEADERS, OUT_TOO_SMALL, UNEXPECTED_LAYOUT};

use crate::args::{throw_type_error, typed_array};

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
    let Some(out) = typed_array::<i32>(env, argv[0], sys::TypedarrayType::int32_array).filter(|o| argc >= 1 && o.1 > OUT_HEADERS) else {
        return throw_type_error(env, c"uwsRequestBind: out must be an Int32Array of more than 6 slots");
    };
    let mut reference = ptr::null_mut();
    if sys::napi_create_reference(env, argv[0], 1, &mut reference) != sys::Status::napi_ok {
        return throw_type_error(env, c"uwsRequestBind: cannot keep the array");
    }
    if let Some(old) = BOUND.get() {
        sys::napi_delete_reference(env, old.reference);
    }
    BOUND.set(Some(Bound { out: out.0, len: out.1, reference }));
    let mut v = ptr::null_mut();
    sys::napi_get_undefined(env, &mut v);
    v
}

/// `uwsRequestHead(req)` (see the module doc): the head's bytes from the method to the end of
/// the last header value as one Latin-1 string, with the `out` of `uwsRequestBind` holding
/// the count of headers and the offsets; or null, with `out[0]` saying why (NOT_A_REQUEST,
/// NON_ASCII, UNEXPECTED_LAYOUT, OUT_TOO_SMALL), and the caller asks uWS. Bound by hand:
/// once per request.
///
/// # Safety
/// Called by Node-API only, on the JS thread, with a valid `env` and `info`. `req` must be
/// the uWS.js HttpRequest of the handler now running (socket.cc).
pub unsafe extern "C" fn uws_request_head_raw(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
    let mut argc: usize = 1;
    let mut argv: [sys::napi_value; 1] = [ptr::null_mut(); 1];
    if sys::napi_get_cb_info(env, info, &mut argc, argv.as_mut_ptr(), ptr::null_mut(), ptr::null_mut()) != sys::Status::napi_ok {
        return ptr::null_mut();
    }
    let Some(b) = BOUND.get() else {
        return throw_type_error(env, c"uwsRequestHead: uwsRequestBind was not called on this thread");
    };
    // SAFETY: a live Int32Array held by its reference; JS is blocked in this call.
    let out = std::slice::from_raw_parts_mut(b.out, b.len);
    let mut null = ptr::null_mut();
    sys::napi_get_null(env, &mut null);
    let req = super::sluice_uws_socket(argv[0]) as *const Header;
    if req.is_null() {
        out[OUT_COUNT] = NOT_A_REQUEST;
        return null;
    }
    // SAFETY: `req` is a uWS HttpRequest, whose `headers` array of MAX_ENTRIES entries starts
    // the struct; request_span only compares the numbers in it.
    let entries = std::slice::from_raw_parts(req, MAX_ENTRIES);
    let (start, len, n) = match request_span(entries) {
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
    // SAFETY: the views describe one ordered span of at most MAX_SPAN bytes in uWS's buffer.
    let bytes = std::slice::from_raw_parts(start as *const u8, len);
    if has_high_byte(bytes) {
        out[OUT_COUNT] = NON_ASCII;
        return null;
    }
    request_offsets(entries, n, start, bytes, out);
    let mut text = ptr::null_mut();
    if sys::napi_create_string_latin1(env, start as *const _, len as isize, &mut text) != sys::Status::napi_ok {
        out[OUT_COUNT] = UNEXPECTED_LAYOUT;
        return null;
    }
    text
}
