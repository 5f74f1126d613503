/**
 * Per-upstream-host resilience state in one SharedArrayBuffer, read and updated by every
 * HTTP worker and written by the primary's health checker (docs/resilience.md: "Active health checks" and
 * "Circuit breaker"). One slot per (upstream group, address); the primary assigns slots.
 *
 * Per slot:
 *  - the active health bit (primary writes, balancers read);
 *  - a circuit breaker, closed → open → half-open → closed, agreed on by all workers;
 *  - concurrency gauges, ACTIVE and PENDING, with fail-fast limits (Envoy's cluster circuit
 *    breaker thresholds max_requests / max_pending_requests);
 *  - passive outlier detection on consecutive gateway errors (Envoy's consecutive_5xx
 *    ejection: base_ejection_time × ejections, max_ejection_time, max_ejection_percent).
 *
 * Layout (after piscina's src/symbols.ts and ./sab-layout.ts): an Int32 region of
 * `capacity × I32_STRIDE` named fields, then a Float64 region of `capacity × F64_STRIDE`
 * named fields (times on the ./mono clock). A zero-filled buffer is the initial state of
 * every slot (healthy, breaker closed, nothing ejected, gauges at 0), so a buffer of
 * `hostStateBytes(n)` bytes needs no initialisation.
 *
 * Concurrency model. Every multi-step transition (breaker state change, ejection, window
 * bucket rotation) is owned by the single thread that wins a compareExchange into a
 * transient word value; the owner then writes the dependent fields (Float64 times cannot be
 * written with Atomics) and publishes with one Atomics.store. Atomics operations are
 * sequentially consistent, so a reader that Atomics.loads the published word also sees every
 * plain write the owner made before the store. State words carry an episode/generation
 * number, so a word value never recurs and a compareExchange against a word read earlier
 * fails if anything changed in between (no ABA).
 *
 * Hot path: `isAvailable` is one to three Atomics.load in the common case; `admit` on a
 * closed breaker is one Atomics.load; nothing here allocates per request (only `snapshot`,
 * for /status and tests, and `housekeeping`'s first call) or blocks (no Atomics.wait).
 * Never import from src/main or src/workers.
 */
import type { BreakerConfig as UpstreamBreakerConfig, OutlierConfig } from './config/upstreams';
import { monoMs } from './mono';

// ---- Int32 fields of a slot --------------------------------------------------------------

/** 1 when the active health checker marked the host down. Zero (healthy) is the initial state. */
const I_DOWN = 0;
/** Breaker word: `(episode << STATE_BITS) | BREAKER_*`; the episode grows at every opening. */
const I_BR_WORD = 1;
/** Consecutive failures while closed (reset by a success, at opening and at closing). */
const I_BR_CONSEC = 2;
/** Half-open probe slots taken and not yet reported (across episodes, see `releaseProbe`). */
const I_BR_PROBES = 3;
/** Successful probes in the current half-open episode. */
const I_BR_HALF_OPEN_OK = 4;
/** Transition counters (wrap at 2^32 when read as unsigned). */
const I_BR_OPENED = 5;
const I_BR_HALF_OPENED = 6;
const I_BR_CLOSED = 7;
/** Half-open episodes restarted because their probe slots were never given back. */
const I_BR_RECLAIMED = 8;
/** Concurrency gauges and their overflow counters. */
const I_CC_ACTIVE = 9;
const I_CC_PENDING = 10;
const I_CC_ACTIVE_OVERFLOW = 11;
const I_CC_PENDING_OVERFLOW = 12;
/** Outlier-ejection word: `(generation << STATE_BITS) | EJ_*`. */
const I_OD_WORD = 13;
/** Consecutive gateway errors / 5xx, across workers. */
const I_OD_CONSEC = 14;
/** Ejections in a row (the ejection-time multiplier); decays, see `tryEject`. */
const I_OD_MULTIPLIER = 15;
/** Ejections performed, ever. */
const I_OD_EJECTIONS = 16;
/** Ejections refused by max ejection percent (Envoy's ejections_overflow). */
const I_OD_OVERFLOW = 17;
/** Rolling failure window: WINDOW_BUCKETS buckets of BUCKET_FIELDS Int32 each. */
const I_WINDOW = 18;

const WINDOW_BUCKETS = 10;
const BUCKET_EPOCH = 0; // bucket's epoch index (time / bucket width, masked), or ROTATING
const BUCKET_TOTAL = 1;
const BUCKET_FAILURES = 2;
const BUCKET_FIELDS = 3;

const I32_FIELDS = I_WINDOW + WINDOW_BUCKETS * BUCKET_FIELDS;
/** Rounded up to an even count so the Float64 region that follows is 8-byte aligned. */
const I32_STRIDE = I32_FIELDS + (I32_FIELDS % 2);

// ---- Float64 fields of a slot ------------------------------------------------------------

/** End of the current open period (written only by the owner of the opening transition). */
const F_OPEN_UNTIL = 0;
/** Start of the current half-open episode (written only by the owner of that transition). */
const F_HALF_OPEN_SINCE = 1;
/** End of the current or last ejection (written only by the owner of the ejection). */
const F_EJECTED_UNTIL = 2;
const F64_STRIDE = 3;

const SLOT_BYTES = I32_STRIDE * Int32Array.BYTES_PER_ELEMENT + F64_STRIDE * Float64Array.BYTES_PER_ELEMENT;

// ---- Words -------------------------------------------------------------------------------

const STATE_BITS = 2;
const STATE_MASK = (1 << STATE_BITS) - 1;
/** Episode/generation numbers wrap in 29 bits so that a word stays a non-negative Int32. */
const EPISODE_MASK = (1 << (31 - STATE_BITS)) - 1;

// Module-local names for the exported constants below: CommonJS output would turn every use
// of an exported const into an `exports.X` property load on the hot path.
const CLOSED = 0;
const OPEN = 1;
const HALF_OPEN = 2;
const SWITCHING = 3;

export const BREAKER_CLOSED = CLOSED;
export const BREAKER_OPEN = OPEN;
export const BREAKER_HALF_OPEN = HALF_OPEN;
/** Transient: one thread owns a transition and is writing its fields. Readers treat it as OPEN. */
export const BREAKER_SWITCHING = SWITCHING;
export type BreakerState = 0 | 1 | 2 | 3;

/** Episode increment of a housekeeping repair (see `housekeeping`). */
const REPAIR_EPISODE_JUMP = 1 << 16;

const EJ_NONE = 0;
const EJ_EJECTED = 1;
/** Transient: one thread reserved the ejection and is checking the group's ejection budget. */
const EJ_EJECTING = 2;

function episodeOf(word: number): number {
  return word >>> STATE_BITS;
}
function makeWord(state: number, episode: number): number {
  return ((episode & EPISODE_MASK) << STATE_BITS) | state;
}

/** Bucket epoch values are masked to 30 bits; ages are computed modulo 2^30. */
const EPOCH_MASK = (1 << 30) - 1;
const EPOCH_HALF = 1 << 29;
/** Epoch value of a bucket being reset by the thread that won its rotation. */
const ROTATING = -1;
/** `housekeeping`'s "no transient seen": differs from every word (>= 0) and from ROTATING. */
const NOT_SEEN = -2;
/** A thread that finds a bucket ROTATING retries this often, then drops its one sample. */
const ROTATING_SPINS = 64;

/** Named offsets, for tools and tests that inspect a buffer; code here uses the constants. */
export const HOST_STATE_LAYOUT = Object.freeze({
  I32_STRIDE,
  F64_STRIDE,
  SLOT_BYTES,
  I_DOWN,
  I_BR_WORD,
  I_BR_CONSEC,
  I_BR_PROBES,
  I_OD_WORD,
  I_WINDOW,
  WINDOW_BUCKETS,
  BUCKET_FIELDS,
  BUCKET_EPOCH,
  F_OPEN_UNTIL,
  F_HALF_OPEN_SINCE,
  F_EJECTED_UNTIL,
  STATE_BITS,
  EJECTION_EJECTING: EJ_EJECTING,
  BUCKET_ROTATING: ROTATING,
});

// ---- Public constants --------------------------------------------------------------------

const A_REJECT = 0;
const A_ADMIT = 1;
const A_PROBE = 2;
/** `admit` results. REJECT is 0 so that `if (!admit(...))` reads naturally. */
export const REJECT = A_REJECT;
/** Closed breaker: go ahead; `report(..., probe = false)` afterwards. */
export const ADMIT = A_ADMIT;
/** A half-open probe slot was taken: the caller MUST `report(..., probe = true)` exactly once. */
export const PROBE = A_PROBE;
export type Admission = typeof REJECT | typeof ADMIT | typeof PROBE;

const T_NONE = 0;
const T_OPENED = 1;
const T_REOPENED = 2;
const T_HALF_OPENED = 3;
const T_CLOSED = 4;
const T_PROBES_RECLAIMED = 5;
/** Transitions caused by one `admit`/`report` call, so exactly one worker logs each. */
export const TRANSITION_NONE = T_NONE;
/** closed → open (failure threshold or failure ratio reached). */
export const TRANSITION_OPENED = T_OPENED;
/** half-open → open (a probe failed). */
export const TRANSITION_REOPENED = T_REOPENED;
/** open → half-open (cool-down over). */
export const TRANSITION_HALF_OPENED = T_HALF_OPENED;
/** half-open → closed (closeAfter successful probes). */
export const TRANSITION_CLOSED = T_CLOSED;
/** half-open → new half-open episode: every probe slot stayed taken for openMs (lost probes). */
export const TRANSITION_PROBES_RECLAIMED = T_PROBES_RECLAIMED;
export type Transition = 0 | 1 | 2 | 3 | 4 | 5;

const K_ACTIVE = 0;
const K_PENDING = 1;
/** Concurrency gauges (Envoy: max_requests counts ACTIVE, max_pending_requests counts PENDING). */
export const KIND_ACTIVE = K_ACTIVE;
export const KIND_PENDING = K_PENDING;
export type ConcurrencyKind = typeof KIND_ACTIVE | typeof KIND_PENDING;

export type Clock = () => number;

/**
 * Circuit-breaker settings: upstreams.NAME.breaker without `failOn` (what counts as a failure
 * is decided by the caller before it reports an outcome). consecutiveFailures or failureRatio
 * 0 = that trigger off; windowMs is split into 10 buckets.
 */
export type BreakerConfig = Omit<UpstreamBreakerConfig, 'failOn'>;

/** Passive outlier-detection settings (Envoy OutlierDetection, consecutive_5xx part): upstreams.NAME.outlierDetection. */
export type { OutlierConfig };

export interface HostSnapshot {
  slot: number;
  healthy: boolean;
  available: boolean;
  breaker: {
    state: 'closed' | 'open' | 'half-open' | 'switching';
    episode: number;
    openUntil: number;
    halfOpenSince: number;
    consecutiveFailures: number;
    probesInFlight: number;
    halfOpenSuccesses: number;
    /** Requests and failures in the rolling window; 0 unless `snapshot` got the breaker config. */
    windowTotal: number;
    windowFailures: number;
    opened: number;
    halfOpened: number;
    closed: number;
    probesReclaimed: number;
  };
  concurrency: { active: number; pending: number; activeOverflow: number; pendingOverflow: number };
  outlier: {
    ejected: boolean;
    ejectedUntil: number;
    consecutiveErrors: number;
    multiplier: number;
    ejections: number;
    overflow: number;
  };
}

const STATE_NAMES = ['closed', 'open', 'half-open', 'switching'] as const;

export function hostStateBytes(capacity: number): number {
  if (!Number.isInteger(capacity) || capacity < 0) throw new RangeError(`host-state capacity must be a non-negative integer, got ${capacity}`);
  return capacity * SLOT_BYTES;
}

/** A zero-filled buffer is the initial state of every slot (see the header). */
export function allocHostState(capacity: number): SharedArrayBuffer {
  return new SharedArrayBuffer(hostStateBytes(capacity));
}

/** The panic rule (see HostStateTable.panic): fewer than `panicThresholdPercent` % of `hosts` available. */
export function inPanic(available: number, hosts: number, panicThresholdPercent: number): boolean {
  return available * 100 < panicThresholdPercent * hosts;
}

export class HostStateTable {
  readonly capacity: number;
  /**
   * The transition caused by the last `admit`/`report` call on this instance (this thread's
   * view only; TRANSITION_NONE when that call caused none). `report` also returns it.
   */
  lastTransition: Transition = T_NONE;

  private readonly i32: Int32Array;
  private readonly f64: Float64Array;
  private readonly clock: Clock;
  /** Window sums, filled by `windowSums` (fields rather than an allocated pair). */
  private sumTotal = 0;
  private sumFailures = 0;
  /** Transient words seen at the previous `housekeeping` tick (NOT_SEEN = none); allocated lazily. */
  private seen: Int32Array | undefined;

  constructor(sab: SharedArrayBuffer, clock: Clock = monoMs) {
    if (sab.byteLength % SLOT_BYTES !== 0) {
      throw new RangeError(`host-state buffer of ${sab.byteLength} bytes is not a whole number of ${SLOT_BYTES}-byte slots`);
    }
    this.capacity = sab.byteLength / SLOT_BYTES;
    const i32Length = this.capacity * I32_STRIDE;
    this.i32 = new Int32Array(sab, 0, i32Length);
    this.f64 = new Float64Array(sab, i32Length * Int32Array.BYTES_PER_ELEMENT, this.capacity * F64_STRIDE);
    this.clock = clock;
  }

  // ---- Health ------------------------------------------------------------------------------

  /** Written by the primary's active health checker. */
  setHealthy(slot: number, up: boolean): void {
    Atomics.store(this.i32, slot * I32_STRIDE + I_DOWN, up ? 0 : 1);
  }

  isHealthy(slot: number): boolean {
    return Atomics.load(this.i32, slot * I32_STRIDE + I_DOWN) === 0;
  }

  // ---- Circuit breaker -----------------------------------------------------------------------

  /**
   * Asks the breaker whether a request may go to this host. Closed: ADMIT (one Atomics.load).
   * Open: REJECT until `openUntil`; the first caller after it moves the breaker to half-open
   * (one compareExchange winner, TRANSITION_HALF_OPENED in `lastTransition`). Half-open: PROBE
   * while fewer than `halfOpenProbes` probes are in flight, else REJECT.
   */
  admit(slot: number, cfg: BreakerConfig): Admission {
    this.lastTransition = T_NONE;
    const i32 = this.i32;
    const base = slot * I32_STRIDE;
    const fBase = slot * F64_STRIDE;
    for (;;) {
      const w = Atomics.load(i32, base + I_BR_WORD);
      const state = w & STATE_MASK;
      if (state === CLOSED) return A_ADMIT;
      if (state === SWITCHING) return A_REJECT;
      const now = this.clock();
      if (state === OPEN) {
        // OPEN_UNTIL was written before this episode's OPEN word was published and is not
        // rewritten until the word has moved on, and the word never takes this value again.
        // If it moves on while we read, the read may be stale, but the compareExchange below
        // expects `w` exactly and fails, so a stale read can only cost one spurious REJECT.
        if (now < this.f(fBase + F_OPEN_UNTIL)) return A_REJECT;
        this.switchToHalfOpen(slot, w, now, I_BR_HALF_OPENED, T_HALF_OPENED);
        continue; // re-read: either we or another thread made it half-open (or it moved on)
      }
      // Half-open: take a probe slot with compareExchange so that the count of probes in
      // flight never exceeds the bound, whatever the number of threads racing here.
      const maxProbes = Math.max(1, cfg.halfOpenProbes);
      const taken = Atomics.load(i32, base + I_BR_PROBES);
      if (taken >= maxProbes) {
        // Every slot taken for a whole cool-down: the holders are presumed lost (a worker that
        // died between PROBE and report). Restart the episode rather than stay stuck for ever.
        // HALF_OPEN_SINCE is stable for this word (same argument as OPEN_UNTIL above).
        if (now - this.f(fBase + F_HALF_OPEN_SINCE) >= cfg.openMs
            && this.switchToHalfOpen(slot, w, now, I_BR_RECLAIMED, T_PROBES_RECLAIMED)) {
          continue;
        }
        return A_REJECT;
      }
      if (Atomics.compareExchange(i32, base + I_BR_PROBES, taken, taken + 1) !== taken) continue;
      // The breaker may have moved on (re-opened by a failed probe, closed) between our load
      // of `w` and the slot; give the slot back and decide again on the new state.
      if (Atomics.load(i32, base + I_BR_WORD) !== w) {
        this.releaseProbe(base);
        continue;
      }
      return A_PROBE;
    }
  }

  /**
   * Reports the outcome of a request that `admit` let through (`probe` = it returned PROBE).
   * Closed: counts it (consecutive failures, rolling window) and opens the breaker when a
   * threshold is reached. Half-open: a probe failure re-opens; `closeAfter` probe successes
   * close. A probe's report always frees its probe slot. Outcomes of ordinary requests that
   * finish while the breaker is open or half-open are ignored: they were sent before it opened.
   * Returns the transition this call caused (also in `lastTransition`).
   */
  report(slot: number, cfg: BreakerConfig, ok: boolean, probe: boolean): Transition {
    this.lastTransition = T_NONE;
    const i32 = this.i32;
    const base = slot * I32_STRIDE;
    const w = Atomics.load(i32, base + I_BR_WORD);
    const state = w & STATE_MASK;
    if (state === CLOSED) {
      // A probe that finishes after its episode closed is an ordinary, recent outcome.
      this.closedOutcome(slot, w, cfg, ok);
    } else if (state === HALF_OPEN && probe) {
      if (!ok) {
        this.open(slot, w, this.clock(), cfg, T_REOPENED);
      } else if (Atomics.add(i32, base + I_BR_HALF_OPEN_OK, 1) + 1 >= Math.max(1, cfg.closeAfter)) {
        this.close(slot, w);
      }
    }
    // Freed after the decision, so no new probe starts before a failed probe re-opened.
    if (probe) this.releaseProbe(base);
    return this.lastTransition;
  }

  private closedOutcome(slot: number, w: number, cfg: BreakerConfig, ok: boolean): void {
    const i32 = this.i32;
    const base = slot * I32_STRIDE;
    const ratioOn = cfg.failureRatio > 0;
    if (ok) {
      // Read first: most outcomes are successes, and a store would bounce the cache line. A
      // plain read (an Atomics call is not free): missing a failure counted an
      // instant ago orders this success before it, which is as true an order as the other.
      if (i32[base + I_BR_CONSEC] !== 0) Atomics.store(i32, base + I_BR_CONSEC, 0);
      if (ratioOn) this.windowAdd(base, this.clock(), cfg, false);
      return;
    }
    const consec = Atomics.add(i32, base + I_BR_CONSEC, 1) + 1;
    let trip = cfg.consecutiveFailures > 0 && consec >= cfg.consecutiveFailures;
    if (!trip && !ratioOn) return;
    const now = this.clock();
    if (ratioOn) this.windowAdd(base, now, cfg, true);
    if (!trip && ratioOn) {
      this.windowSums(base, now, cfg);
      trip = this.sumTotal >= Math.max(1, cfg.minRequests) && this.sumFailures >= cfg.failureRatio * this.sumTotal;
    }
    // Many threads can see a threshold crossed at once; only the compareExchange winner in
    // `open` transitions, counts and reports it.
    if (trip) this.open(slot, w, now, cfg, T_OPENED);
  }

  /** closed/half-open → open. Only the compareExchange winner acts; returns whether we won. */
  private open(slot: number, w: number, now: number, cfg: BreakerConfig, transition: Transition): boolean {
    const i32 = this.i32;
    const base = slot * I32_STRIDE;
    const episode = episodeOf(w) + 1;
    if (Atomics.compareExchange(i32, base + I_BR_WORD, w, makeWord(SWITCHING, episode)) !== w) return false;
    // We own the transition until the store below. Counters start clean for the next closed
    // period; probes in flight keep their slots (they still owe a report, see releaseProbe).
    Atomics.store(i32, base + I_BR_CONSEC, 0);
    Atomics.store(i32, base + I_BR_HALF_OPEN_OK, 0);
    this.windowReset(base);
    this.f64[slot * F64_STRIDE + F_OPEN_UNTIL] = now + cfg.openMs;
    Atomics.add(i32, base + I_BR_OPENED, 1);
    // Publish. The seq-cst store orders the plain Float64 write above before it: any thread
    // that loads OPEN|episode reads this OPEN_UNTIL, never the previous episode's.
    Atomics.store(i32, base + I_BR_WORD, makeWord(OPEN, episode));
    this.lastTransition = transition;
    return true;
  }

  /**
   * open → half-open, or half-open → a fresh half-open episode (lost probes reclaimed).
   * The episode number grows on a reclaim, so that stale reports cannot close the new one.
   */
  private switchToHalfOpen(slot: number, w: number, now: number, counter: number, transition: Transition): boolean {
    const i32 = this.i32;
    const base = slot * I32_STRIDE;
    const reclaim = (w & STATE_MASK) === HALF_OPEN;
    const episode = episodeOf(w) + (reclaim ? 1 : 0);
    // SWITCHING|episode may be a value this word had before (the opening of this episode);
    // harmless, because nobody compareExchanges from a SWITCHING value except housekeeping,
    // which only acts on a word that stayed unchanged for a whole tick.
    if (Atomics.compareExchange(i32, base + I_BR_WORD, w, makeWord(SWITCHING, episode)) !== w) return false;
    if (reclaim) {
      Atomics.store(i32, base + I_BR_PROBES, 0);
      Atomics.store(i32, base + I_BR_HALF_OPEN_OK, 0);
    }
    this.f64[slot * F64_STRIDE + F_HALF_OPEN_SINCE] = now;
    Atomics.add(i32, base + counter, 1);
    // Publish after the Float64 write (same ordering argument as in `open`).
    Atomics.store(i32, base + I_BR_WORD, makeWord(HALF_OPEN, episode));
    this.lastTransition = transition;
    return true;
  }

  /** half-open → closed; resets the failure counters and the window before publishing. */
  private close(slot: number, w: number): void {
    const i32 = this.i32;
    const base = slot * I32_STRIDE;
    const episode = episodeOf(w);
    // Going through SWITCHING keeps closed-state reports out until the reset is done, so the
    // reset cannot erase a fresh outcome. Admits see REJECT for those few instructions.
    if (Atomics.compareExchange(i32, base + I_BR_WORD, w, makeWord(SWITCHING, episode)) !== w) return;
    Atomics.store(i32, base + I_BR_CONSEC, 0);
    Atomics.store(i32, base + I_BR_HALF_OPEN_OK, 0);
    this.windowReset(base);
    Atomics.add(i32, base + I_BR_CLOSED, 1);
    Atomics.store(i32, base + I_BR_WORD, makeWord(CLOSED, episode));
    this.lastTransition = T_CLOSED;
  }

  /**
   * Frees a probe slot, never below zero. The count is not reset at transitions: a probe
   * admitted in one episode may report in a later one, and decrementing its own slot keeps
   * the in-flight bound exact across episodes. Only a reclaim zeroes it; late reports from
   * the reclaimed probes then stop at zero, which can let a few extra probes through once.
   */
  private releaseProbe(base: number): void {
    const i32 = this.i32;
    for (;;) {
      const n = Atomics.load(i32, base + I_BR_PROBES);
      if (n <= 0) return;
      if (Atomics.compareExchange(i32, base + I_BR_PROBES, n, n - 1) === n) return;
    }
  }

  /**
   * Gives back a probe slot without a verdict: the attempt ended for a reason that says
   * nothing about the host (the client went away, the keep-alive reuse race).
   */
  abandonProbe(slot: number): void {
    this.releaseProbe(slot * I32_STRIDE);
  }

  /** Whether the breaker is open (or switching) and still cooling down: the host is skipped. */
  isBreakerOpen(slot: number): boolean {
    const st = Atomics.load(this.i32, slot * I32_STRIDE + I_BR_WORD) & STATE_MASK;
    if (st === SWITCHING) return true;
    return st === OPEN && this.clock() < (this.f64[slot * F64_STRIDE + F_OPEN_UNTIL] as number);
  }

  /**
   * Zeroes a slot (all-zero is the initial state: healthy, closed, nothing ejected, no
   * requests). The primary calls it when a slot changes hands on a config load or reload;
   * a request of the previous owner still in flight may then report into the fresh slot
   * once, which at worst counts one outcome for the new host.
   */
  resetSlot(slot: number): void {
    this.i32.fill(0, slot * I32_STRIDE, (slot + 1) * I32_STRIDE);
    this.f64.fill(0, slot * F64_STRIDE, (slot + 1) * F64_STRIDE);
  }

  /** Breaker state for logs and metrics (SWITCHING is transient; treat it as OPEN). */
  breakerState(slot: number): BreakerState {
    return (Atomics.load(this.i32, slot * I32_STRIDE + I_BR_WORD) & STATE_MASK) as BreakerState;
  }

  // ---- Rolling window ------------------------------------------------------------------------

  private windowAdd(base: number, now: number, cfg: BreakerConfig, failed: boolean): void {
    const i32 = this.i32;
    const abs = Math.floor(now / Math.max(1, cfg.windowMs / WINDOW_BUCKETS));
    const cur = abs & EPOCH_MASK;
    // The bucket index comes from the unmasked epoch so that it stays continuous at the
    // 2^30 wrap of the stored value.
    const b = base + I_WINDOW + (abs % WINDOW_BUCKETS) * BUCKET_FIELDS;
    // The common case, the bucket already on this epoch, with a plain read: a bucket reaches
    // `cur` only through the rotation below (zeroed first) and leaves it only by a rotation a
    // whole window later, which an add racing it may land before or after, exactly as it may
    // after an Atomics.load.
    if (i32[b + BUCKET_EPOCH] === cur) {
      Atomics.add(i32, b + BUCKET_TOTAL, 1);
      if (failed) Atomics.add(i32, b + BUCKET_FAILURES, 1);
      return;
    }
    for (let spin = 0; ; spin++) {
      const e = Atomics.load(i32, b + BUCKET_EPOCH);
      if (e === ROTATING) {
        // Another thread is zeroing this bucket for the new epoch (a few instructions). If it
        // takes longer (that thread was descheduled), drop this one sample rather than wait.
        if (spin >= ROTATING_SPINS) return;
        continue;
      }
      if (e !== cur) {
        const age = (cur - e) & EPOCH_MASK;
        // A bucket from a newer epoch means our clock read lags another thread's by up to a
        // bucket: count into it as is. Only an older bucket is rotated.
        if (age < EPOCH_HALF) {
          // The winner marks the bucket ROTATING, zeroes it, then publishes the new epoch, so
          // no other thread adds to the bucket between the zeroing and the publication (a
          // plain compareExchange of the epoch followed by zeroing would erase their adds).
          if (Atomics.compareExchange(i32, b + BUCKET_EPOCH, e, ROTATING) !== e) continue;
          Atomics.store(i32, b + BUCKET_TOTAL, 0);
          Atomics.store(i32, b + BUCKET_FAILURES, 0);
          Atomics.store(i32, b + BUCKET_EPOCH, cur);
        }
      }
      // Total before failures; `windowSums` reads them in the opposite order, so it never
      // sees a failure whose request it has not counted.
      Atomics.add(i32, b + BUCKET_TOTAL, 1);
      if (failed) Atomics.add(i32, b + BUCKET_FAILURES, 1);
      return;
    }
  }

  /** Sums the buckets whose epoch lies within the window ending at `now`. */
  private windowSums(base: number, now: number, cfg: BreakerConfig): void {
    const i32 = this.i32;
    const cur = Math.floor(now / Math.max(1, cfg.windowMs / WINDOW_BUCKETS)) & EPOCH_MASK;
    let total = 0;
    let failures = 0;
    for (let k = 0; k < WINDOW_BUCKETS; k++) {
      const b = base + I_WINDOW + k * BUCKET_FIELDS;
      const e = Atomics.load(i32, b + BUCKET_EPOCH);
      if (e === ROTATING || ((cur - e) & EPOCH_MASK) >= WINDOW_BUCKETS) continue;
      const f = Atomics.load(i32, b + BUCKET_FAILURES);
      const t = Atomics.load(i32, b + BUCKET_TOTAL);
      total += t;
      failures += Math.min(f, t); // a rotation between the two loads could zero only `t`
    }
    this.sumTotal = total;
    this.sumFailures = failures;
  }

  /** Called only by a transition owner (breaker word SWITCHING), see `open` and `close`. */
  private windowReset(base: number): void {
    for (let k = 0; k < WINDOW_BUCKETS; k++) {
      const b = base + I_WINDOW + k * BUCKET_FIELDS;
      Atomics.store(this.i32, b + BUCKET_TOTAL, 0);
      Atomics.store(this.i32, b + BUCKET_FAILURES, 0);
    }
  }

  // ---- Concurrency limits --------------------------------------------------------------------

  /**
   * Takes one unit of ACTIVE (request holding a connection to the host) or PENDING (request
   * waiting for a new connection) across all workers; false = over the limit, fail fast with
   * 503 (Envoy's upstream_rq_pending_overflow / upstream_rq_overflow). `max` 0 = unlimited,
   * still counted. Every `true` must be paired with one `release`.
   *
   * With a limit, this is a compareExchange loop rather than add-then-check-and-undo: with
   * the latter the gauge briefly exceeds `max` by the number of racing threads, and another
   * thread reading it then (a least-request balancer, /status, a racing acquirer that would
   * then refuse although the host is under its limit) sees a phantom overload.
   */
  tryAcquire(slot: number, kind: ConcurrencyKind, max: number): boolean {
    const i32 = this.i32;
    const base = slot * I32_STRIDE;
    const at = base + (kind === K_PENDING ? I_CC_PENDING : I_CC_ACTIVE);
    if (max <= 0) {
      Atomics.add(i32, at, 1);
      return true;
    }
    for (;;) {
      const n = Atomics.load(i32, at);
      if (n >= max) {
        Atomics.add(i32, base + (kind === K_PENDING ? I_CC_PENDING_OVERFLOW : I_CC_ACTIVE_OVERFLOW), 1);
        return false;
      }
      if (Atomics.compareExchange(i32, at, n, n + 1) === n) return true;
    }
  }

  /**
   * Gives back one unit. A decrement with compareExchange that stops at 0: a spurious extra
   * release (a caller bug, or a release after the gauge was reset) can never drive the gauge
   * negative, which would let more than `max` requests in afterwards.
   */
  release(slot: number, kind: ConcurrencyKind): void {
    const i32 = this.i32;
    const at = slot * I32_STRIDE + (kind === K_PENDING ? I_CC_PENDING : I_CC_ACTIVE);
    for (;;) {
      const n = Atomics.load(i32, at);
      if (n <= 0) return;
      if (Atomics.compareExchange(i32, at, n, n - 1) === n) return;
    }
  }

  /** Current gauge across all workers (least-request balancing, /status). */
  inFlight(slot: number, kind: ConcurrencyKind): number {
    return Atomics.load(this.i32, slot * I32_STRIDE + (kind === K_PENDING ? I_CC_PENDING : I_CC_ACTIVE));
  }

  // ---- Outlier detection ---------------------------------------------------------------------

  /**
   * Records a request outcome for passive outlier detection; `isError` = gateway error / 5xx /
   * connect failure. Returns true when THIS call ejected the host (log it once). Outcomes
   * while the host is ejected are ignored: they come from requests sent before the ejection
   * (or from panic-mode traffic), as in Envoy, which skips hosts already ejected.
   */
  recordOutcome(slot: number, cfg: OutlierConfig, isError: boolean, groupSlots: readonly number[]): boolean {
    if (cfg.consecutiveErrors <= 0) return false;
    const i32 = this.i32;
    const at = slot * I32_STRIDE + I_OD_CONSEC;
    if (!isError) {
      if (Atomics.load(i32, at) !== 0) Atomics.store(i32, at, 0);
      return false;
    }
    if (this.isEjected(slot)) return false;
    if (Atomics.add(i32, at, 1) + 1 < cfg.consecutiveErrors) return false;
    // At or past the threshold (past it when an ejection was refused by the percent cap:
    // every further error tries again, as the budget may have freed up).
    return this.tryEject(slot, cfg, groupSlots);
  }

  private tryEject(slot: number, cfg: OutlierConfig, groupSlots: readonly number[]): boolean {
    const i32 = this.i32;
    const base = slot * I32_STRIDE;
    const w = Atomics.load(i32, base + I_OD_WORD);
    if ((w & STATE_MASK) !== EJ_NONE) return false;
    const generation = episodeOf(w) + 1;
    if (Atomics.compareExchange(i32, base + I_OD_WORD, w, makeWord(EJ_EJECTING, generation)) !== w) return false;
    // Reserve first, count second (Dekker style). Two workers ejecting two hosts of the group
    // at once each see the other's reservation, because both reservations precede both counts
    // in the seq-cst order of Atomics operations, so the cap cannot be overshot by racing. Worst
    // case both back off and the next error retries.
    let others = 0;
    for (const s of groupSlots) {
      if (s !== slot && this.isEjected(s)) others++;
    }
    // Envoy (DetectorImpl::ejectHost): eject while the share ALREADY ejected is below
    // max_ejection_percent. So one host can always be ejected when the percent is above 0,
    // even in a group too small for one host to fit in the percent (3 hosts at 10%), and the
    // last ejection may overshoot the percent by one host; 0 disables ejection.
    const size = Math.max(groupSlots.length, 1);
    if (!(others * 100 < cfg.maxEjectionPercent * size)) {
      Atomics.add(i32, base + I_OD_OVERFLOW, 1);
      Atomics.store(i32, base + I_OD_WORD, makeWord(EJ_NONE, generation));
      return false;
    }
    const now = this.clock();
    const fAt = slot * F64_STRIDE + F_EJECTED_UNTIL;
    const cap = Math.max(cfg.maxEjectionMs, cfg.baseEjectionMs);
    // We own the ejection, and the previous owner published EJECTED_UNTIL and the multiplier
    // before its word store, which precedes our compareExchange: both reads below are exact.
    let multiplier = Atomics.load(i32, base + I_OD_MULTIPLIER);
    // Decay: a host that stayed un-ejected for longer than the cap starts again at 1× (Envoy
    // instead decrements the multiplier once per healthy `interval`; we have no interval).
    if (multiplier > 0 && now - this.f(fAt) > cap) multiplier = 0;
    const steps = cfg.baseEjectionMs > 0 ? Math.ceil(cap / cfg.baseEjectionMs) : 1;
    multiplier = Math.min(multiplier + 1, Math.max(steps, 1));
    Atomics.store(i32, base + I_OD_MULTIPLIER, multiplier);
    this.f64[fAt] = now + Math.min(cfg.baseEjectionMs * multiplier, cap);
    Atomics.store(i32, base + I_OD_CONSEC, 0);
    Atomics.add(i32, base + I_OD_EJECTIONS, 1);
    // Publish after the Float64 write: a reader that loads EJECTED sees this EJECTED_UNTIL.
    Atomics.store(i32, base + I_OD_WORD, makeWord(EJ_EJECTED, generation));
    return true;
  }

  /** Ejected now. Expiry is lazy: an ejection past its end reads as not ejected (and is cleared). */
  isEjected(slot: number): boolean {
    const i32 = this.i32;
    const at = slot * I32_STRIDE + I_OD_WORD;
    const w = Atomics.load(i32, at);
    const state = w & STATE_MASK;
    if (state === EJ_NONE) return false;
    if (state === EJ_EJECTING) return true;
    if (this.clock() < this.f(slot * F64_STRIDE + F_EJECTED_UNTIL)) return true;
    // Expired. Clear it; losing the compareExchange means another thread already did.
    Atomics.compareExchange(i32, at, w, makeWord(EJ_NONE, episodeOf(w)));
    return false;
  }

  // ---- Balancer predicates -------------------------------------------------------------------

  /**
   * The balancer's predicate: healthy, not ejected, breaker not open. Half-open counts as
   * available so probes can flow (admit() then bounds them), and so does an open breaker whose
   * cool-down has ended: admit() moves it to half-open lazily, which it could never do if the
   * balancer kept skipping the host.
   */
  isAvailable(slot: number): boolean {
    const i32 = this.i32;
    const base = slot * I32_STRIDE;
    if (Atomics.load(i32, base + I_DOWN) !== 0) return false;
    const state = Atomics.load(i32, base + I_BR_WORD) & STATE_MASK;
    if (state === SWITCHING) return false;
    if (state === OPEN && this.clock() < this.f(slot * F64_STRIDE + F_OPEN_UNTIL)) return false;
    return !this.isEjected(slot);
  }

  /**
   * Envoy's panic threshold: true when fewer than `panicThresholdPercent` of the group's hosts
   * are available; the caller then balances across all hosts. 0 disables panic mode.
   */
  panic(groupSlots: readonly number[], panicThresholdPercent = 50): boolean {
    let available = 0;
    for (const s of groupSlots) if (this.isAvailable(s)) available++;
    return inPanic(available, groupSlots.length, panicThresholdPercent);
  }

  /**
   * `isAvailable` of every slot of a group at once, into `into` (1 = available), returning the
   * count: a balancer that needs the count for the panic threshold then walks the group on
   * these answers instead of reading each host's words a second time.
   */
  availability(groupSlots: readonly number[], into: Uint8Array): number {
    let available = 0;
    for (let i = 0; i < groupSlots.length; i++) {
      const a = this.isAvailable(groupSlots[i] as number) ? 1 : 0;
      into[i] = a;
      available += a;
    }
    return available;
  }

  // ---- Maintenance and inspection ------------------------------------------------------------

  /**
   * For the primary's 1 s tick. Clears expired ejections (so /status and gauges agree with
   * `isEjected`) and repairs transient words left behind by a thread that died between taking
   * a transition and publishing it (a worker terminated mid-call): a breaker SWITCHING, an
   * ejection EJECTING or a bucket ROTATING with the same value at two consecutive ticks. A
   * stuck breaker becomes OPEN with its cool-down already over (the next admit probes), a
   * stuck ejection is dropped, a stuck bucket is emptied. Returns the number of repairs.
   * `slotCount`: look at slots 0 .. slotCount - 1 only (the ones ever assigned; the rest are
   * still all zero).
   */
  housekeeping(slotCount = this.capacity): number {
    const i32 = this.i32;
    const perSlot = 2 + WINDOW_BUCKETS;
    if (this.seen === undefined) this.seen = new Int32Array(this.capacity * perSlot).fill(NOT_SEEN);
    const seen = this.seen;
    let repaired = 0;
    const n = Math.min(slotCount, this.capacity);
    for (let slot = 0; slot < n; slot++) {
      const base = slot * I32_STRIDE;
      const s = slot * perSlot;
      this.isEjected(slot);

      const bw = Atomics.load(i32, base + I_BR_WORD);
      if ((bw & STATE_MASK) === SWITCHING) {
        if (seen[s] === bw) {
          // Jump the episode far ahead: should the owner only have been descheduled, its late
          // store puts back a word of its old episode, and later openings (episode + 1, + 2,
          // ...) must not recreate a value that a stale reader might still compare against.
          const episode = episodeOf(bw) + REPAIR_EPISODE_JUMP;
          if (Atomics.compareExchange(i32, base + I_BR_WORD, bw, makeWord(SWITCHING, episode)) === bw) {
            Atomics.store(i32, base + I_BR_PROBES, 0);
            Atomics.store(i32, base + I_BR_HALF_OPEN_OK, 0);
            this.f64[slot * F64_STRIDE + F_OPEN_UNTIL] = this.clock();
            Atomics.store(i32, base + I_BR_WORD, makeWord(OPEN, episode));
            repaired++;
          }
          seen[s] = NOT_SEEN;
        } else {
          seen[s] = bw;
        }
      } else {
        seen[s] = NOT_SEEN;
      }

      const ew = Atomics.load(i32, base + I_OD_WORD);
      if ((ew & STATE_MASK) === EJ_EJECTING) {
        if (seen[s + 1] === ew) {
          if (Atomics.compareExchange(i32, base + I_OD_WORD, ew, makeWord(EJ_NONE, episodeOf(ew) + 1)) === ew) repaired++;
          seen[s + 1] = NOT_SEEN;
        } else {
          seen[s + 1] = ew;
        }
      } else {
        seen[s + 1] = NOT_SEEN;
      }

      for (let k = 0; k < WINDOW_BUCKETS; k++) {
        const b = base + I_WINDOW + k * BUCKET_FIELDS;
        const at = s + 2 + k;
        if (Atomics.load(i32, b + BUCKET_EPOCH) === ROTATING) {
          // Epoch 0 is ancient, so the next add rotates (and zeroes) the bucket properly.
          if (seen[at] === ROTATING) {
            if (Atomics.compareExchange(i32, b + BUCKET_EPOCH, ROTATING, 0) === ROTATING) repaired++;
            seen[at] = NOT_SEEN;
          } else {
            seen[at] = ROTATING;
          }
        } else {
          seen[at] = NOT_SEEN;
        }
      }
    }
    return repaired;
  }

  /** Every field of a slot, as a plain object. Pass the breaker config to get window sums. */
  snapshot(slot: number, breakerCfg?: BreakerConfig): HostSnapshot {
    if (!Number.isInteger(slot) || slot < 0 || slot >= this.capacity) {
      throw new RangeError(`host slot ${slot} out of range 0..${this.capacity - 1}`);
    }
    const i32 = this.i32;
    const base = slot * I32_STRIDE;
    const fBase = slot * F64_STRIDE;
    const u = (field: number): number => Atomics.load(i32, base + field) >>> 0;
    const bw = Atomics.load(i32, base + I_BR_WORD);
    if (breakerCfg !== undefined) {
      this.windowSums(base, this.clock(), breakerCfg);
    } else {
      this.sumTotal = 0;
      this.sumFailures = 0;
    }
    const ew = Atomics.load(i32, base + I_OD_WORD);
    const ejectedUntil = this.f(fBase + F_EJECTED_UNTIL);
    const ejected = (ew & STATE_MASK) === EJ_EJECTING || ((ew & STATE_MASK) === EJ_EJECTED && this.clock() < ejectedUntil);
    return {
      slot,
      healthy: this.isHealthy(slot),
      available: this.isAvailable(slot),
      breaker: {
        state: STATE_NAMES[bw & STATE_MASK] ?? 'switching',
        episode: episodeOf(bw),
        openUntil: this.f(fBase + F_OPEN_UNTIL),
        halfOpenSince: this.f(fBase + F_HALF_OPEN_SINCE),
        consecutiveFailures: u(I_BR_CONSEC),
        probesInFlight: u(I_BR_PROBES),
        halfOpenSuccesses: u(I_BR_HALF_OPEN_OK),
        windowTotal: this.sumTotal,
        windowFailures: this.sumFailures,
        opened: u(I_BR_OPENED),
        halfOpened: u(I_BR_HALF_OPENED),
        closed: u(I_BR_CLOSED),
        probesReclaimed: u(I_BR_RECLAIMED),
      },
      concurrency: {
        active: u(I_CC_ACTIVE),
        pending: u(I_CC_PENDING),
        activeOverflow: u(I_CC_ACTIVE_OVERFLOW),
        pendingOverflow: u(I_CC_PENDING_OVERFLOW),
      },
      outlier: {
        ejected,
        ejectedUntil,
        consecutiveErrors: u(I_OD_CONSEC),
        multiplier: u(I_OD_MULTIPLIER),
        ejections: u(I_OD_EJECTIONS),
        overflow: u(I_OD_OVERFLOW),
      },
    };
  }

  /** Float64 field read; indexes are computed from the layout, so never out of range. */
  private f(index: number): number {
    return this.f64[index] ?? 0;
  }
}
