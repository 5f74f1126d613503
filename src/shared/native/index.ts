/**
 * The native addon (native/, Rust via napi-rs), and `jsNative`, the JavaScript hashing
 * production uses on purpose.
 *
 * `loadNative()` loads build/Release/sluice_native.node (built by `npm ci` through
 * binding.gyp → native/build.js) and returns its functions, or throws a NativeLoadError saying how
 * to build it; it never falls back silently. `jsNative` is the addon's hashing, ring lookups
 * and event formatting in JavaScript (hashing.ts, xxh3.ts, ../event-binary.ts), bit-exact with
 * it: the callers that use it (key hashing for the balancer, rate limits and Kafka
 * partitions, ring lookups in the balancer) hash short keys, where an N-API crossing costs
 * more than the hash. The JavaScript response-head parser, which production never calls, is
 * test/oracles/head-parser.ts; test/oracles/js-native.ts adds it to `jsNative` for the
 * differential tests.
 *
 * Load the addon in the primary thread too: a shared library that some worker loaded then
 * stays mapped for the process's life, whatever workers come and go.
 *
 * Must never: load anything but the addon file, or run code at import time beyond building
 * constant tables.
 */

import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';

import { formatEventJson } from '../event-binary';
import * as hashing from './hashing';

export * from './head-layout';
export {
  KIND_KETAMA,
  KIND_MAGLEV,
  HDR_KIND,
  HDR_HOSTS,
  HDR_SIZE,
  HDR_TOTAL_WEIGHT,
  HDR_LEN,
  KETAMA_POINTS_PER_WEIGHT,
  MAX_WEIGHT,
  MAX_HOSTS,
  MAX_KETAMA_POINTS,
  DEFAULT_MAGLEV_SIZE,
  MAX_MAGLEV_SIZE,
} from './hashing';
export type { HostSpec } from './hashing';

/** The functions the addon exports; `jsNative` implements the same interface. */
export interface NativeApi {
  /**
   * Parses one HTTP/1.1 response head in `buf[start, end)` into `out` (layout: OUT_*).
   * Returns the head length (> 0), 0 when incomplete, or a negative ERR_* code. At most
   * `(out.length - 10) / 4` headers; `maxHeadBytes` defaults to 65536.
   */
  parseResponseHead(buf: Uint8Array, start: number, end: number, out: Uint32Array, maxHeadBytes?: number): number;
  /**
   * Into `dst`: `statusLine`, the header lines of the head parseResponseHead left in `out`
   * as received less the hop-by-hop ones, Date and Content-Length, then `extra` (the text for
   * uWS's writeStatus). Returns its length, or COMPACT_NOT_SIMPLE / COMPACT_TOO_LARGE.
   */
  compactResponseHead(buf: Uint8Array, out: Uint32Array, dst: Uint8Array, statusLine: string, extra: string): number;
  /** xxh3-64 of the key's bytes (strings as UTF-8), low 53 bits; `>>> 0` is the lookup hash. */
  hashKey(key: Uint8Array | string): number;
  /** IEEE CRC-32 of the key's bytes: nginx's key hash for `hash $key consistent`. */
  crc32(key: Uint8Array | string): number;
  /** Ketama ring, 160 points per weight unit, nginx placement; packed table (see hashing.ts). */
  buildKetama(hosts: readonly hashing.HostSpec[]): Uint32Array;
  /** Maglev table of prime size (default 65537); packed table. */
  buildMaglev(hosts: readonly hashing.HostSpec[], tableSize?: number): Uint32Array;
  /** Host index for the key hash (uint32), -1 for an empty table. */
  lookup(table: Uint32Array, keyHash: number): number;
  /** First host with `eligible[h] !== 0` within `maxSteps` points/slots of the key, or -1. */
  lookupWalk(table: Uint32Array, keyHash: number, maxSteps: number, eligible: Uint8Array): number;
  /** Bounded-load pick (HAProxy hash-balance-factor); see hashing.ts `lookupBounded`. */
  lookupBounded(
    table: Uint32Array,
    keyHash: number,
    maxSteps: number,
    eligible: Uint8Array,
    loads: Int32Array,
    factor: number,
  ): number;
  /** The JSON of a request event's binary fields (src/shared/event-binary.ts), or null when malformed. */
  formatEventJson(bin: Uint8Array): Buffer | null;
}

/**
 * The addon: the functions above plus platform calls that have no JavaScript twin because
 * Node cannot make them (native/napi/src/lib.rs).
 */
export interface NativeAddon extends NativeApi {
  /**
   * A listening TCP socket on `host:port` (an IP literal) with SO_REUSEADDR and
   * SO_REUSEPORT; returns its file descriptor for `net.Server.listen({ fd })`, which then
   * owns it. Throws with the OS error (EADDRINUSE, EACCES, ...) naming the address.
   */
  listenReusePort(host: string, port: number, backlog: number): number;
  /**
   * Sends the UTF-8 bytes of `text` (at most 16 KiB) on the connected socket `fd` with one
   * non-blocking `send`, bypassing Node's stream: 0 = all sent; k > 0 = the last k bytes were
   * not; -1 = nothing was (EAGAIN, an error, or a longer text). Only while the socket's
   * stream has nothing queued (src/workers/http/upstream/pool.ts `Conn.writeText`).
   */
  writeString(fd: number, text: string): number;
  /**
   * The client address of the connection behind a uWS.js HttpResponse, as uWS's
   * getRemoteAddress gives it (4 bytes IPv4, 16 IPv6) but written into `out` (>= 16 bytes)
   * instead of a new ArrayBuffer: returns the byte count, 0 when the socket has no peer, -1
   * when `res` is no live uWS response. With `fromAccept` (after `uwsAcceptPeers`), the
   * address `accept` gave when the connection has one, with PEER_FROM_ACCEPT added to the
   * count; otherwise one `getpeername`. It finds the socket through uWS.js and uSockets
   * internals (native/napi/src/uws20/socket.cc, uws20/accept_peers.rs): only for uWS responses of
   * this thread, and each kind of answer trusted only after a check against getRemoteAddress
   * (src/workers/http/downstream/client-address.ts).
   */
  uwsPeerAddress(res: object, out: Uint8Array, fromAccept?: boolean): number;
  /**
   * The head of the uWS.js HttpRequest `req` (during its handler) as one Latin-1 string of
   * its bytes, from the method to the end of the last header value, with the `out` of
   * uwsRequestBind holding the header count and the start and end of the method, the URL
   * (query included), where its first `?` is (-1: none), and each header's name and value.
   * Null when it cannot answer, with `out[0]` saying why: -1 not a live request, -2 a byte
   * >= 0x80 in the head, -3 not the layout of uWS 20.30, -4 `out` too small. It reads uWS
   * internals (native/napi/src/uws20/request.rs): trusted only after a check against uWS's own
   * functions (src/workers/http/downstream/request-head.ts).
   */
  uwsRequestHead(req: object): string | null;
  /** Binds this thread's Int32Array for uwsRequestHead's offsets (more than 6 slots); a later call replaces it. */
  uwsRequestBind(out: Int32Array): void;
  /**
   * Lets `uwsPeerAddress(res, out, true)` answer from the addresses `accept` gave, by
   * wrapping each uWS context's `on_open` (native/napi/src/uws20/accept_peers.rs). `file` is the
   * uWS.js binary this process loaded (`uwsBinaryFile()`). Whether it can; once per process.
   */
  uwsAcceptPeers(file: string): boolean;
  /**
   * Wraps the context of the uWS listen socket `token` now, before it accepts anything, so
   * that every connection it accepts has the address `accept` gave. Whether it did (false
   * before `uwsAcceptPeers` succeeded, or for anything but a listening uWS socket).
   */
  uwsAcceptPeersOn(token: unknown): boolean;
  /**
   * Starts this thread's upstream reader (native/napi/src/reader.rs): watched descriptors are
   * read into `arena` by the addon (while reads come back full, up to 256 KiB of one
   * descriptor per turn), and `onTurn` is called in the check phase of a turn that read
   * anything or after `readerWant`, with the number of reads it hands over at
   * `entries[READER_COUNT]`. `entries` receives one triple per read from index
   * READER_ENTRY_BASE: slot, start in the arena, length (> 0 bytes, 0 end of stream,
   * < 0 -errno). Once per thread.
   */
  readerOpen(arena: Uint8Array, entries: Int32Array, onTurn: () => void): number;
  /** Watches `fd` (of connection `slot`) for reads when `on` is 1, stops when 0. 0 or -errno. */
  readerWatch(fd: number, slot: number, on: number): number;
  /** Forgets `fd` if it was watched for `slot` (before the descriptor closes): 0, else -1. */
  readerRemove(fd: number, slot: number): number;
  /** The number of reads in `entries` since the last take; the arena is free again. */
  readerTake(): number;
  /** Asks for this turn's `onTurn` call even if nothing is read: 0, or -1 when no reader is open. */
  readerWant(): number;
  /**
   * Binds this thread's parse offsets (`out`, parseResponseHead's layout) and head block
   * (`dst`) for parseArenaHead and compactArenaHead, which then take no typed array (each
   * typed-array argument is a `napi_get_typedarray_info` per call). A later call replaces it.
   */
  headBind(out: Uint32Array, dst: Uint8Array): void;
  /** parseResponseHead over this thread's reader arena (`readerOpen`) into the bound `out`. */
  parseArenaHead(start: number, end: number, maxHeadBytes?: number): number;
  /** compactResponseHead from the reader arena and the bound `out` into the bound `dst`. */
  compactArenaHead(statusLine: string, extra: string): number;
  /**
   * A fire-and-forget Kafka client on the librdkafka the Kafka client already loaded
   * (native/napi/src/librdkafka_ff.rs); only in the producer process, after
   * @confluentinc/kafka-javascript was loaded. Its JavaScript twin is the producer's pair of
   * fire-and-forget clients (src/workers/producer/epoch-clients.ts).
   */
  KafkaFf: new (properties: readonly string[]) => KafkaFf;
}

/** Added to uwsPeerAddress's byte count for an address `accept` gave (native/napi/src/uws20/mod.rs). */
export const PEER_FROM_ACCEPT = 0x100;

/** Where the reader writes the number of reads it hands to `onTurn` (native/napi/src/reader.rs COUNT). */
export const READER_COUNT = 0;
/** The first triple of readerOpen's `entries` (native/napi/src/reader.rs ENTRY_BASE). */
export const READER_ENTRY_BASE = 4;

/** A PRODUCE body for this client was not a fire-and-forget record: decode it in JavaScript. */
export const KAFKA_FF_NOT_HANDLED = -1;
/** librdkafka refused the record (`lastError()` gives its code). */
export const KAFKA_FF_REFUSED = -2;
/** `accept` bits of KafkaFf.produce/produceFrames: RF_UNORDERED records (request events). */
export const KAFKA_FF_ACCEPT_UNORDERED = 1;
/** `accept` bits: RF_FF_ORDERED records (async-only HTTP → Kafka routes). */
export const KAFKA_FF_ACCEPT_ORDERED = 2;

/** See NativeAddon.KafkaFf and native/napi/src/librdkafka_ff.rs. */
export interface KafkaFf {
  /**
   * Produces the PRODUCE body `buf[start, end)` of link `connNo` if it is a fire-and-forget
   * record (id 0; keyed and hash-partitioned only once its topic's count was set) of a kind `accept` lets through
   * (KAFKA_FF_ACCEPT_*): its key + value bytes, else KAFKA_FF_NOT_HANDLED or KAFKA_FF_REFUSED.
   */
  produce(buf: Uint8Array, start: number, end: number, connNo: number, accept: number): number;
  /**
   * Produces the complete PRODUCE frames (length prefix, type, body) of link `connNo` in
   * `buf[start, end)`, from `start` on, while they are fire-and-forget records librdkafka
   * accepts. Returns where it stopped (`end`, or the first frame not taken, for the caller to
   * handle frame by frame); `out[0]` = records taken, `out[1]` = their key + value bytes.
   */
  produceFrames(buf: Uint8Array, start: number, end: number, connNo: number, accept: number, maxFrameBytes: number, out: Float64Array): number;
  /** The partition count of `topic` for records placed by key hash; 0 forgets it. */
  setPartitionCount(topic: string, count: number): void;
  lastError(): number;
  errorText(code: number): string;
  /** Outcomes since the last call: `[connNo, delivered, failed, bytes, lastError]` per link. */
  takeOutcomes(): number[];
  /** librdkafka errors (`kind` "error", `code`) and log lines (`kind` "log", `code` = syslog level). */
  takeEvents(): { kind: string; code: number; fac: string; message: string }[];
  /** Errors and log lines not kept since the last call (more than 1000 between two takeEvents()). */
  takeDroppedEvents(): number;
  takeStats(): string | null;
  outqLen(): number;
  /** Records are sent at once from now on (shutdown). */
  startFlushing(): void;
  /** Fails what is left (reported and counted), waits up to `waitMs` for the reports, destroys. */
  close(waitMs: number): void;
}

const API_FUNCTIONS: readonly (keyof NativeAddon)[] = [
  'listenReusePort',
  'writeString',
  'uwsPeerAddress',
  'uwsRequestHead',
  'uwsRequestBind',
  'uwsAcceptPeers',
  'uwsAcceptPeersOn',
  'readerOpen',
  'readerWatch',
  'readerRemove',
  'readerTake',
  'readerWant',
  'headBind',
  'parseArenaHead',
  'compactArenaHead',
  'KafkaFf',
  'parseResponseHead',
  'compactResponseHead',
  'hashKey',
  'crc32',
  'buildKetama',
  'buildMaglev',
  'lookup',
  'lookupWalk',
  'lookupBounded',
  'formatEventJson',
];

/** The functions of NativeApi that production runs in JavaScript (see the module doc). */
export type JsNativeApi = Omit<NativeApi, 'parseResponseHead' | 'compactResponseHead'>;

/** The addon's hashing, lookups and event formatting in JavaScript, with exactly its behaviour. */
export const jsNative: JsNativeApi = Object.freeze({
  hashKey: hashing.hashKey,
  crc32: hashing.crc32,
  buildKetama: hashing.buildKetama,
  buildMaglev: hashing.buildMaglev,
  lookup: hashing.lookup,
  lookupWalk: hashing.lookupWalk,
  lookupBounded: hashing.lookupBounded,
  formatEventJson: (bin: Uint8Array) => formatEventJson(Buffer.from(bin.buffer, bin.byteOffset, bin.byteLength), 0, bin.byteLength),
});

/** Where the addon lives relative to the package root. */
export const NATIVE_ADDON_RELATIVE_PATH = path.join('build', 'Release', 'sluice_native.node');

/**
 * Thrown by loadNative(). A start-up failure, not a request error, so it has no code in the
 * src/shared/errors.ts registry; callers report it and exit non-zero.
 */
export class NativeLoadError extends Error {
  override readonly name = 'NativeLoadError';
}

/**
 * The package root: the nearest ancestor of this file holding binding.gyp (this file runs
 * from src/shared/native under ts tooling and from dist/src/shared/native once compiled).
 */
function packageRoot(): string | null {
  let dir = __dirname;
  for (let i = 0; i < 8; i++) {
    if (fs.existsSync(path.join(dir, 'binding.gyp'))) return dir;
    const parent = path.dirname(dir);
    if (parent === dir) break;
    dir = parent;
  }
  return null;
}

/** Absolute path of the addon file (whether or not it exists). */
export function nativeAddonPath(): string {
  const root = packageRoot() ?? path.resolve(__dirname, '..', '..', '..', '..');
  return path.join(root, NATIVE_ADDON_RELATIVE_PATH);
}

let loaded: NativeAddon | undefined;

/** Loads the addon once per thread and returns its functions; throws NativeLoadError. */
export function loadNative(): NativeAddon {
  if (loaded) return loaded;
  const file = nativeAddonPath();
  const howToBuild = 'build it with `npm ci` (or `node native/build.js`; needs Rust/cargo >= 1.88)';
  if (!fs.existsSync(file)) {
    throw new NativeLoadError(`Sluice native addon not found at ${file}: ${howToBuild}`);
  }
  let mod: unknown;
  try {
    mod = createRequire(__filename)(file);
  } catch (err) {
    throw new NativeLoadError(`Sluice native addon ${file} failed to load (${(err as Error).message}): ${howToBuild}`, {
      cause: err,
    });
  }
  const missing = API_FUNCTIONS.filter((name) => typeof (mod as Record<string, unknown>)[name] !== 'function');
  if (missing.length > 0) {
    throw new NativeLoadError(`Sluice native addon ${file} lacks ${missing.join(', ')}: it is stale; ${howToBuild}`);
  }
  loaded = mod as NativeAddon;
  return loaded;
}
