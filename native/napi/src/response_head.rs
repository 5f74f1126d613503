//! The response-head exports: `parseResponseHead` and `compactResponseHead` over typed
//! arrays, and their bound forms (`headBind`, `parseArenaHead`, `compactArenaHead`) over the
//! reader's arena (reader.rs). Bound by hand on raw N-API (lib.rs, `raw_exports`): each runs
//! once per upstream response. The parsing and compacting are `sluice_core::head`'s.

use std::ptr;

use napi::sys;
use sluice_core::head;

use crate::args::{concat_msg, is_nullish, throw_range_error, throw_type_error, typed_array, uint32};
use crate::reader;

/// `parseResponseHead(buf, start, end, out, maxHeadBytes?)`: see `sluice_core::head`;
/// `maxHeadBytes` defaults to 65536. Called once per upstream response head, so it is bound
/// by hand on raw N-API (`raw_exports`, lib.rs) rather than through `#[napi]`: napi-rs's generated
/// glue costs several times what a plain C N-API function taking a Buffer does, and more
/// than the parse itself (docs/native.md, "Measured figures").
///
/// # Safety
/// Called by Node-API only, on the JS thread, with a valid `env` and `info`.
pub unsafe extern "C" fn parse_response_head_raw(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
    let mut argc: usize = 5;
    let mut argv: [sys::napi_value; 5] = [ptr::null_mut(); 5];
    if sys::napi_get_cb_info(env, info, &mut argc, argv.as_mut_ptr(), ptr::null_mut(), ptr::null_mut()) != sys::Status::napi_ok {
        return ptr::null_mut();
    }
    let Some(buf) = typed_array::<u8>(env, argv[0], sys::TypedarrayType::uint8_array) else {
        return throw_type_error(env, c"parseResponseHead: buf must be a Uint8Array");
    };
    let Some(out) = typed_array::<u32>(env, argv[3], sys::TypedarrayType::uint32_array) else {
        return throw_type_error(env, c"parseResponseHead: out must be a Uint32Array");
    };
    let (Some(start), Some(end)) = (uint32(env, argv[1]), uint32(env, argv[2])) else {
        return throw_type_error(env, c"parseResponseHead: start and end must be numbers");
    };
    let max = match max_head_bytes(env, (argc >= 5).then_some(argv[4]), c"parseResponseHead") {
        Ok(m) => m,
        Err(thrown) => return thrown,
    };
    // SAFETY: the views come from live typed arrays of this call's arguments; JS is blocked in
    // this call, so nothing else reads or writes them meanwhile. `buf` and `out` may not
    // overlap (a Uint8Array and a Uint32Array over the same memory would be a caller bug; the
    // parser only reads `buf` before writing `out` slots it owns).
    let buf = std::slice::from_raw_parts(buf.0, buf.1);
    let out = std::slice::from_raw_parts_mut(out.0, out.1);
    parse_result(env, head::parse_response_head(buf, start as usize, end as usize, out, max))
}

/// `maxHeadBytes` as parseResponseHead takes it: absent or nullish is the default, 0 an error.
unsafe fn max_head_bytes(env: sys::napi_env, v: Option<sys::napi_value>, name: &std::ffi::CStr) -> std::result::Result<usize, sys::napi_value> {
    let Some(v) = v.filter(|v| !is_nullish(env, *v)) else {
        return Ok(head::DEFAULT_MAX_HEAD_BYTES);
    };
    match uint32(env, v) {
        Some(0) => Err(throw_range_error(env, &concat_msg(name, ": maxHeadBytes must be >= 1"))),
        Some(m) => Ok(m as usize),
        None => Err(throw_type_error(env, &concat_msg(name, ": maxHeadBytes must be a number"))),
    }
}


unsafe fn parse_result(env: sys::napi_env, r: std::result::Result<i32, head::ArgError>) -> sys::napi_value {
    match r {
        Ok(r) => {
            let mut v = ptr::null_mut();
            sys::napi_create_int32(env, r, &mut v);
            v
        }
        Err(e) => {
            let msg = std::ffi::CString::new(e.message()).unwrap_or_default();
            throw_range_error(env, &msg)
        }
    }
}

/// What `headBind` bound for this thread: the parse's offsets (`out`) and the block
/// `compactArenaHead` writes (`dst`), each kept alive by a reference.
#[derive(Clone, Copy)]
struct HeadBound {
    out: *mut u32,
    out_len: usize,
    dst: *mut u8,
    dst_len: usize,
    refs: [sys::napi_ref; 2],
}

thread_local! {
    static HEAD_BOUND: std::cell::Cell<Option<HeadBound>> = const { std::cell::Cell::new(None) };
}

/// `headBind(out, dst)`: binds this thread's parse offsets (a Uint32Array) and head block (a
/// Uint8Array) for `parseArenaHead` and `compactArenaHead`, which then take no typed array:
/// each typed-array argument costs a `napi_get_typedarray_info` (type checks, the buffer's
/// backing store) on every call, and these two run once per upstream response. A second call
/// replaces the first binding.
///
/// # Safety
/// Called by Node-API only, on the JS thread, with a valid `env` and `info`.
pub unsafe extern "C" fn head_bind_raw(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
    let mut argc: usize = 2;
    let mut argv: [sys::napi_value; 2] = [ptr::null_mut(); 2];
    if sys::napi_get_cb_info(env, info, &mut argc, argv.as_mut_ptr(), ptr::null_mut(), ptr::null_mut()) != sys::Status::napi_ok {
        return ptr::null_mut();
    }
    let Some(out) = typed_array::<u32>(env, argv[0], sys::TypedarrayType::uint32_array).filter(|o| argc >= 2 && o.1 >= head::OUT_HEADERS) else {
        return throw_type_error(env, c"headBind: out must be a Uint32Array of parseResponseHead's size");
    };
    let Some(dst) = typed_array::<u8>(env, argv[1], sys::TypedarrayType::uint8_array) else {
        return throw_type_error(env, c"headBind: dst must be a Uint8Array");
    };
    let mut refs = [ptr::null_mut(); 2];
    for (i, v) in argv.iter().enumerate() {
        if sys::napi_create_reference(env, *v, 1, &mut refs[i]) != sys::Status::napi_ok {
            return throw_type_error(env, c"headBind: cannot keep the arrays");
        }
    }
    if let Some(old) = HEAD_BOUND.get() {
        for r in old.refs {
            sys::napi_delete_reference(env, r);
        }
    }
    HEAD_BOUND.set(Some(HeadBound { out: out.0, out_len: out.1, dst: dst.0, dst_len: dst.1, refs }));
    let mut v = ptr::null_mut();
    sys::napi_get_undefined(env, &mut v);
    v
}

/// The reader's arena (reader.rs) and the bound arrays, or a thrown error named after `name`.
unsafe fn arena_and_bound(env: sys::napi_env, name: &std::ffi::CStr) -> std::result::Result<(&'static [u8], HeadBound), sys::napi_value> {
    let Some(b) = HEAD_BOUND.get() else {
        return Err(throw_type_error(env, &concat_msg(name, ": headBind was not called on this thread")));
    };
    let Some((arena, len)) = reader::arena() else {
        return Err(throw_type_error(env, &concat_msg(name, ": the reader is not open on this thread")));
    };
    Ok((std::slice::from_raw_parts(arena, len), b))
}

/// `parseArenaHead(start, end, maxHeadBytes?)`: `parseResponseHead(arena, start, end, out,
/// maxHeadBytes)` over the reader's arena (`readerOpen`) into the `out` of `headBind`: the
/// upstream's bytes the reader handed over this turn, parsed without a typed-array argument.
///
/// # Safety
/// Called by Node-API only, on the JS thread, with a valid `env` and `info`.
pub unsafe extern "C" fn parse_arena_head_raw(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
    let mut argc: usize = 3;
    let mut argv: [sys::napi_value; 3] = [ptr::null_mut(); 3];
    if sys::napi_get_cb_info(env, info, &mut argc, argv.as_mut_ptr(), ptr::null_mut(), ptr::null_mut()) != sys::Status::napi_ok {
        return ptr::null_mut();
    }
    let (Some(start), Some(end)) = (if argc >= 2 { (uint32(env, argv[0]), uint32(env, argv[1])) } else { (None, None) }) else {
        return throw_type_error(env, c"parseArenaHead: start and end must be numbers");
    };
    let max = match max_head_bytes(env, (argc >= 3).then_some(argv[2]), c"parseArenaHead") {
        Ok(m) => m,
        Err(thrown) => return thrown,
    };
    let (buf, b) = match arena_and_bound(env, c"parseArenaHead") {
        Ok(x) => x,
        Err(thrown) => return thrown,
    };
    // SAFETY: `out` is a live typed array held by its reference; JS is blocked in this call.
    // The arena is the reader's (only the reader writes it, in the poll phase, never now).
    let out = std::slice::from_raw_parts_mut(b.out, b.out_len);
    parse_result(env, head::parse_response_head(buf, start as usize, end as usize, out, max))
}

/// `compactResponseHead(buf, out, dst, statusLine, extra)`: writes into `dst` the text uWS's
/// `writeStatus` takes for the head `parseResponseHead` just described in `out` (offsets into
/// `buf`): `statusLine` (latin1), the head's header lines as received less the hop-by-hop
/// ones, Date and Content-Length (`sluice_core::head::compact_response_head`), then `extra`
/// (UTF-8: the proxy's own lines, `\r\n`-prefixed). Returns the length, -1 when a Connection
/// header names another field, or -2 when `dst` is too small; the caller then builds the
/// block from strings. Bound by hand, once per upstream response.
///
/// # Safety
/// Called by Node-API only, on the JS thread, with a valid `env` and `info`.
pub unsafe extern "C" fn compact_response_head_raw(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
    let mut argc: usize = 5;
    let mut argv: [sys::napi_value; 5] = [ptr::null_mut(); 5];
    if sys::napi_get_cb_info(env, info, &mut argc, argv.as_mut_ptr(), ptr::null_mut(), ptr::null_mut()) != sys::Status::napi_ok {
        return ptr::null_mut();
    }
    let Some(buf) = typed_array::<u8>(env, argv[0], sys::TypedarrayType::uint8_array) else {
        return throw_type_error(env, c"compactResponseHead: buf must be a Uint8Array");
    };
    let Some(out) = typed_array::<u32>(env, argv[1], sys::TypedarrayType::uint32_array) else {
        return throw_type_error(env, c"compactResponseHead: out must be a Uint32Array");
    };
    let Some(dst) = typed_array::<u8>(env, argv[2], sys::TypedarrayType::uint8_array) else {
        return throw_type_error(env, c"compactResponseHead: dst must be a Uint8Array");
    };
    // SAFETY: views of live typed arrays of this call's arguments (JS is blocked meanwhile);
    // `dst` must not overlap `buf` (a caller bug: the worker keeps its own block buffer).
    let buf = std::slice::from_raw_parts(buf.0, buf.1);
    let out = std::slice::from_raw_parts(out.0, out.1);
    let dst = std::slice::from_raw_parts_mut(dst.0, dst.1);
    compact_into(env, buf, out, dst, argv[3], argv[4], c"compactResponseHead")
}

/// compactResponseHead's work once its arrays are views: the status line, the head's lines,
/// the extra lines into `dst`; the length or a negative code as a JS number.
unsafe fn compact_into(env: sys::napi_env, buf: &[u8], out: &[u32], dst: &mut [u8], status_line: sys::napi_value, extra: sys::napi_value, name: &std::ffi::CStr) -> sys::napi_value {
    // N-API copies at most `room - 1` bytes plus a NUL, whole characters only: a copy that
    // leaves fewer than 5 bytes (one character and the NUL) of the room may have been cut.
    let mut copied: usize = 0;
    if sys::napi_get_value_string_latin1(env, status_line, dst.as_mut_ptr() as *mut _, dst.len(), &mut copied) != sys::Status::napi_ok {
        return throw_type_error(env, &concat_msg(name, ": statusLine must be a string"));
    }
    let mut result = if copied + 5 > dst.len() { head::COMPACT_TOO_LARGE } else { 0 };
    if result == 0 {
        let mut at = copied;
        let n = head::compact_response_head(buf, out, &mut dst[at..]);
        if n < 0 {
            result = n;
        } else {
            at += n as usize;
            let room = &mut dst[at..];
            if sys::napi_get_value_string_utf8(env, extra, room.as_mut_ptr() as *mut _, room.len(), &mut copied) != sys::Status::napi_ok {
                return throw_type_error(env, &concat_msg(name, ": extra must be a string"));
            }
            result = if copied + 5 > room.len() { head::COMPACT_TOO_LARGE } else { (at + copied) as i32 };
        }
    }
    let mut v = ptr::null_mut();
    sys::napi_create_int32(env, result, &mut v);
    v
}

/// `compactArenaHead(statusLine, extra)`: `compactResponseHead(arena, out, dst, statusLine,
/// extra)` with the reader's arena and the arrays of `headBind`, for the head `parseArenaHead`
/// just described.
///
/// # Safety
/// Called by Node-API only, on the JS thread, with a valid `env` and `info`.
pub unsafe extern "C" fn compact_arena_head_raw(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
    let mut argc: usize = 2;
    let mut argv: [sys::napi_value; 2] = [ptr::null_mut(); 2];
    if sys::napi_get_cb_info(env, info, &mut argc, argv.as_mut_ptr(), ptr::null_mut(), ptr::null_mut()) != sys::Status::napi_ok {
        return ptr::null_mut();
    }
    if argc < 2 {
        return throw_type_error(env, c"compactArenaHead(statusLine, extra): two strings");
    }
    let (buf, b) = match arena_and_bound(env, c"compactArenaHead") {
        Ok(x) => x,
        Err(thrown) => return thrown,
    };
    // SAFETY: as in parseArenaHead; `dst` is the bound block, never the arena or `out`.
    let out = std::slice::from_raw_parts(b.out, b.out_len);
    let dst = std::slice::from_raw_parts_mut(b.dst, b.dst_len);
    compact_into(env, buf, out, dst, argv[0], argv[1], c"compactArenaHead")
}
