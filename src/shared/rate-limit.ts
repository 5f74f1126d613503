/**
 * The instance-wide rate-limit table: lock-free token buckets in one SharedArrayBuffer that
 * the primary allocates once (`allocRateLimitTable`) and hands to every HTTP worker, so that
 * "100 req/s" holds for the whole instance, not per worker (docs/resilience.md, "Rate limiting").
 *
 * - Fixed-size open addressing: `capacity` (a power of two) entries, a key probes at most
 *   MAX_PROBE consecutive slots from its home slot. Memory is bounded by construction.
 * - Keys are the caller's strings, hashed to 53 bits by a seeded multiply-xorshift string hash
 *   (cyrb53's construction, over UTF-16 code units) with the namespace (zone or route) and a
 *   random per-table seed mixed into its start state: no byte conversion, nothing allocated,
 *   and which keys share a probe window cannot be worked out from outside the process.
 * - Tokens are fixed point (one token = `unit` units, a full bucket ≤ 2^30 units), refilled
 *   from the shared monotonic clock on access (a whole number of units per ms), taken with a
 *   CAS loop.
 * - A new key takes an empty slot of its window; when there is none, it takes over a full
 *   bucket of the window (no state is lost: a returning key would get a full bucket anyway),
 *   or else the least recently refilled one. This is nginx's limit_req order
 *   (ngx_http_limit_req_expire): before inserting it frees LRU-tail states whose excess has
 *   drained (full buckets), and when the zone is out of memory it removes the LRU tail anyway.
 * - `sweep()` (primary, every 30 s) refills idle full buckets so that no STAMP ages
 *   towards the int32 wrap, and reclaims slots whose inserting thread died.
 *
 * Known, bounded inexactness (nginx avoids both with the zone mutex; a lock-free table cannot
 * make two words change together):
 * - Refill and take are each atomic, not the pair: a take landing between another thread's
 *   STAMP CAS and its token add sees the bucket before that refill. It is refused if that was
 *   empty (it may retry) or, if the refill then hits the cap, gets one token more than a
 *   serial order would give: at most one per concurrent caller, only near a full bucket.
 * - A take racing the takeover of its own (least recently used) key may charge its token to
 *   the newcomer's fresh bucket: at most one token per concurrent caller per takeover.
 *
 * Must never: allocate per call, block (no Atomics.wait: waits are bounded spins), use
 * Date.now() or a per-thread clock.
 * Imports nothing from src/main or src/workers.
 */

import { monoMs } from './mono';
import { jsNative } from './native';

// ---- layout ---------------------------------------------------------------------------------
//
// Int32 words. Header, then `capacity` entries of ENTRY_INTS words. The header is 32 bytes so
// that entries are 32-byte aligned: two entries per 64-byte cache line, none straddling one.

export const HDR_CAPACITY = 0; // entry count, a power of two; written once at allocation
export const HDR_INSERTS = 1; // buckets created (in an empty slot or by takeover)
export const HDR_EVICTIONS = 2; // live buckets taken over for another key (table-full takeovers)
export const HDR_RECLAIMS = 3; // slots stuck mid-insert (dead thread) reclaimed by sweep
/** Float64 index of the table epoch (monoMs at allocation): Int32 words 4 and 5. */
export const HDR_EPOCH_F64 = 2;
/** The key hash's random seed, two Int32 words written once at allocation. */
export const HDR_SEED_HI = 6;
export const HDR_SEED_LO = 7;
export const HDR_INTS = 8;

/**
 * STATE word: bits 0–1 the slot state (ST_*), bits 2–31 a generation that every claim of the
 * slot increments. All transitions are CAS on the whole word, so a thread holding an old word
 * (it was stalled, and its claim was aborted meanwhile) can never act on the slot's new life:
 * no ABA on the state.
 */
export const E_STATE = 0;
export const E_KEY_HI = 1; // key hash bits 32–52 (21 bits)
export const E_KEY_LO = 2; // key hash bits 0–31, as int32; (hi, lo) is never (0, 0)
export const E_STAMP = 3; // table ms (since the epoch, int32, compared wrap-aware) of the last refill
export const E_TOKENS = 4; // fixed-point tokens, 0 .. E_CAP
export const E_CAP = 5; // a full bucket, in units (burst × unit of the policy that last used it)
export const E_FULL_MS = 6; // ms after which an untouched bucket is full whatever it held
// word 7: padding to 32 bytes
export const ENTRY_INTS = 8;

export const ST_MASK = 3;
export const ST_EMPTY = 0;
/** Claimed; key and bucket being written. Nobody but the claimant may read its fields. */
export const ST_INIT = 1;
export const ST_LIVE = 2;
/** Fields written, the claimant checks the window for a racing insert of the same key. */
export const ST_PENDING = 3;
const GEN_ONE = 4;

export const MAX_PROBE = 16;
export const MIN_CAPACITY = MAX_PROBE; // a window never wraps onto itself
export const MAX_CAPACITY = 1 << 24; // 512 MiB
/** A slot seen in the same INIT/PENDING word by two sweeps this far apart is abandoned. */
export const STUCK_MS = 1000;

/** Fixed point: a full bucket is burst × unit ≤ 2^30 units (headroom for v + refill in int32). */
const FULL_UNITS = 2 ** 30;
/** A token of fewer units would make the rate (unitsPerMs × 1000 / unit) off by over 0.1 %. */
const MIN_UNIT = 1000;
const MAX_BURST = FULL_UNITS;
/** Longest refill from empty to full (≈ 12.4 days): STAMP ages stay far from the int32 wrap. */
const MAX_FULL_MS = 2 ** 30;
/** Elapsed times below -WRAP_GUARD are a wrapped STAMP (≥ 2^31 ms idle), not clock skew. */
const WRAP_GUARD = 2 ** 30;
const TWO32 = 4294967296;
/** Spins on a PENDING slot of our key before aborting the claim (its owner is descheduled or dead). */
const SPIN_LIMIT = 2048;

// ---- policies -------------------------------------------------------------------------------

export interface CompiledPolicy {
  /** Tokens per second (may be fractional). */
  readonly rate: number;
  /** Bucket size in tokens (integer ≥ 1). */
  readonly burst: number;
  /** Units per token: floor(unitsPerMs × 1000 / rate), at most floor(2^30 / burst). */
  readonly unit: number;
  /** Refill per ms, a whole number of units: floor(rate × floor(2^30 / burst) / 1000). */
  readonly unitsPerMs: number;
  /** A full bucket in units: burst × unit (≤ 2^30). */
  readonly capUnits: number;
  /** Whole ms that refill an empty bucket: ceil(capUnits / unitsPerMs). */
  readonly fullMs: number;
}

/**
 * The fixed-point constants (docs/resilience.md, "Precision"). The scale starts from
 * floor(2^30 / burst) units per token; the refill per ms is then made a whole number of units, and the token re-sized to
 * match it (unit = floor(unitsPerMs × 1000 / rate)). So a refill of el ms adds exactly
 * el × unitsPerMs: nothing is rounded away per refill (a per-refill floor would lose up to a
 * unit every ms and leave a 0.5/s bucket one unit short of a token after 2 s of 1 ms polls),
 * and the only error is the floor in `unit`, under 1/unit of the rate.
 */
function constants(rate: number, burst: number): { unit: number; unitsPerMs: number } {
  const unitsPerMs = Math.floor((rate * Math.floor(FULL_UNITS / burst)) / 1000);
  return { unit: unitsPerMs > 0 ? Math.floor((unitsPerMs * 1000) / rate) : 0, unitsPerMs };
}

/** Why (rate, burst) cannot be represented precisely, or null. Phrased to follow an option path. */
export function policyProblem(rate: number, burst: number): string | null {
  if (typeof rate !== 'number' || !Number.isFinite(rate) || rate <= 0) {
    return `rate must be a number of tokens per second > 0 (got ${String(rate)})`;
  }
  if (typeof burst !== 'number' || !Number.isInteger(burst) || burst < 1 || burst > MAX_BURST) {
    return `burst must be an integer from 1 to ${MAX_BURST} (got ${String(burst)})`;
  }
  if (rate > burst * 1000) {
    // Refill is computed per whole millisecond: more than a bucketful per ms cannot be granted.
    return `rate ${rate}/s refills more than burst (${burst}) tokens per millisecond; burst must be at least ${Math.ceil(rate / 1000)}`;
  }
  const { unit, unitsPerMs } = constants(rate, burst);
  if (unitsPerMs < 1 || Math.ceil((burst * unit) / unitsPerMs) > MAX_FULL_MS) {
    return (
      `burst / rate is ${+(burst / rate).toPrecision(6)} s (the time to refill an empty bucket); ` +
      `at most ${Math.floor(MAX_FULL_MS / 1000)} s (about 12 days) is supported: lower burst or raise rate`
    );
  }
  if (unit < MIN_UNIT) {
    return `burst ${burst} is too large to keep the rate within 0.1 % in 30-bit fixed point: at most about ${Math.floor(FULL_UNITS / MIN_UNIT / 1000) * 1000}`;
  }
  return null;
}

/** Precomputes a policy's fixed-point constants; throws RangeError with policyProblem's text. */
export function compilePolicy(rate: number, burst: number): CompiledPolicy {
  const problem = policyProblem(rate, burst);
  if (problem !== null) throw new RangeError(problem);
  const { unit, unitsPerMs } = constants(rate, burst);
  const capUnits = burst * unit;
  return Object.freeze({ rate, burst, unit, unitsPerMs, capUnits, fullMs: Math.ceil(capUnits / unitsPerMs) });
}

/** Units refilled in `el` ms (el ≥ 1): exact; el × unitsPerMs < cap + unitsPerMs ≤ 2^31 when el < fullMs. */
function refillUnits(el: number, unitsPerMs: number, cap: number, fullMs: number): number {
  return el >= fullMs ? cap : Math.min(cap, el * unitsPerMs);
}

/** A bucket namespace (a zone shared by routes, or one route): its key hash, mixed into every key's. */
export interface Namespace {
  readonly hi: number;
  readonly lo: number;
}

const HI_MASK = 0x1fffff;
const NO_NAMESPACE: Namespace = { hi: 0, lo: 0 };

/** The namespace for `name` (hashed once, when a config is compiled). */
export function namespaceOf(name: string): Namespace {
  const h = jsNative.hashKey(name);
  return { hi: Math.floor(h / TWO32), lo: h | 0 };
}

// The key hash's two halves, returned through module state (no allocation per call).
let keyHi = 0;
let keyLo = 0;

/**
 * 53-bit hash of `key` into keyHi (21 bits) and keyLo (32 bits): cyrb53's two multiply-xor
 * lanes over the UTF-16 code units, with the start state taken from the seed mixed with the
 * namespace, then its cross-lane finaliser. Two lanes of 32 bits, each multiply a Math.imul:
 * far cheaper than converting the key to bytes and hashing it with 64-bit xxh3 in JS.
 */
function hashKeyInto(key: string, s1: number, s2: number): void {
  let h1 = 0xdeadbeef ^ s1;
  let h2 = 0x41c6ce57 ^ s2;
  for (let i = 0; i < key.length; i++) {
    const c = key.charCodeAt(i);
    h1 = Math.imul(h1 ^ c, 2654435761);
    h2 = Math.imul(h2 ^ c, 1597334677);
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507);
  h1 ^= Math.imul(h2 ^ (h2 >>> 13), 3266489909);
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507);
  h2 ^= Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  keyHi = h2 & HI_MASK;
  keyLo = h1 | 0;
  if (keyHi === 0 && keyLo === 0) keyLo = 1; // (0, 0) is what a zeroed slot holds
}

/** Retry-After (seconds) for a rejected take(): ceil(ms / 1000), at least 1. */
export function retryAfterSeconds(result: number): number {
  if (!(result < 0) || !Number.isFinite(result)) {
    throw new RangeError(`retryAfterSeconds needs a rejected take() result (< 0), got ${result}`);
  }
  return Math.max(1, Math.ceil(-result / 1000));
}

// ---- allocation -----------------------------------------------------------------------------

function checkCapacity(capacity: number): void {
  if (!Number.isInteger(capacity) || capacity < MIN_CAPACITY || capacity > MAX_CAPACITY || (capacity & (capacity - 1)) !== 0) {
    throw new RangeError(`rate-limit table capacity must be a power of two from ${MIN_CAPACITY} to ${MAX_CAPACITY} (got ${capacity})`);
  }
}

export function rateLimitTableBytes(capacity: number): number {
  checkCapacity(capacity);
  return (HDR_INTS + capacity * ENTRY_INTS) * Int32Array.BYTES_PER_ELEMENT;
}

/** Allocates a zeroed table (every slot EMPTY, generation 0) on the primary thread. */
export function allocRateLimitTable(capacity: number): SharedArrayBuffer {
  const sab = new SharedArrayBuffer(rateLimitTableBytes(capacity));
  const i32 = new Int32Array(sab);
  // Plain writes before the buffer is posted to any worker: postMessage orders them.
  i32[HDR_CAPACITY] = capacity;
  new Float64Array(sab, 0, HDR_INTS / 2)[HDR_EPOCH_F64] = monoMs();
  crypto.getRandomValues(i32.subarray(HDR_SEED_HI, HDR_SEED_LO + 1));
  return sab;
}

// ---- the table ------------------------------------------------------------------------------

/** `(t - s)` in table ms, wrap-aware; a STAMP idle for 2^31 .. 2^31 + 2^30 ms still reads as elapsed. */
function elapsed(t: number, s: number): number {
  const d = (t - s) | 0;
  return d < -WRAP_GUARD ? d + TWO32 : d;
}

/** Next claim of a slot whose state word is `w`: generation + 1, state INIT. */
function claimWord(w: number): number {
  return (((w & ~ST_MASK) + GEN_ONE) | ST_INIT) | 0;
}

export class RateLimitTable {
  private readonly i32: Int32Array;
  private readonly capacity: number;
  private readonly mask: number;
  private readonly epoch: number;
  private readonly seedHi: number;
  private readonly seedLo: number;
  private readonly clock: () => number;
  // Sweeper-only memory (the primary's instance), allocated on the first sweep: the INIT /
  // PENDING word each slot had at an earlier sweep, and the table ms when it was first seen.
  private pendingWord: Int32Array | null = null;
  private pendingSince: Int32Array | null = null;

  constructor(sab: SharedArrayBuffer, clock: () => number = monoMs) {
    if (!(sab instanceof SharedArrayBuffer)) throw new TypeError('RateLimitTable needs the SharedArrayBuffer from allocRateLimitTable');
    this.i32 = new Int32Array(sab);
    const capacity = this.i32[HDR_CAPACITY] ?? 0;
    checkCapacity(capacity);
    if (sab.byteLength !== rateLimitTableBytes(capacity)) {
      throw new RangeError(`rate-limit table is ${sab.byteLength} bytes, ${rateLimitTableBytes(capacity)} expected for capacity ${capacity}`);
    }
    this.capacity = capacity;
    this.mask = capacity - 1;
    this.epoch = new Float64Array(sab, 0, HDR_INTS / 2)[HDR_EPOCH_F64] ?? 0;
    this.seedHi = this.i32[HDR_SEED_HI] ?? 0;
    this.seedLo = this.i32[HDR_SEED_LO] ?? 0;
    this.clock = clock;
  }

  /**
   * Table time of `now` (monoMs; default: the clock): whole ms since the epoch, as int32
   * (wraps after 24.8 days; compared wrap-aware).
   */
  private tableNow(now: number = this.clock()): number {
    return Math.floor(now - this.epoch) | 0;
  }

  /** The (hi, lo) identity this table stores for `key` in namespace `ns` (for tests and inspection). */
  identity(key: string, ns: Namespace = NO_NAMESPACE): { hi: number; lo: number } {
    hashKeyInto(key, this.seedLo ^ ns.lo, this.seedHi ^ ns.hi);
    return { hi: keyHi, lo: keyLo };
  }

  /**
   * Takes one token for `key`. Admitted: returns the tokens left (integer >= 0).
   * Rejected: returns -(ms until one token is available), at least -1.
   *
   * When no slot of the key's window can be had (all 16 are mid-insert by other threads, or
   * stuck in INIT after a thread died, until the next sweep) the request is admitted and 0
   * returned: fail open, as a limiter that cannot decide should not turn traffic away.
   *
   * `now` (monoMs) lets a caller that already read the clock for this request pass it: a
   * reading a little in the past only delays this bucket's refill by as much.
   */
  take(key: string, policy: CompiledPolicy, ns: Namespace = NO_NAMESPACE, now: number = this.clock()): number {
    // The namespace goes into the hash's start state, so keys of different zones or routes
    // stay apart without building and hashing a "namespace\nkey" string.
    hashKeyInto(key, this.seedLo ^ ns.lo, this.seedHi ^ ns.hi);
    const t = this.tableNow(now);
    let b = this.lookup(keyHi, keyLo);
    if (b < 0) b = this.entryFor(keyHi, keyLo, t, policy);
    if (b < 0) return 0;
    const i32 = this.i32;
    const unit = policy.unit;
    const cap = policy.capUnits;

    // A reload may have changed the policy behind this key: keep the slot's sweep data current.
    // Plain accesses: racing threads store the same values, and both words only steer sweep
    // and victim choice (a stale read costs one redundant store or one late update).
    if (i32[b + E_CAP] !== cap) i32[b + E_CAP] = cap;
    if (i32[b + E_FULL_MS] !== policy.fullMs) i32[b + E_FULL_MS] = policy.fullMs;

    // Refill for (STAMP, t], once. Why never twice: only the thread whose CAS moves STAMP from
    // s to t adds the units for (s, t]; every other thread that read s fails its CAS and
    // re-reads STAMP, then refills only what lies beyond it (nothing, if its own t is not
    // later), and STAMP only ever moves forward (the CAS needs elapsed > 0), so the intervals
    // added are disjoint and none is skipped. STAMP is read plainly: the CAS checks it.
    let add = 0;
    for (;;) {
      const s = i32[b + E_STAMP] as number;
      const el = elapsed(t, s);
      if (el <= 0) break;
      if (Atomics.compareExchange(i32, b + E_STAMP, s, t) === s) {
        add = refillUnits(el, policy.unitsPerMs, cap, policy.fullMs);
        break;
      }
    }

    // The refill and the take in one CAS (capped at the bucket): it never overwrites a
    // concurrent take, and two threads both seeing one token left cannot both take it.
    for (;;) {
      const v = Atomics.load(i32, b + E_TOKENS);
      const n = add === 0 ? v : Math.min(cap, v + add);
      if (n >= unit) {
        if (Atomics.compareExchange(i32, b + E_TOKENS, v, n - unit) === v) return Math.floor((n - unit) / unit);
        continue;
      }
      if (n !== v && Atomics.compareExchange(i32, b + E_TOKENS, v, n) !== v) continue;
      const d = elapsed(t, Atomics.load(i32, b + E_STAMP));
      // STAMP ahead of our clock: another thread refilled with a later reading of it.
      const ahead = d < 0 ? -d : 0;
      // Whole ms of refill that yield the missing units.
      return -(ahead + Math.ceil((unit - n) / policy.unitsPerMs));
    }
  }

  private addTokens(b: number, add: number, cap: number): void {
    const i32 = this.i32;
    for (;;) {
      const v = Atomics.load(i32, b + E_TOKENS);
      const n = Math.min(cap, v + add);
      if (n === v || Atomics.compareExchange(i32, b + E_TOKENS, v, n) === v) return;
    }
  }

  /**
   * The fast path of entryFor: the LIVE entry holding the key, or -1 (absent, or being
   * inserted: entryFor then sorts it out). Small and branch-stable, so that the JIT compiles
   * it early and keeps it; the insert path's rarer branches live in entryFor.
   */
  private lookup(hi: number, lo: number): number {
    const i32 = this.i32;
    const home = lo & this.mask;
    for (let j = 0; j < MAX_PROBE; j++) {
      const b = this.entryIndex(home + j);
      // A plain prefilter: a miss read wrongly only sends the call to entryFor's full scan,
      // and a match is confirmed by holds() after the word's SC load (see there).
      if (i32[b + E_KEY_LO] !== lo) continue;
      const w = Atomics.load(i32, b + E_STATE);
      if ((w & ST_MASK) === ST_LIVE && this.holds(b, w, hi, lo) === 1) return b;
    }
    return -1;
  }

  /**
   * The entry (Int32 index) holding the key, inserting it if absent; -1 if no slot can be had.
   *
   * Lookups scan the whole window (they do not stop at an empty slot), so a slot going back to
   * EMPTY never hides a key stored further on. Inserting:
   *   1. claim an EMPTY slot (or a takeover victim) with CAS word → (gen + 1, INIT);
   *   2. write key and bucket; CAS → PENDING (which publishes those writes: Atomics are
   *      sequentially consistent, and a reader only reads a key after loading a PENDING or
   *      LIVE word, and re-loads the word afterwards to know the key was not replaced meanwhile);
   *   3. rescan the window for the same key: LIVE → give our slot back, use that one; PENDING
   *      closer to home → give ours back; PENDING further from home → wait until it goes
   *      (it gives way to us), aborting its claim if it does not within SPIN_LIMIT;
   *   4. CAS PENDING → LIVE (fails if our own claim was aborted: start again).
   * Why one bucket per key: two racing claimants both store PENDING before rescanning, so in
   * the SC order at least one sees the other PENDING (an INIT slot can be skipped: its owner
   * has yet to store PENDING and will then see ours). The one further from home gives way, the
   * closer one waits for it to, and a publisher seen later makes the other give way.
   */
  private entryFor(hi: number, lo: number, t: number, policy: CompiledPolicy): number {
    const i32 = this.i32;
    const home = lo & this.mask;
    for (;;) {
      let emptyAt = -1;
      let victimAt = -1;
      let victimWord = 0;
      let victimFull = false;
      let victimAge = -1;
      let found = -1;
      for (let j = 0; j < MAX_PROBE && found < 0; j++) {
        const b = this.entryIndex(home + j);
        for (;;) {
          const w = Atomics.load(i32, b + E_STATE);
          const st = w & ST_MASK;
          if (st === ST_EMPTY) {
            if (emptyAt < 0) emptyAt = j;
            break;
          }
          if (st === ST_INIT) break; // its key is not written yet; its claimant validates against us
          const has = this.holds(b, w, hi, lo);
          if (has < 0) continue;
          if (has === 0) {
            if (st === ST_LIVE) {
              // Victim choice is a heuristic: plain reads (no ordering needed) keep the scan
              // cheap; the takeover CAS on `w` is what makes it safe.
              const age = elapsed(t, i32[b + E_STAMP] as number);
              const full = (i32[b + E_TOKENS] as number) >= (i32[b + E_CAP] as number) || age >= (i32[b + E_FULL_MS] as number);
              if (victimAt < 0 || (full && !victimFull) || (full === victimFull && age > victimAge)) {
                victimAt = j;
                victimWord = w;
                victimFull = full;
                victimAge = age;
              }
            }
            break;
          }
          if (st === ST_LIVE) {
            found = b;
            break;
          }
          // Our key, PENDING: another thread is inserting it. Wait for LIVE or give-way.
          if (!this.awaitChange(b, w)) this.abortClaim(b, w);
        }
      }
      if (found >= 0) return found;

      let claimAt: number;
      let claimed: number;
      if (emptyAt >= 0) {
        claimAt = emptyAt;
        const b = this.entryIndex(home + claimAt);
        const w = Atomics.load(i32, b + E_STATE);
        if ((w & ST_MASK) !== ST_EMPTY) continue; // taken meanwhile: look again
        claimed = claimWord(w);
        if (Atomics.compareExchange(i32, b + E_STATE, w, claimed) !== w) continue;
      } else if (victimAt >= 0) {
        claimAt = victimAt;
        const b = this.entryIndex(home + claimAt);
        claimed = claimWord(victimWord);
        // Word includes the generation: fails if the victim changed since we judged it.
        if (Atomics.compareExchange(i32, b + E_STATE, victimWord, claimed) !== victimWord) continue;
        Atomics.add(i32, HDR_EVICTIONS, 1);
      } else {
        return -1; // every slot of the window is mid-insert: fail open (see take)
      }

      const b = this.entryIndex(home + claimAt);
      // Plain stores: the CAS to PENDING below (sequentially consistent) publishes them to
      // any thread that then loads PENDING or LIVE from this word; nobody reads an INIT slot.
      i32[b + E_KEY_HI] = hi;
      i32[b + E_KEY_LO] = lo;
      i32[b + E_STAMP] = t;
      i32[b + E_TOKENS] = policy.capUnits;
      i32[b + E_CAP] = policy.capUnits;
      i32[b + E_FULL_MS] = policy.fullMs;
      const pending = (claimed & ~ST_MASK) | ST_PENDING;
      // Fails only if sweep reclaimed our INIT slot as abandoned: start again.
      if (Atomics.compareExchange(i32, b + E_STATE, claimed, pending) !== claimed) continue;

      if (!this.validateClaim(home, claimAt, hi, lo)) {
        // Give the slot back (EMPTY, same generation); fails harmlessly if already aborted.
        Atomics.compareExchange(i32, b + E_STATE, pending, pending & ~ST_MASK);
        continue;
      }
      const live = (claimed & ~ST_MASK) | ST_LIVE;
      if (Atomics.compareExchange(i32, b + E_STATE, pending, live) !== pending) continue; // aborted meanwhile
      Atomics.add(i32, HDR_INSERTS, 1);
      return b;
    }
  }

  /**
   * Whether the slot at `b`, whose STATE word was just loaded as `w` (PENDING or LIVE), holds
   * the key: 1 yes, 0 no, -1 the slot changed meanwhile (load it again).
   * KEY_LO is read plainly (most slots fail here, and an Atomics call is not free):
   * coming after the SC load of `w`, the read sees life w's key (stored before the CAS that
   * published w) or a newer one. A different KEY_LO settles it without re-checking the word:
   * if the slot began a newer life after `w` was loaded, that claimant stores PENDING after our
   * load and then checks the window itself (and sees our claim, if we have one), so passing it
   * by is safe. A match must be confirmed to belong to life `w` (the word unchanged after the
   * key reads): acting on a newer life would take a token from, or give way to, a bucket that
   * is not yet there.
   */
  private holds(b: number, w: number, hi: number, lo: number): number {
    const i32 = this.i32;
    if (i32[b + E_KEY_LO] !== lo) return 0;
    // Plain as well: like KEY_LO it reads life w's value or a newer one, and the SC load of
    // the word below tells which.
    const kh = i32[b + E_KEY_HI];
    if (Atomics.load(i32, b + E_STATE) !== w) return -1;
    return kh === hi ? 1 : 0;
  }

  /** Step 3 of an insert: false if another slot of the window has (or gets first claim to) the key. */
  private validateClaim(home: number, claimAt: number, hi: number, lo: number): boolean {
    const i32 = this.i32;
    for (let j = 0; j < MAX_PROBE; j++) {
      if (j === claimAt) continue;
      const b = this.entryIndex(home + j);
      for (;;) {
        const w = Atomics.load(i32, b + E_STATE);
        const st = w & ST_MASK;
        if (st === ST_EMPTY || st === ST_INIT) break;
        const has = this.holds(b, w, hi, lo);
        if (has < 0) continue;
        if (has === 0) break;
        if (st === ST_LIVE || j < claimAt) return false;
        // PENDING further from home than us: its owner gives way once it sees us; if it
        // already validated without seeing us it publishes, and we then see LIVE and give way.
        if (!this.awaitChange(b, w)) this.abortClaim(b, w);
      }
    }
    return true;
  }

  /** Bounded spin until the STATE word of `b` differs from `w`. */
  private awaitChange(b: number, w: number): boolean {
    for (let n = 0; n < SPIN_LIMIT; n++) {
      if (Atomics.load(this.i32, b + E_STATE) !== w) return true;
    }
    return false;
  }

  /**
   * Aborts a PENDING claim whose owner is descheduled or dead: PENDING → EMPTY, same
   * generation. Safe while the owner lives: it wrote all its fields before PENDING, and its
   * only remaining steps are CAS on its old word, which now fail (it starts again).
   */
  private abortClaim(b: number, w: number): void {
    Atomics.compareExchange(this.i32, b + E_STATE, w, w & ~ST_MASK);
  }

  private entryIndex(slot: number): number {
    return HDR_INTS + (slot & this.mask) * ENTRY_INTS;
  }

  /**
   * Housekeeping from the primary (every 30 s). Safe while workers run: it does only
   * what a take() could do (the refill CAS on STAMP, a capped CAS add) or what a waiting
   * inserter does (abort a claim that made no progress).
   *
   * - LIVE entries idle longer than idleMs, and long enough to be full whatever they held
   *   (E_FULL_MS), get the refill the next take() would compute: tokens = full, STAMP = now.
   *   So no STAMP ages towards the int32 wrap (24.8 days), and the key keeps its slot:
   *   emptying it would gain nothing (a full bucket and a fresh one are the same) and would
   *   race a take() that already found it. Keys leave only by takeover.
   * - Slots found in the same INIT/PENDING word (same generation) by sweeps STUCK_MS apart
   *   are reclaimed to EMPTY: their inserting thread died (a terminated worker). A thread
   *   merely stalled for a second between two of its INIT stores would write into the slot's
   *   next life; a stall that long is treated as death.
   *
   * Returns how many entries it touched.
   */
  sweep(idleMs: number): number {
    if (!(idleMs >= 0 && idleMs < WRAP_GUARD)) throw new RangeError(`sweep idleMs must be from 0 to ${WRAP_GUARD - 1} (got ${idleMs})`);
    const i32 = this.i32;
    const t = this.tableNow();
    if (this.pendingWord === null) {
      this.pendingWord = new Int32Array(this.capacity);
      this.pendingSince = new Int32Array(this.capacity);
    }
    const seenWord = this.pendingWord;
    const seenSince = this.pendingSince as Int32Array;
    let touched = 0;
    for (let slot = 0; slot < this.capacity; slot++) {
      const b = this.entryIndex(slot);
      const w = Atomics.load(i32, b + E_STATE);
      const st = w & ST_MASK;
      if (st === ST_LIVE) {
        const s = Atomics.load(i32, b + E_STAMP);
        const el = elapsed(t, s);
        if (el > idleMs && el >= Atomics.load(i32, b + E_FULL_MS)) {
          // The same refill CAS as take(): if a taker moved STAMP first, it did the refill.
          if (Atomics.compareExchange(i32, b + E_STAMP, s, t) === s) {
            const cap = Atomics.load(i32, b + E_CAP);
            this.addTokens(b, cap, cap);
            touched++;
          }
        }
      } else if (st === ST_INIT || st === ST_PENDING) {
        if (seenWord[slot] === w) {
          if (elapsed(t, seenSince[slot] as number) >= STUCK_MS && Atomics.compareExchange(i32, b + E_STATE, w, w & ~ST_MASK) === w) {
            Atomics.add(i32, HDR_RECLAIMS, 1);
            touched++;
          }
        } else {
          seenWord[slot] = w;
          seenSince[slot] = t;
        }
      }
    }
    return touched;
  }

  /** Counters since allocation, plus a scan for the live count (O(capacity): for metrics, not per request). */
  stats(): { capacity: number; live: number; inserts: number; evictions: number; reclaims: number } {
    const i32 = this.i32;
    let live = 0;
    for (let slot = 0; slot < this.capacity; slot++) {
      if ((Atomics.load(i32, this.entryIndex(slot) + E_STATE) & ST_MASK) === ST_LIVE) live++;
    }
    return {
      capacity: this.capacity,
      live,
      inserts: Atomics.load(i32, HDR_INSERTS),
      evictions: Atomics.load(i32, HDR_EVICTIONS),
      reclaims: Atomics.load(i32, HDR_RECLAIMS),
    };
  }
}
