//! N-API glue for `sluice-core`. Every function here only converts arguments, calls the core
//! and converts the result; the logic and its tests live in `native/core`, and the JavaScript
//! twins in `src/shared/native/`. Exported names are camelCased by napi-rs
//! (`parse_response_head` → `parseResponseHead`); their TypeScript types are declared in
//! `src/shared/native/index.ts`.
//!
//! Crossing the boundary is the cost to keep low: arguments are typed arrays read in place
//! (`&[u8]`, `Uint32ArraySlice`: one `napi_get_typedarray_info` each), results are numbers, and the
//! only allocations are the tables built by `buildKetama`/`buildMaglev` (rare, on membership
//! change). Those are copied into ordinary JS-owned ArrayBuffers rather than handed over as
//! external buffers, so they carry no finalizer back into this library: they may outlive a
//! worker that built them, be posted between threads, or be copied into a SharedArrayBuffer.

#![deny(clippy::all)]

use std::ffi::c_void;
use std::ptr;

use napi::bindgen_prelude::*;
use napi::sys;
use napi_derive::napi;

use sluice_core::{hash, head, ring};

mod accept_peers;
mod kafka_ff;
mod reader;
mod uws_request;

fn invalid(msg: impl Into<String>) -> Error {
    Error::new(Status::InvalidArg, msg.into())
}

// ---- argument and result types --------------------------------------------------------------

/// The bytes of a `Buffer`/`Uint8Array` (borrowed in place) or of a string (UTF-8, copied into
/// a stack buffer when short, the common case for hash keys).
#[allow(clippy::large_enum_variant)] // the inline variant is the point: no heap for short keys
pub enum KeyBytes<'a> {
    Borrowed(&'a [u8]),
    Inline([u8; KEY_INLINE], usize),
    Heap(Vec<u8>),
}

const KEY_INLINE: usize = 256;

impl KeyBytes<'_> {
    fn bytes(&self) -> &[u8] {
        match self {
            KeyBytes::Borrowed(b) => b,
            KeyBytes::Inline(buf, n) => &buf[..*n],
            KeyBytes::Heap(v) => v,
        }
    }
}

impl TypeName for KeyBytes<'_> {
    fn type_name() -> &'static str {
        "Uint8Array | string"
    }
    fn value_type() -> ValueType {
        ValueType::Unknown
    }
}

impl ValidateNapiValue for KeyBytes<'_> {}

impl FromNapiValue for KeyBytes<'_> {
    unsafe fn from_napi_value(env: sys::napi_env, value: sys::napi_value) -> Result<Self> {
        let mut ty = 0;
        check_status!(unsafe { sys::napi_typeof(env, value, &mut ty) })?;
        if ty == sys::ValueType::napi_string {
            let mut inline = [0u8; KEY_INLINE];
            let mut written = 0usize;
            check_status!(unsafe {
                sys::napi_get_value_string_utf8(
                    env,
                    value,
                    inline.as_mut_ptr().cast(),
                    KEY_INLINE,
                    &mut written,
                )
            })?;
            // V8 stops before a character that does not fit (at most 4 UTF-8 bytes) and keeps
            // one byte for the NUL, so at least 4 spare bytes prove the string was complete.
            if written + 4 < KEY_INLINE - 1 {
                return Ok(KeyBytes::Inline(inline, written));
            }
            let mut len = 0usize;
            check_status!(unsafe {
                sys::napi_get_value_string_utf8(env, value, ptr::null_mut(), 0, &mut len)
            })?;
            let mut heap = vec![0u8; len + 1];
            check_status!(unsafe {
                sys::napi_get_value_string_utf8(
                    env,
                    value,
                    heap.as_mut_ptr().cast(),
                    len + 1,
                    &mut written,
                )
            })?;
            heap.truncate(written);
            return Ok(KeyBytes::Heap(heap));
        }
        if ty == sys::ValueType::napi_object {
            let mut kind = 0;
            let mut length = 0usize;
            let mut data: *mut c_void = ptr::null_mut();
            let mut ab = ptr::null_mut();
            let mut offset = 0usize;
            let status = unsafe {
                sys::napi_get_typedarray_info(
                    env,
                    value,
                    &mut kind,
                    &mut length,
                    &mut data,
                    &mut ab,
                    &mut offset,
                )
            };
            if status == sys::Status::napi_ok && kind == sys::TypedarrayType::uint8_array {
                return Ok(KeyBytes::Borrowed(if length == 0 {
                    &[]
                } else {
                    unsafe { std::slice::from_raw_parts(data as *const u8, length) }
                }));
            }
        }
        Err(invalid("key must be a string, Buffer or Uint8Array"))
    }
}

/// A table returned to JS as a `Uint32Array` over a fresh, JS-owned ArrayBuffer.
pub struct OwnedU32Array(Vec<u32>);

impl TypeName for OwnedU32Array {
    fn type_name() -> &'static str {
        "Uint32Array"
    }
    fn value_type() -> ValueType {
        ValueType::Object
    }
}

impl ToNapiValue for OwnedU32Array {
    unsafe fn to_napi_value(env: sys::napi_env, val: Self) -> Result<sys::napi_value> {
        let len = val.0.len();
        let mut data: *mut c_void = ptr::null_mut();
        let mut ab = ptr::null_mut();
        check_status!(unsafe { sys::napi_create_arraybuffer(env, len * 4, &mut data, &mut ab) })?;
        if len > 0 {
            unsafe {
                ptr::copy_nonoverlapping(val.0.as_ptr().cast::<u8>(), data.cast::<u8>(), len * 4)
            };
        }
        let mut ta = ptr::null_mut();
        check_status!(unsafe {
            sys::napi_create_typedarray(env, sys::TypedarrayType::uint32_array, len, ab, 0, &mut ta)
        })?;
        Ok(ta)
    }
}

/// `{ id, weight }` as `buildKetama`/`buildMaglev` take it.
#[napi(object)]
pub struct HostSpec {
    pub id: String,
    pub weight: f64,
}

fn host_specs(hosts: &[HostSpec]) -> Result<Vec<ring::HostSpec<'_>>> {
    hosts
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let w = h.weight;
            if !(w >= 1.0 && w <= ring::MAX_WEIGHT as f64 && w.fract() == 0.0) {
                return Err(invalid(ring::RingError::BadWeight(i).message()));
            }
            Ok(ring::HostSpec {
                id: h.id.as_bytes(),
                weight: w as u32,
            })
        })
        .collect()
}

fn ring_err(e: ring::RingError) -> Error {
    invalid(e.message())
}

/// `maxSteps` as a count: NaN and negatives are 0, fractions round down, anything above the
/// table size (Infinity included) is the table size. The JS twin does the same.
fn steps(max_steps: f64) -> u32 {
    if max_steps >= u32::MAX as f64 {
        u32::MAX
    } else if max_steps > 0.0 {
        max_steps as u32
    } else {
        0
    }
}

// ---- exports --------------------------------------------------------------------------------

/// `parseResponseHead(buf, start, end, out, maxHeadBytes?)`: see `sluice_core::head`;
/// `maxHeadBytes` defaults to 65536. Called once per upstream response head, so it is bound
/// by hand on raw N-API (`raw_exports` below) rather than through `#[napi]`: measured on this
/// VM, napi-rs's generated glue cost ~400–700 ns per call against ~60 ns for a plain C
/// N-API function taking a Buffer, several times the parse itself.
///
/// # Safety
/// Called by Node-API only, on the JS thread, with a valid `env` and `info`.
unsafe extern "C" fn parse_response_head_raw(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
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

fn concat_msg(name: &std::ffi::CStr, rest: &str) -> std::ffi::CString {
    std::ffi::CString::new(format!("{}{rest}", name.to_string_lossy())).unwrap_or_default()
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
unsafe extern "C" fn head_bind_raw(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
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
unsafe extern "C" fn parse_arena_head_raw(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
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
unsafe extern "C" fn compact_response_head_raw(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
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
unsafe extern "C" fn compact_arena_head_raw(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
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

/// Largest request head `writeString` sends itself (UTF-8 bytes); longer ones go through Node.
const WRITE_STRING_MAX: usize = 16 * 1024;

/// `writeString(fd, text)`: sends the UTF-8 bytes of `text` on the connected, non-blocking
/// socket `fd` with one `send` (MSG_NOSIGNAL | MSG_DONTWAIT), bypassing Node's stream. Returns
/// 0 when all bytes went out; k > 0 when only the first `length - k` did (the caller sends the
/// last k bytes through the stream); -1 when nothing was sent (EAGAIN, an error, or a text
/// longer than 16 KiB: the caller writes the whole text through the stream, which reports any
/// socket error through its own events). Only valid while the stream has nothing queued, so
/// that bytes keep their order. Bound by hand on raw N-API for the same reason as
/// `parseResponseHead`: once per upstream request.
///
/// # Safety
/// Called by Node-API only, on the JS thread, with a valid `env` and `info`.
unsafe extern "C" fn write_string_raw(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
    let mut argc: usize = 2;
    let mut argv: [sys::napi_value; 2] = [ptr::null_mut(); 2];
    if sys::napi_get_cb_info(env, info, &mut argc, argv.as_mut_ptr(), ptr::null_mut(), ptr::null_mut()) != sys::Status::napi_ok {
        return ptr::null_mut();
    }
    let mut fd: i32 = -1;
    if argc < 2 || sys::napi_get_value_int32(env, argv[0], &mut fd) != sys::Status::napi_ok {
        return throw_type_error(env, c"writeString: fd must be a number");
    }
    // Room for the largest text sent here plus one more character (<= 4 bytes) and the NUL
    // N-API adds: V8 copies whole characters only, so a longer text copies more than
    // WRITE_STRING_MAX bytes. Left uninitialised: N-API writes what is read back.
    let mut buf = std::mem::MaybeUninit::<[u8; WRITE_STRING_MAX + 5]>::uninit();
    let cap = WRITE_STRING_MAX + 5;
    let data = buf.as_mut_ptr() as *mut u8;
    let mut len: usize = 0;
    let status = sys::napi_get_value_string_utf8(env, argv[1], data as *mut _, cap, &mut len);
    if status != sys::Status::napi_ok {
        return throw_type_error(env, c"writeString: text must be a string");
    }
    let result = if len > WRITE_STRING_MAX {
        -1
    } else {
        let n = libc::send(fd, data as *const c_void, len, libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT);
        if n <= 0 && len > 0 { -1 } else { (len - n.max(0) as usize) as i32 }
    };
    let mut v = ptr::null_mut();
    sys::napi_create_int32(env, result, &mut v);
    v
}

extern "C" {
    /// src/uws_socket.cc: the us_socket_t* behind a uWS HttpResponse object, or null.
    fn sluice_uws_socket(value: sys::napi_value) -> *mut c_void;
    /// src/uws_socket.cc: the us_listen_socket_t* of a uWS listen token, or null.
    fn sluice_uws_listen_socket(value: sys::napi_value) -> *mut c_void;
}

/// Added to `uwsPeerAddress`'s byte count when the address is the one `accept` gave
/// (accept_peers.rs) rather than a `getpeername`'s.
const PEER_FROM_ACCEPT: i32 = 0x100;

/// `uwsPeerAddress(res, out, fromAccept)`: the client address of the connection behind the
/// uWS.js HttpResponse `res`, as uWS's `getRemoteAddress` gives it (4 bytes for IPv4, 16 for
/// IPv6) but written into `out` (a Uint8Array of at least 16 bytes) instead of a new
/// ArrayBuffer. Returns the byte count; 0 when the socket has no peer any more (uWS then gives
/// an empty address too); -1 when `res` is no live uWS response. With `fromAccept` true (and
/// `uwsAcceptPeers` done), the address `accept` gave when the connection has one
/// (accept_peers.rs), with PEER_FROM_ACCEPT added to the count; otherwise one `getpeername`,
/// as in uWS. The caller checks each kind of answer against `getRemoteAddress` before
/// trusting it (`PeerReader` in src/workers/http/downstream/client-address.ts). Bound by hand: once per
/// request.
///
/// # Safety
/// Called by Node-API only, on the JS thread, with a valid `env` and `info`. `res` must be a
/// uWS HttpResponse of this thread's loop (src/uws_socket.cc).
unsafe extern "C" fn uws_peer_address_raw(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
    let mut argc: usize = 3;
    let mut argv: [sys::napi_value; 3] = [ptr::null_mut(); 3];
    if sys::napi_get_cb_info(env, info, &mut argc, argv.as_mut_ptr(), ptr::null_mut(), ptr::null_mut()) != sys::Status::napi_ok {
        return ptr::null_mut();
    }
    let out = match typed_array::<u8>(env, argv[1], sys::TypedarrayType::uint8_array) {
        Some(out) if argc >= 2 && out.1 >= 16 => out,
        _ => return throw_type_error(env, c"uwsPeerAddress: out must be a Uint8Array of at least 16 bytes"),
    };
    let mut from_accept = false;
    if argc >= 3 && !is_nullish(env, argv[2]) && sys::napi_get_value_bool(env, argv[2], &mut from_accept) != sys::Status::napi_ok {
        return throw_type_error(env, c"uwsPeerAddress: fromAccept must be a boolean");
    }
    let s = sluice_uws_socket(argv[0]);
    let result = if s.is_null() {
        -1
    } else {
        match if from_accept { accept_peers::lookup(s, out.0) } else { 0 } {
            0 => peer_name(accept_peers::socket_fd(s), out.0),
            n => n as i32 | PEER_FROM_ACCEPT,
        }
    };
    let mut v = ptr::null_mut();
    sys::napi_create_int32(env, result, &mut v);
    v
}

/// `getpeername` of `fd` into `out` (16 bytes): 4 or 16 bytes written, 0 for none.
unsafe fn peer_name(fd: i32, out: *mut u8) -> i32 {
    let mut addr = std::mem::MaybeUninit::<libc::sockaddr_storage>::zeroed();
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    if libc::getpeername(fd, addr.as_mut_ptr() as *mut libc::sockaddr, &mut len) != 0 {
        return 0;
    }
    let addr = addr.assume_init();
    // SAFETY: `out` has room for 16 bytes (the caller checked); the family says which
    // sockaddr the storage holds.
    match addr.ss_family as i32 {
        libc::AF_INET => {
            let a = &*(&addr as *const libc::sockaddr_storage as *const libc::sockaddr_in);
            ptr::copy_nonoverlapping(&a.sin_addr.s_addr as *const u32 as *const u8, out, 4);
            4
        }
        libc::AF_INET6 => {
            let a = &*(&addr as *const libc::sockaddr_storage as *const libc::sockaddr_in6);
            ptr::copy_nonoverlapping(a.sin6_addr.s6_addr.as_ptr(), out, 16);
            16
        }
        _ => 0,
    }
}

/// `uwsAcceptPeers(file)`: makes `uwsPeerAddress(res, out, true)` answer from the addresses
/// `accept` gave (accept_peers.rs), finding uSockets' functions in the uWS binary `file`, which
/// this process must have loaded already. Returns whether it can; once per process, later
/// calls give the first answer.
///
/// # Safety
/// Called by Node-API only, on the JS thread, with a valid `env` and `info`.
unsafe extern "C" fn uws_accept_peers_raw(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
    let mut argc: usize = 1;
    let mut argv: [sys::napi_value; 1] = [ptr::null_mut(); 1];
    if sys::napi_get_cb_info(env, info, &mut argc, argv.as_mut_ptr(), ptr::null_mut(), ptr::null_mut()) != sys::Status::napi_ok {
        return ptr::null_mut();
    }
    let mut len: usize = 0;
    if argc < 1 || sys::napi_get_value_string_utf8(env, argv[0], ptr::null_mut(), 0, &mut len) != sys::Status::napi_ok {
        return throw_type_error(env, c"uwsAcceptPeers: file must be a string");
    }
    let mut path = vec![0u8; len + 1];
    sys::napi_get_value_string_utf8(env, argv[0], path.as_mut_ptr() as *mut _, len + 1, &mut len);
    let ok = match std::ffi::CStr::from_bytes_until_nul(&path) {
        Ok(file) if file.to_bytes().len() == len => accept_peers::open(file),
        _ => false,
    };
    let mut v = ptr::null_mut();
    sys::napi_get_boolean(env, ok, &mut v);
    v
}

/// `uwsAcceptPeersOn(token)`: wraps the uSockets context of the uWS.js listen socket `token`
/// (the External uWS hands to `listen`'s callback) now, before it accepts anything, so that
/// `uwsPeerAddress(res, out, true)` can answer from `accept` for every connection it accepts
/// (accept_peers.rs). Whether it did: false before `uwsAcceptPeers` succeeded, or when `token`
/// is not a listening uWS socket.
///
/// # Safety
/// Called by Node-API only, on the JS thread, with a valid `env` and `info`. An External
/// `token` must be a uWS.js listen token of this thread's loop.
unsafe extern "C" fn uws_accept_peers_on_raw(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
    let mut argc: usize = 1;
    let mut argv: [sys::napi_value; 1] = [ptr::null_mut(); 1];
    if sys::napi_get_cb_info(env, info, &mut argc, argv.as_mut_ptr(), ptr::null_mut(), ptr::null_mut()) != sys::Status::napi_ok {
        return ptr::null_mut();
    }
    let ok = argc >= 1 && accept_peers::wrap_listener(sluice_uws_listen_socket(argv[0]));
    let mut v = ptr::null_mut();
    sys::napi_get_boolean(env, ok, &mut v);
    v
}

/// Data pointer and element count of a typed array of the given kind, or None. An empty
/// array gives a dangling (never read) but non-null pointer.
pub(crate) unsafe fn typed_array<T>(env: sys::napi_env, v: sys::napi_value, kind: sys::napi_typedarray_type) -> Option<(*mut T, usize)> {
    let mut t: sys::napi_typedarray_type = -1;
    let mut len: usize = 0;
    let mut data: *mut c_void = ptr::null_mut();
    let status = sys::napi_get_typedarray_info(env, v, &mut t, &mut len, &mut data, ptr::null_mut(), ptr::null_mut());
    if status != sys::Status::napi_ok || t != kind {
        return None;
    }
    let data = if data.is_null() { ptr::NonNull::<T>::dangling().as_ptr() } else { data as *mut T };
    Some((data, len))
}

/// A number argument as u32 with JS's ToUint32 (so -1 is 4294967295, as in the JS twin).
unsafe fn uint32(env: sys::napi_env, v: sys::napi_value) -> Option<u32> {
    let mut n: u32 = 0;
    (sys::napi_get_value_uint32(env, v, &mut n) == sys::Status::napi_ok).then_some(n)
}

unsafe fn is_nullish(env: sys::napi_env, v: sys::napi_value) -> bool {
    let mut t: sys::napi_valuetype = 0;
    sys::napi_typeof(env, v, &mut t) != sys::Status::napi_ok || t == sys::ValueType::napi_undefined || t == sys::ValueType::napi_null
}

unsafe fn throw_range_error(env: sys::napi_env, msg: &std::ffi::CStr) -> sys::napi_value {
    sys::napi_throw_range_error(env, ptr::null(), msg.as_ptr());
    ptr::null_mut()
}

unsafe fn throw_type_error(env: sys::napi_env, msg: &std::ffi::CStr) -> sys::napi_value {
    sys::napi_throw_type_error(env, ptr::null(), msg.as_ptr());
    ptr::null_mut()
}

/// Adds the hand-bound functions to the exports napi-rs built.
#[napi(module_exports)]
pub fn raw_exports(exports: Object, env: Env) -> Result<()> {
    // SAFETY: plain N-API calls on this module's env and exports object during registration.
    unsafe {
        let raw: [(&std::ffi::CStr, sys::napi_callback); 16] = [
            (c"parseResponseHead", Some(parse_response_head_raw)),
            (c"compactResponseHead", Some(compact_response_head_raw)),
            (c"headBind", Some(head_bind_raw)),
            (c"parseArenaHead", Some(parse_arena_head_raw)),
            (c"compactArenaHead", Some(compact_arena_head_raw)),
            (c"writeString", Some(write_string_raw)),
            (c"uwsPeerAddress", Some(uws_peer_address_raw)),
            (c"uwsRequestHead", Some(uws_request::uws_request_head_raw)),
            (c"uwsRequestBind", Some(uws_request::uws_request_bind_raw)),
            (c"uwsAcceptPeers", Some(uws_accept_peers_raw)),
            (c"uwsAcceptPeersOn", Some(uws_accept_peers_on_raw)),
            (c"readerOpen", Some(reader::reader_open_raw)),
            (c"readerWatch", Some(reader::reader_watch_raw)),
            (c"readerRemove", Some(reader::reader_remove_raw)),
            (c"readerTake", Some(reader::reader_take_raw)),
            (c"readerWant", Some(reader::reader_want_raw)),
        ];
        for (name, cb) in raw {
            let mut f = ptr::null_mut();
            let status = sys::napi_create_function(env.raw(), name.as_ptr(), -1, cb, ptr::null_mut(), &mut f);
            if status != sys::Status::napi_ok || sys::napi_set_named_property(env.raw(), exports.raw(), name.as_ptr(), f) != sys::Status::napi_ok {
                return Err(Error::new(Status::GenericFailure, format!("cannot export {}", name.to_string_lossy())));
            }
        }
    }
    Ok(())
}

/// See `sluice_core::event_json`: the JSON of a request event's binary fields, or null when
/// they are malformed. The producer formats inside `KafkaFf.produceFrames`; this export is for
/// the tests that hold it to the JavaScript twin.
#[napi]
pub fn format_event_json(bin: &[u8]) -> Option<Buffer> {
    let mut out = Vec::with_capacity(bin.len() * 2);
    sluice_core::event_json::format_event(bin, &mut out).ok()?;
    Some(out.into())
}

/// xxh3-64 of the key's bytes (strings as UTF-8), low 53 bits, as an exact number.
#[napi]
pub fn hash_key(key: KeyBytes) -> f64 {
    hash::hash_key(key.bytes()) as f64
}

/// IEEE CRC-32 of the key's bytes (nginx's key hash for `hash ... consistent`).
#[napi]
pub fn crc32(key: KeyBytes) -> u32 {
    hash::crc32(key.bytes())
}

/// Ketama ring (nginx placement) packed as described in `sluice_core::ring`.
#[napi(ts_return_type = "Uint32Array")]
pub fn build_ketama(hosts: Vec<HostSpec>) -> Result<OwnedU32Array> {
    let specs = host_specs(&hosts)?;
    ring::build_ketama(&specs)
        .map(OwnedU32Array)
        .map_err(ring_err)
}

/// Maglev table of prime size `tableSize` (default 65537).
#[napi(ts_return_type = "Uint32Array")]
pub fn build_maglev(hosts: Vec<HostSpec>, table_size: Option<u32>) -> Result<OwnedU32Array> {
    let specs = host_specs(&hosts)?;
    let m = table_size.unwrap_or(ring::DEFAULT_MAGLEV_SIZE);
    ring::build_maglev(&specs, m)
        .map(OwnedU32Array)
        .map_err(ring_err)
}

/// Host index of the key (`keyHash` taken modulo 2^32), or -1 for an empty table.
#[napi]
pub fn lookup(table: &[u32], key_hash: u32) -> Result<i32> {
    Ok(ring::Table::new(table).map_err(ring_err)?.lookup(key_hash))
}

/// First eligible host within `maxSteps` points/slots from the key, or -1.
#[napi]
pub fn lookup_walk(table: &[u32], key_hash: u32, max_steps: f64, eligible: &[u8]) -> Result<i32> {
    ring::Table::new(table)
        .and_then(|t| t.lookup_walk(key_hash, steps(max_steps), eligible))
        .map_err(ring_err)
}

/// Bounded-load pick (HAProxy `hash-balance-factor` semantics; see `Table::lookup_bounded`).
#[napi]
pub fn lookup_bounded(
    table: &[u32],
    key_hash: u32,
    max_steps: f64,
    eligible: &[u8],
    loads: &[i32],
    factor: f64,
) -> Result<i32> {
    ring::Table::new(table)
        .and_then(|t| t.lookup_bounded(key_hash, steps(max_steps), eligible, loads, factor))
        .map_err(ring_err)
}

// ---- sockets Node cannot make ---------------------------------------------------------------

fn os_error(what: &str) -> Error {
    Error::new(Status::GenericFailure, format!("{what}: {}", std::io::Error::last_os_error()))
}

/// A listening TCP socket on `host:port` (an IP literal) with SO_REUSEADDR and SO_REUSEPORT,
/// non-blocking and close-on-exec; returns its file descriptor, which the caller owns (a Node
/// `net.Server` listens on it with `listen({ fd })` and closes it). Node 20's `net` cannot set
/// SO_REUSEPORT, and every HTTP worker thread needs its own socket on the shared port, as
/// uWS's listeners have (the Linux kernel spreads new connections over the group).
#[napi]
pub fn listen_reuse_port(host: String, port: u32, backlog: i32) -> Result<i32> {
    use std::net::{IpAddr, SocketAddr};
    let ip: IpAddr = host
        .parse()
        .map_err(|_| invalid(format!("listenReusePort: {host:?} is not an IP address")))?;
    if port > 65535 {
        return Err(invalid(format!("listenReusePort: port {port} is out of range")));
    }
    let addr = SocketAddr::new(ip, port as u16);
    // SAFETY: plain socket syscalls on a descriptor this function owns until it returns it;
    // the sockaddr structures are zeroed and filled before use and outlive the calls.
    unsafe {
        let family = if addr.is_ipv4() { libc::AF_INET } else { libc::AF_INET6 };
        let fd = libc::socket(family, libc::SOCK_STREAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK, 0);
        if fd < 0 {
            return Err(os_error("socket"));
        }
        let fail = |what: &str| {
            let e = os_error(what);
            libc::close(fd);
            e
        };
        let one: libc::c_int = 1;
        let len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        for opt in [libc::SO_REUSEADDR, libc::SO_REUSEPORT] {
            if libc::setsockopt(fd, libc::SOL_SOCKET, opt, &one as *const _ as *const c_void, len) != 0 {
                return Err(fail("setsockopt"));
            }
        }
        let mut storage: libc::sockaddr_storage = std::mem::zeroed();
        let sa_len = match addr {
            SocketAddr::V4(a) => {
                let sin = &mut *(&mut storage as *mut _ as *mut libc::sockaddr_in);
                sin.sin_family = libc::AF_INET as libc::sa_family_t;
                sin.sin_port = a.port().to_be();
                sin.sin_addr.s_addr = u32::from_ne_bytes(a.ip().octets());
                std::mem::size_of::<libc::sockaddr_in>()
            }
            SocketAddr::V6(a) => {
                let sin6 = &mut *(&mut storage as *mut _ as *mut libc::sockaddr_in6);
                sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
                sin6.sin6_port = a.port().to_be();
                sin6.sin6_addr.s6_addr = a.ip().octets();
                std::mem::size_of::<libc::sockaddr_in6>()
            }
        };
        if libc::bind(fd, &storage as *const _ as *const libc::sockaddr, sa_len as libc::socklen_t) != 0 {
            return Err(fail(&format!("bind {addr}")));
        }
        if libc::listen(fd, backlog) != 0 {
            return Err(fail("listen"));
        }
        Ok(fd)
    }
}
