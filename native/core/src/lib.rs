//! Sluice hot-path primitives, free of any N-API dependency so that `cargo test` runs on them
//! alone: every Rust test of the addon is here, since the `sluice-native` crate's test binary
//! cannot link napi-rs code without Node. That crate (native/napi) is the N-API glue over this
//! one. The JavaScript versions of the parser (test/oracles/head-parser.ts) and of the hashing
//! and tables (src/shared/native/hashing.ts, used by production) are held to these functions by
//! `test/unit/native-*.test.ts`.
//!
//! - [`head`]: one-call HTTP/1.1 response-head parser that reports offsets, never strings.
//! - [`hash`]: key hashing (xxh3-64) and crc32 (for nginx-compatible ketama placement).
//! - [`event_json`]: a request event's JSON from the binary fields a worker sends.
//! - [`frames`]: the producer link's `PRODUCE` body read in place (the native fire-and-forget
//!   Kafka path).
//! - [`sockets`]: a SO_REUSEPORT listener and a connection's peer address (libc).
//! - [`uws20`]: the arithmetic on uWS.js 20.30's request and uSockets context layouts
//!   (which span a request's header views describe, where a context keeps `on_open`), so that
//!   it is tested here; the addon's `uws20` module does the reads.
//! - [`ring`]: ketama ring and Maglev table builders, packed into one `u32` array each, plus
//!   lookups (plain, bounded fallback walk with an eligibility mask, bounded load).
//!
//! Nothing here allocates per lookup or per parsed head, blocks, or panics on any input
//! (malformed tables and heads produce error values instead).

pub mod event_json;
pub mod frames;
pub mod hash;
pub mod head;
pub mod ring;
pub mod sockets;
pub mod uws20;
