/**
 * Key hashing and consistent-hashing tables: JavaScript twins of `native/core/src/hash.rs` and
 * `native/core/src/ring.rs`. Same inputs, same outputs (tables identical word for word, same
 * lookups, same error messages); test/unit/native-hashing.test.ts checks it.
 *
 * A table (ketama ring or Maglev table) is one Uint32Array with a self-describing header, so
 * the primary thread can build it once, natively or here, and any worker can search it with
 * either implementation, or keep it in a SharedArrayBuffer:
 *
 *   [0] kind (KIND_KETAMA | KIND_MAGLEV)   [1] host count H   [2] size N   [3] total weight
 *   [4 .. 4+H)            host weights, in input order
 *   ketama: [4+H .. 4+H+N) point hashes ascending, [4+H+N .. 4+H+2N) host index per point
 *   maglev: [4+H .. 4+H+N) host index per slot (N = table size, prime)
 *
 * Lookups take the key hash as a uint32 (`hashKey(key) >>> 0`, or `crc32(key)` to map keys
 * exactly as nginx's `hash $key consistent` does) and never allocate.
 */

import { xxh3Low53, xxh3Parts } from './xxh3';

export const KIND_KETAMA = 0x534c4b31; // "SLK1"
export const KIND_MAGLEV = 0x534c4d31; // "SLM1"
export const HDR_KIND = 0;
export const HDR_HOSTS = 1;
export const HDR_SIZE = 2;
export const HDR_TOTAL_WEIGHT = 3;
export const HDR_LEN = 4;

export const KETAMA_POINTS_PER_WEIGHT = 160;
export const MAX_WEIGHT = 10_000;
export const MAX_HOSTS = 65_536;
export const MAX_KETAMA_POINTS = 1 << 23;
export const DEFAULT_MAGLEV_SIZE = 65_537;
export const MAX_MAGLEV_SIZE = 1 << 24;

export interface HostSpec {
  /** `host:port`; ketama splits it at the last `:` as nginx does, Maglev hashes all of it. */
  readonly id: string;
  /** Integer 1..MAX_WEIGHT. */
  readonly weight: number;
}

const MSG_BAD_TABLE = 'not a ketama ring or Maglev table';
const MSG_SHORT_ARRAY = 'eligible/loads must have one entry per host';
const MSG_BAD_FACTOR = 'balance factor must be a finite number >= 1';

// ---- key bytes ------------------------------------------------------------------------------

const KEY_SCRATCH = new Uint8Array(256);
const encoder = new TextEncoder();
let keyLen = 0;

/** The key's bytes (strings as UTF-8, invalid surrogates as U+FFFD, like N-API); sets keyLen. */
function keyBytes(key: Uint8Array | string): Uint8Array {
  if (typeof key !== 'string') {
    if (!(key instanceof Uint8Array)) throw new TypeError('key must be a string, Buffer or Uint8Array');
    keyLen = key.length;
    return key;
  }
  const n = key.length;
  if (n <= KEY_SCRATCH.length) {
    let i = 0;
    for (; i < n; i++) {
      const c = key.charCodeAt(i);
      if (c >= 0x80) break;
      KEY_SCRATCH[i] = c;
    }
    if (i === n) {
      keyLen = n;
      return KEY_SCRATCH;
    }
    const r = encoder.encodeInto(key, KEY_SCRATCH);
    if (r.read === n) {
      keyLen = r.written;
      return KEY_SCRATCH;
    }
  }
  const bytes = encoder.encode(key);
  keyLen = bytes.length;
  return bytes;
}

// ---- hashes ---------------------------------------------------------------------------------

/** xxh3-64 of the key's bytes, low 53 bits (an exact integer). `>>> 0` gives the lookup hash. */
export function hashKey(key: Uint8Array | string): number {
  const b = keyBytes(key);
  return xxh3Low53(b, keyLen);
}

const CRC_TABLE = new Uint32Array(256);
for (let i = 0; i < 256; i++) {
  let c = i;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  CRC_TABLE[i] = c >>> 0;
}

export const CRC32_INIT = 0xffffffff;

export function crc32Update(state: number, b: Uint8Array, from = 0, to = b.length): number {
  let s = state;
  for (let i = from; i < to; i++) s = (CRC_TABLE[(s ^ (b[i] as number)) & 0xff] as number) ^ (s >>> 8);
  return s >>> 0;
}

export function crc32Final(state: number): number {
  return (state ^ 0xffffffff) >>> 0;
}

/** IEEE CRC-32 of the key's bytes (nginx's key hash for `hash ... consistent`). */
export function crc32(key: Uint8Array | string): number {
  const b = keyBytes(key);
  return crc32Final(crc32Update(CRC32_INIT, b, 0, keyLen));
}

// ---- builders -------------------------------------------------------------------------------

function checkHosts(hosts: readonly HostSpec[]): number {
  if (hosts.length > MAX_HOSTS) throw new RangeError(`at most ${MAX_HOSTS} hosts`);
  let total = 0;
  hosts.forEach((h, i) => {
    const w = h.weight;
    if (!(typeof w === 'number' && w >= 1 && w <= MAX_WEIGHT && Number.isInteger(w))) {
      throw new RangeError(`hosts[${i}].weight must be an integer from 1 to ${MAX_WEIGHT}`);
    }
    total += w;
  });
  return total;
}

function header(kind: number, hosts: readonly HostSpec[], size: number, totalWeight: number, data: number): Uint32Array {
  const t = new Uint32Array(HDR_LEN + hosts.length + data);
  t[HDR_KIND] = kind;
  t[HDR_HOSTS] = hosts.length;
  t[HDR_SIZE] = size;
  t[HDR_TOTAL_WEIGHT] = totalWeight;
  hosts.forEach((h, i) => (t[HDR_LEN + i] = h.weight));
  return t;
}

/** ketama: nginx/pingora placement, see native/core/src/ring.rs `build_ketama`. */
export function buildKetama(hosts: readonly HostSpec[]): Uint32Array {
  const totalWeight = checkHosts(hosts);
  const totalPoints = totalWeight * KETAMA_POINTS_PER_WEIGHT;
  if (totalPoints > MAX_KETAMA_POINTS) {
    throw new RangeError(`total weight * 160 must not exceed ${MAX_KETAMA_POINTS} ring points`);
  }
  // hash * 2^16 + host index: exact in a double (< 2^48), sorts by hash then host.
  const keys = new Float64Array(totalPoints);
  const prev = new Uint8Array(4);
  const zero = new Uint8Array(1);
  let k = 0;
  hosts.forEach((h, index) => {
    const id = encoder.encode(h.id);
    let colon = -1;
    const unix = id.length >= 5 && eqAsciiLower(id, 'unix:');
    if (!unix) colon = id.lastIndexOf(0x3a);
    const hostFrom = unix ? 5 : 0;
    const hostTo = unix ? id.length : colon >= 0 ? colon : id.length;
    const portFrom = unix || colon < 0 ? id.length : colon + 1;
    let base = crc32Update(CRC32_INIT, id, hostFrom, hostTo);
    base = crc32Update(base, zero);
    base = crc32Update(base, id, portFrom, id.length);
    prev.fill(0);
    for (let j = 0; j < h.weight * KETAMA_POINTS_PER_WEIGHT; j++) {
      const hash = crc32Final(crc32Update(base, prev));
      keys[k++] = hash * 65536 + index;
      prev[0] = hash & 0xff;
      prev[1] = (hash >>> 8) & 0xff;
      prev[2] = (hash >>> 16) & 0xff;
      prev[3] = hash >>> 24;
    }
  });
  keys.sort();
  let n = 0;
  let last = -1;
  for (let i = 0; i < keys.length; i++) {
    const hash = Math.floor((keys[i] as number) / 65536);
    if (hash !== last) {
      keys[n++] = keys[i] as number;
      last = hash;
    }
  }
  const t = header(KIND_KETAMA, hosts, n, totalWeight, 2 * n);
  const base = HDR_LEN + hosts.length;
  for (let i = 0; i < n; i++) {
    const key = keys[i] as number;
    t[base + i] = Math.floor(key / 65536);
    t[base + n + i] = key % 65536;
  }
  return t;
}

function eqAsciiLower(b: Uint8Array, lit: string): boolean {
  for (let i = 0; i < lit.length; i++) {
    const c = b[i] as number;
    if ((c >= 0x41 && c <= 0x5a ? c | 0x20 : c) !== lit.charCodeAt(i)) return false;
  }
  return true;
}

function isPrime(n: number): boolean {
  if (n < 2) return false;
  if (n % 2 === 0) return n === 2;
  for (let d = 3; d * d <= n; d += 2) if (n % d === 0) return false;
  return true;
}

/** Maglev with Envoy-style weights, see native/core/src/ring.rs `build_maglev`. */
export function buildMaglev(hosts: readonly HostSpec[], tableSize?: number): Uint32Array {
  const totalWeight = checkHosts(hosts);
  const m = (tableSize ?? DEFAULT_MAGLEV_SIZE) >>> 0; // the N-API glue takes an optional u32
  if (!isPrime(m) || m > MAX_MAGLEV_SIZE || m < hosts.length) {
    throw new RangeError(`Maglev table size must be a prime >= the host count and <= ${MAX_MAGLEV_SIZE}`);
  }
  const n = hosts.length;
  if (n === 0) return header(KIND_MAGLEV, hosts, 0, 0, 0);
  const offset = new Float64Array(n);
  const skip = new Float64Array(n);
  const parts = new Uint32Array(2);
  hosts.forEach((h, i) => {
    const id = encoder.encode(h.id);
    xxh3Parts(id, id.length, parts);
    offset[i] = (parts[1] as number) % m;
    skip[i] = ((parts[0] as number) % (m - 1)) + 1;
  });
  let maxWeight = 1;
  for (const h of hosts) maxWeight = Math.max(maxWeight, h.weight);
  const next = new Float64Array(n);
  const target = new Float64Array(n);
  const t = header(KIND_MAGLEV, hosts, m, totalWeight, m);
  const base = HDR_LEN + n;
  const EMPTY = 0xffffffff;
  t.fill(EMPTY, base);
  let filled = 0;
  for (let round = 1; filled < m; round++) {
    for (let i = 0; i < n; i++) {
      if (filled === m) break;
      if (round * (hosts[i] as HostSpec).weight < (target[i] as number)) continue;
      target[i] = (target[i] as number) + maxWeight;
      const off = offset[i] as number, sk = skip[i] as number;
      let nx = next[i] as number;
      let c = (off + nx * sk) % m;
      while (t[base + c] !== EMPTY) {
        nx++;
        c = (off + nx * sk) % m;
      }
      t[base + c] = i;
      next[i] = nx + 1;
      filled++;
    }
  }
  return t;
}

// ---- lookups --------------------------------------------------------------------------------

// Checked view of the last table (module-level registers: lookups allocate nothing).
let vKetama = false;
let vHosts = 0;
let vSize = 0;
let vBase = 0;

function view(t: Uint32Array): void {
  if (t.length < HDR_LEN) throw new RangeError(MSG_BAD_TABLE);
  const kind = t[HDR_KIND];
  if (kind !== KIND_KETAMA && kind !== KIND_MAGLEV) throw new RangeError(MSG_BAD_TABLE);
  vKetama = kind === KIND_KETAMA;
  vHosts = t[HDR_HOSTS] as number;
  vSize = t[HDR_SIZE] as number;
  vBase = HDR_LEN + vHosts;
  if (t.length !== vBase + (vKetama ? 2 * vSize : vSize)) throw new RangeError(MSG_BAD_TABLE);
}

/** Index of the key's first point (ketama) or slot (Maglev); table in view(), size > 0. */
function startIndex(t: Uint32Array, keyHash: number): number {
  if (!vKetama) return keyHash % vSize;
  let lo = 0;
  let hi = vSize;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((t[vBase + mid] as number) < keyHash) lo = mid + 1;
    else hi = mid;
  }
  return lo === vSize ? 0 : lo;
}

function hostAt(t: Uint32Array, i: number): number {
  return t[vBase + (vKetama ? vSize : 0) + i] as number;
}

/** Same coercion as the N-API glue: NaN/negatives → 0, fractions down, capped. */
function steps(maxSteps: number): number {
  if (maxSteps >= 0xffffffff) return 0xffffffff;
  return maxSteps > 0 ? Math.floor(maxSteps) : 0;
}

/** The key's host index, or -1 for an empty table. `keyHash` is taken modulo 2^32. */
export function lookup(table: Uint32Array, keyHash: number): number {
  view(table);
  if (vSize === 0) return -1;
  return hostAt(table, startIndex(table, keyHash >>> 0));
}

/**
 * Walks at most `maxSteps` points/slots from the key's position (the first included) and
 * returns the first host whose `eligible` byte is non-zero, or -1. `eligible` has one byte
 * per host (the caller keeps one per worker and flips bytes for unhealthy / already tried).
 */
export function lookupWalk(table: Uint32Array, keyHash: number, maxSteps: number, eligible: Uint8Array): number {
  view(table);
  if (eligible.length < vHosts) throw new RangeError(MSG_SHORT_ARRAY);
  if (vSize === 0) return -1;
  let i = startIndex(table, keyHash >>> 0);
  const n = Math.min(steps(maxSteps), vSize);
  for (let s = 0; s < n; s++) {
    const h = hostAt(table, i);
    if (h < eligible.length && eligible[h] !== 0) return h;
    if (++i === vSize) i = 0;
  }
  return -1;
}

/**
 * Bounded-load pick (HAProxy `hash-balance-factor`): the first eligible host within
 * `maxSteps` whose `loads[h] + 1 <= max(1, ceil(factor * (L + 1) * w[h] / W))`, L = sum of
 * all loads, W = total weight of eligible hosts; if none fits, the first eligible host seen;
 * -1 if none is eligible.
 */
export function lookupBounded(
  table: Uint32Array,
  keyHash: number,
  maxSteps: number,
  eligible: Uint8Array,
  loads: Int32Array,
  factor: number,
): number {
  view(table);
  if (eligible.length < vHosts || loads.length < vHosts) throw new RangeError(MSG_SHORT_ARRAY);
  if (!(factor >= 1) || !Number.isFinite(factor)) throw new RangeError(MSG_BAD_FACTOR);
  if (vSize === 0) return -1;
  let totalLoad = 0;
  let eligibleWeight = 0;
  for (let h = 0; h < vHosts; h++) {
    totalLoad += loads[h] as number;
    if (eligible[h] !== 0) eligibleWeight += table[HDR_LEN + h] as number;
  }
  if (eligibleWeight === 0) return -1;
  const share = factor * (totalLoad + 1);
  let first = -1;
  let i = startIndex(table, keyHash >>> 0);
  const n = Math.min(steps(maxSteps), vSize);
  for (let s = 0; s < n; s++) {
    const h = hostAt(table, i);
    if (h < vHosts && eligible[h] !== 0) {
      if (first < 0) first = h;
      const cap = Math.max(Math.ceil((share * (table[HDR_LEN + h] as number)) / eligibleWeight), 1);
      if ((loads[h] as number) + 1 <= cap) return h;
    }
    if (++i === vSize) i = 0;
  }
  return first;
}
