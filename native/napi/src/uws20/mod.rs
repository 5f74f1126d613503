//! Everything in the addon that depends on uWebSockets.js 20.30's binary layout: built for and
//! checked against uWS.js v20.30.0 (its `uws_linux_x64_*.node`, uSockets' libuv backend) and
//! Node's V8. Another uWS.js build may lay these out differently; each reader below declines
//! (answers "no", never reads on) when what it finds is not the expected shape, the JavaScript
//! side asks only under 20.30 and holds the first answers to uWS's own functions, and
//! `test/unit/native-uws-compat.test.ts` fails when the installed uWS is not the build these
//! layouts were read from. What is read:
//!
//! - [`socket.cc`](socket.cc) (V8's C++ API): the one internal field of a uWS.js HttpResponse
//!   or HttpRequest object (the `uWS::HttpResponse*`, which is the connection's `us_socket_t*`,
//!   or the `uWS::HttpRequest*`), and the pointer in a listen token's `v8::External`.
//! - [`socket_fd`]: a `us_socket_t` starts with its `us_poll_t { uv_poll_t *uv_p; int fd; }`,
//!   the descriptor at byte 8.
//! - [`accept_peers`]: uSockets' `us_socket_context` and `us_socket_context_on_open`, found with
//!   `dlsym` in the loaded uWS binary, and the offset of `on_open` in `us_socket_context_t`
//!   (found at run time by letting the setter write into a stand-in; 0x38 in 20.30).
//! - [`request`]: `uWS::HttpRequest::headers[]`, an array of `{ std::string_view key, value }`
//!   (libstdc++: length, then pointer) at the start of the struct. The arithmetic on those
//!   numbers is `sluice_core::uws20`'s, tested there.
//!
//! The exports here (`uwsPeerAddress`, `uwsAcceptPeers`, `uwsAcceptPeersOn`, and
//! `uwsRequestBind`/`uwsRequestHead` in `request`) are bound by hand (lib.rs, `raw_exports`).

use std::ffi::c_void;
use std::ptr;

use napi::sys;

use crate::args::{is_nullish, throw_type_error, typed_array};

pub mod accept_peers;
pub mod request;

/// Where uSockets' libuv backend keeps a socket's descriptor: a `us_socket_t` starts with its
/// `us_poll_t { uv_poll_t *uv_p; int fd; }`. uWS's own `res_getRemoteAddress` reads it there
/// (`mov 0x8(%rax),%edi` before its getpeername).
pub const FD_OFFSET: usize = 8;

/// The descriptor of a uSockets socket (see `FD_OFFSET`).
///
/// # Safety
/// `s` is a live `us_socket_t` (or a `us_listen_socket_t`, which starts with one).
pub unsafe fn socket_fd(s: *const c_void) -> i32 {
    ptr::read_unaligned((s as *const u8).add(FD_OFFSET) as *const i32)
}

extern "C" {
    /// socket.cc: the us_socket_t* behind a uWS HttpResponse object, or null.
    pub(crate) fn sluice_uws_socket(value: sys::napi_value) -> *mut c_void;
    /// socket.cc: the us_listen_socket_t* of a uWS listen token, or null.
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
/// uWS HttpResponse of this thread's loop (socket.cc).
pub unsafe extern "C" fn uws_peer_address_raw(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
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
            // SAFETY: `out` has at least 16 bytes (checked above).
            0 => sluice_core::sockets::peer_name(socket_fd(s), &mut *(out.0 as *mut [u8; 16])) as i32,
            n => n as i32 | PEER_FROM_ACCEPT,
        }
    };
    let mut v = ptr::null_mut();
    sys::napi_create_int32(env, result, &mut v);
    v
}

/// `uwsAcceptPeers(file)`: makes `uwsPeerAddress(res, out, true)` answer from the addresses
/// `accept` gave (accept_peers.rs), finding uSockets' functions in the uWS binary `file`, which
/// this process must have loaded already. Returns whether it can; once per process, later
/// calls give the first answer.
///
/// # Safety
/// Called by Node-API only, on the JS thread, with a valid `env` and `info`.
pub unsafe extern "C" fn uws_accept_peers_raw(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
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
pub unsafe extern "C" fn uws_accept_peers_on_raw(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
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
