//! Sockets Node cannot make (`listenReusePort`) or write as cheaply (`writeString`).

use std::ffi::c_void;
use std::ptr;

use napi::bindgen_prelude::*;
use napi::sys;
use napi_derive::napi;

use sluice_core::sockets;

use crate::args::throw_type_error;
use crate::invalid;

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
pub unsafe extern "C" fn write_string_raw(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
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

/// A listening TCP socket on `host:port` (an IP literal) with SO_REUSEADDR and SO_REUSEPORT,
/// non-blocking and close-on-exec; returns its file descriptor, which the caller owns (a Node
/// `net.Server` listens on it with `listen({ fd })` and closes it). Node 20's `net` cannot set
/// SO_REUSEPORT, and every HTTP worker thread needs its own socket on the shared port, as
/// uWS's listeners have (the Linux kernel spreads new connections over the group).
// Under cfg(test) napi-rs generates no registration, which leaves the function unused there.
#[cfg_attr(test, allow(dead_code))]
#[napi]
pub fn listen_reuse_port(host: String, port: u32, backlog: i32) -> Result<i32> {
    use std::net::{IpAddr, SocketAddr};
    let ip: IpAddr = host
        .parse()
        .map_err(|_| invalid(format!("listenReusePort: {host:?} is not an IP address")))?;
    if port > 65535 {
        return Err(invalid(format!("listenReusePort: port {port} is out of range")));
    }
    sockets::listen_reuse_port(SocketAddr::new(ip, port as u16), backlog).map_err(|e| Error::new(Status::GenericFailure, e))
}
