//! N-API glue for `sluice-core`: the exports only convert arguments, call into a module and
//! convert the result. Exported names are camelCased by napi-rs (`parse_response_head` →
//! `parseResponseHead`); their TypeScript types are declared in `src/shared/native/index.ts`.
//!
//! - this file: the `#[napi]` exports over `sluice_core` (hashing, ketama/Maglev), their
//!   argument types, and `raw_exports`, which adds the functions bound by hand on raw N-API;
//! - [`args`]: reading arguments and throwing on raw N-API;
//! - [`response_head`]: the response-head exports (`parseResponseHead`, `compactResponseHead`,
//!   their bound forms over the reader's arena);
//! - [`net`]: sockets Node cannot make or write as cheaply (`listenReusePort`, `writeString`);
//! - [`reader`]: the upstream reader (epoll set watched by libuv);
//! - [`uws20`]: everything that reads uWS.js 20.30 / uSockets / V8 memory layouts;
//! - [`librdkafka_ff`]: the producer's fire-and-forget path into the dlopen'ed librdkafka.
//!
//! The logic these call and its tests live in `native/core` (`cargo test` from `native/`).
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

use sluice_core::{hash, ring};

mod args;
mod librdkafka_ff;
mod net;
mod reader;
mod response_head;
mod uws20;

pub(crate) fn invalid(msg: impl Into<String>) -> Error {
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

/// Adds the hand-bound functions to the exports napi-rs built.
#[napi(module_exports)]
pub fn raw_exports(exports: Object, env: Env) -> Result<()> {
    // SAFETY: plain N-API calls on this module's env and exports object during registration.
    unsafe {
        let raw: [(&std::ffi::CStr, sys::napi_callback); 16] = [
            (c"parseResponseHead", Some(response_head::parse_response_head_raw)),
            (c"compactResponseHead", Some(response_head::compact_response_head_raw)),
            (c"headBind", Some(response_head::head_bind_raw)),
            (c"parseArenaHead", Some(response_head::parse_arena_head_raw)),
            (c"compactArenaHead", Some(response_head::compact_arena_head_raw)),
            (c"writeString", Some(net::write_string_raw)),
            (c"uwsPeerAddress", Some(uws20::uws_peer_address_raw)),
            (c"uwsRequestHead", Some(uws20::request::uws_request_head_raw)),
            (c"uwsRequestBind", Some(uws20::request::uws_request_bind_raw)),
            (c"uwsAcceptPeers", Some(uws20::uws_accept_peers_raw)),
            (c"uwsAcceptPeersOn", Some(uws20::uws_accept_peers_on_raw)),
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
        .and_then(|t| t.lookup_walk(key_hash, ring::steps(max_steps), eligible))
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
        .and_then(|t| t.lookup_bounded(key_hash, ring::steps(max_steps), eligible, loads, factor))
        .map_err(ring_err)
}
