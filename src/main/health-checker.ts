/**
 * Active health checks, run by the primary thread (docs/resilience.md, "Active health checks"): every target gets
 * an HTTP check (`GET <path>`, success iff the status is in `expectStatuses`) or a TCP check
 * (success iff the connection is accepted), one at a time, `intervalMs` (± jitter) after the
 * previous one ended. A host starts up; `fall` consecutive failures take it down and `rise`
 * consecutive successes bring it back, as HAProxy's `check inter/fall/rise` and Envoy's
 * `unhealthy_threshold`/`healthy_threshold` do. Results leave through `publish(slot, healthy)`,
 * which the caller points at the shared health table that workers read; this module knows
 * nothing of that table.
 *
 * Checks speak raw `node:net`, not node:http or fetch: a check needs the status line and
 * nothing else, so it sends a fixed request with `Connection: close`, reads until the status
 * line and closes the socket (nginx plus `health_check` and HAProxy `option httpchk` read no
 * more than they judge on either).
 *
 * Timers: one per target, used either for the next check or for the deadline of the check in
 * flight, never both. This is not the coarse shared tick of src/workers/http/clock.ts on purpose:
 * there is one check per target per interval (not one per request), and check timeouts are
 * often below that tick's 100 ms accuracy. Timers and sockets are unref'd so that a checker
 * never keeps the primary alive.
 *
 * Must never: block the primary, throw out of a check (every outcome is a success or a
 * failure with a reason), run two checks of one target at once, or publish for a target that
 * was removed or after close().
 */
import { connect, type Socket } from 'node:net';
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls';

import { SluiceError } from '../shared/errors';

export interface HealthCheckSpec {
  readonly type: 'http' | 'tcp';
  /** http: request target, e.g. '/healthz'. */
  readonly path: string;
  /** http: Host header; default: the target address. */
  readonly host?: string;
  /** Inclusive ranges, e.g. [[200, 399]]. */
  readonly expectStatuses: readonly [number, number][];
  /** Time between the end of one check and the start of the next. */
  readonly intervalMs: number;
  /** Whole check: connect + response head (http), connect (tcp). */
  readonly timeoutMs: number;
  /** 0..1: each interval is intervalMs × (1 ± jitter·random) (HAProxy spread-checks / Envoy interval_jitter). */
  readonly jitter: number;
  /** Consecutive successes to mark a down host up. */
  readonly rise: number;
  /** Consecutive failures to mark an up host down. */
  readonly fall: number;
  /**
   * The group talks TLS to its hosts: checks do too, with the same trust settings (CA, client
   * certificate, SNI, verification); the check succeeds only after a verified handshake.
   */
  readonly tls?: ConnectionOptions;
}

export interface HealthTarget {
  /** Identity: the host's slot in the shared table. */
  readonly slot: number;
  readonly group: string;
  /** 'host:port' or '[v6]:port'. */
  readonly address: string;
  readonly spec: HealthCheckSpec;
}

export interface HealthChange {
  readonly slot: number;
  readonly group: string;
  readonly address: string;
  readonly healthy: boolean;
  /** e.g. 'status 503', 'timeout', 'connect ECONNREFUSED'. */
  readonly reason: string;
}

/**
 * The first checks of the targets added by one setTargets() are spread over this window (or
 * over the interval when it is shorter), so that a reload with many hosts does not open all
 * their connections at once (HAProxy spreads the first checks of a backend across `inter`).
 */
const FIRST_CHECK_SPREAD_MS = 1000;
/**
 * Longest response head read before a status is decided: a status line, or interim 1xx
 * heads followed by one. A server that sends more without a final status line is broken.
 */
const MAX_HEAD_BYTES = 8192;
const HTTP_PREFIX = 'HTTP/';
/** RFC 9112 status-line; a missing SP before an empty reason phrase is tolerated, as most parsers do. */
const STATUS_LINE = /^HTTP\/1\.[01] ([1-9]\d\d)(?: [^\r\n]*)?$/;

type HeadResult = number | 'more' | 'malformed';

/**
 * The final status code in `buf` (the response bytes so far, latin1), or 'more' when the
 * status line is not complete yet. Interim 1xx heads (103 Early Hints, a stray 100 Continue)
 * are skipped; 101 is final. Bytes that cannot start a status line are rejected at once,
 * so a server answering garbage fails now rather than at the timeout.
 */
function readStatus(buf: string): HeadResult {
  let start = 0;
  for (;;) {
    const prefix = buf.slice(start, start + HTTP_PREFIX.length);
    if (!HTTP_PREFIX.startsWith(prefix)) return 'malformed';
    const nl = buf.indexOf('\n', start);
    if (nl === -1) return buf.length > MAX_HEAD_BYTES ? 'malformed' : 'more';
    const line = buf.charCodeAt(nl - 1) === 0x0d ? buf.slice(start, nl - 1) : buf.slice(start, nl);
    const m = STATUS_LINE.exec(line);
    if (m === null) return 'malformed';
    const code = Number(m[1]);
    if (code >= 200 || code === 101) return code;
    // Interim response: skip its header fields up to the empty line that ends its head.
    let pos = nl + 1;
    for (;;) {
      const next = buf.indexOf('\n', pos);
      if (next === -1) return buf.length > MAX_HEAD_BYTES ? 'malformed' : 'more';
      const empty = next === pos || (next === pos + 1 && buf.charCodeAt(pos) === 0x0d);
      pos = next + 1;
      if (empty) break;
    }
    if (pos > MAX_HEAD_BYTES) return 'malformed';
    start = pos;
  }
}

function inRanges(code: number, ranges: readonly (readonly [number, number])[]): boolean {
  for (const [lo, hi] of ranges) if (code >= lo && code <= hi) return true;
  return false;
}

/** 'host:port' or '[v6]:port' → parts; throws a config error otherwise. */
function parseAddress(address: string, where: string): { host: string; port: number } {
  const colon = address.lastIndexOf(':');
  const portText = address.slice(colon + 1);
  let host = address.slice(0, colon);
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
  else if (host.includes(':') || host.includes('[') || host.includes(']')) host = '';
  const port = /^\d{1,5}$/.test(portText) ? Number(portText) : 0;
  if (colon <= 0 || host === '' || port < 1 || port > 65535) {
    throw new SluiceError('SLUICE_ERR_CONFIG', `${where}.address must be 'host:port' or '[v6]:port', got '${address}'`);
  }
  return { host, port };
}

/** Visible ASCII only: path and Host go into the request verbatim, so no CR, LF or space. */
const TOKEN_CHARS = /^[\x21-\x7e]+$/;

function validate(t: HealthTarget, where: string): void {
  const s = t.spec;
  const bad = (what: string): never => {
    throw new SluiceError('SLUICE_ERR_CONFIG', `${where}.${what}`);
  };
  if (!Number.isInteger(t.slot) || t.slot < 0) bad(`slot must be a non-negative integer, got ${t.slot}`);
  if (s.type !== 'http' && s.type !== 'tcp') bad(`spec.type must be 'http' or 'tcp', got '${String(s.type)}'`);
  if (!(Number.isFinite(s.intervalMs) && s.intervalMs > 0)) bad(`spec.intervalMs must be a positive number, got ${s.intervalMs}`);
  if (!(Number.isFinite(s.timeoutMs) && s.timeoutMs > 0)) bad(`spec.timeoutMs must be a positive number, got ${s.timeoutMs}`);
  if (!(s.jitter >= 0 && s.jitter <= 1)) bad(`spec.jitter must be within 0..1, got ${s.jitter}`);
  if (!Number.isInteger(s.rise) || s.rise < 1) bad(`spec.rise must be a positive integer, got ${s.rise}`);
  if (!Number.isInteger(s.fall) || s.fall < 1) bad(`spec.fall must be a positive integer, got ${s.fall}`);
  if (s.type === 'http') {
    if (!TOKEN_CHARS.test(s.path)) bad(`spec.path must be a non-empty request target without spaces or control characters, got '${s.path}'`);
    if (s.host !== undefined && !TOKEN_CHARS.test(s.host)) bad(`spec.host must be non-empty without spaces or control characters, got '${s.host}'`);
    if (s.expectStatuses.length === 0) bad('spec.expectStatuses must not be empty');
    s.expectStatuses.forEach(([lo, hi], i) => {
      if (!Number.isInteger(lo) || !Number.isInteger(hi) || lo < 100 || hi > 999 || lo > hi) {
        bad(`spec.expectStatuses[${i}] must be an inclusive range of status codes, got [${lo}, ${hi}]`);
      }
    });
  }
}

/** TLS options compared by value (files are read per config load, so Buffers are new each time). */
function sameTls(a: ConnectionOptions | undefined, b: ConnectionOptions | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]) as Set<keyof ConnectionOptions>;
  for (const k of keys) {
    const x = a[k];
    const y = b[k];
    if (Buffer.isBuffer(x) && Buffer.isBuffer(y)) {
      if (!x.equals(y)) return false;
    } else if (x !== y) return false;
  }
  return true;
}

function sameSpec(a: HealthCheckSpec, b: HealthCheckSpec): boolean {
  if (
    !sameTls(a.tls, b.tls) ||
    a.type !== b.type ||
    a.path !== b.path ||
    a.host !== b.host ||
    a.intervalMs !== b.intervalMs ||
    a.timeoutMs !== b.timeoutMs ||
    a.jitter !== b.jitter ||
    a.rise !== b.rise ||
    a.fall !== b.fall ||
    a.expectStatuses.length !== b.expectStatuses.length
  ) {
    return false;
  }
  return a.expectStatuses.every(([lo, hi], i) => {
    const other = b.expectStatuses[i];
    return other !== undefined && other[0] === lo && other[1] === hi;
  });
}

/** 'connect ECONNREFUSED', 'read ECONNRESET', 'getaddrinfo ENOTFOUND', … */
function errorReason(err: NodeJS.ErrnoException, connected: boolean): string {
  const op = err.syscall ?? (connected ? 'read' : 'connect');
  return err.code !== undefined ? `${op} ${err.code}` : `${op} ${err.message}`;
}

/** One check in flight. `done` makes its outcome count once, whichever event comes first. */
interface Check {
  socket: Socket | undefined;
  connected: boolean;
  done: boolean;
  /** Response bytes so far (http), latin1. */
  buf: string;
}

interface TargetState {
  target: HealthTarget;
  readonly host: string;
  readonly port: number;
  /** The whole http request, built once per target. */
  readonly request: Buffer | undefined;
  healthy: boolean;
  /** Consecutive successes / failures, the runs that `rise` and `fall` are compared to. */
  successes: number;
  failures: number;
  checks: number;
  lastReason: string;
  /** Either the next check's start or the deadline of the check in flight. */
  timer: NodeJS.Timeout | undefined;
  inflight: Check | undefined;
  stopped: boolean;
}

export class HealthChecker {
  private readonly publishFn: (slot: number, healthy: boolean) => void;
  private readonly onChangeFn: ((c: HealthChange) => void) | undefined;
  private readonly random: () => number;
  private readonly targets = new Map<number, TargetState>();
  private closed = false;

  constructor(opts: { publish: (slot: number, healthy: boolean) => void; onChange?: (c: HealthChange) => void; random?: () => number }) {
    this.publishFn = opts.publish;
    this.onChangeFn = opts.onChange;
    this.random = opts.random ?? Math.random;
  }

  /**
   * Replaces the target set (config load / reload). Targets whose slot and spec stay keep their
   * state and schedule; new ones start (first check soon, with jitter, not all at once); removed
   * ones stop (an in-flight check of a removed target must not publish).
   *
   * A target with the same slot but another address or spec is a new target: its old checks
   * stop and it starts up again. Throws SLUICE_ERR_CONFIG (and changes nothing) on an invalid
   * or duplicate target, SLUICE_ERR_SHUTTING_DOWN after close().
   */
  setTargets(targets: readonly HealthTarget[]): void {
    if (this.closed) throw new SluiceError('SLUICE_ERR_SHUTTING_DOWN', 'the health checker is closed');
    const next = new Map<number, HealthTarget>();
    const parsed = new Map<number, { host: string; port: number }>();
    targets.forEach((t, i) => {
      const where = `health target [${i}] (slot ${t.slot})`;
      validate(t, where);
      if (next.has(t.slot)) throw new SluiceError('SLUICE_ERR_CONFIG', `${where}: slot ${t.slot} appears twice`);
      next.set(t.slot, t);
      parsed.set(t.slot, parseAddress(t.address, where));
    });

    for (const [slot, st] of this.targets) {
      const t = next.get(slot);
      if (t !== undefined && t.address === st.target.address && sameSpec(t.spec, st.target.spec)) {
        st.target = t; // kept: only the group label may have changed
        next.delete(slot);
      } else {
        this.stop(st);
        this.targets.delete(slot);
      }
    }

    const added = [...next.values()];
    for (const [i, t] of added.entries()) {
      const addr = parsed.get(t.slot) as { host: string; port: number };
      const st: TargetState = {
        target: t,
        host: addr.host,
        port: addr.port,
        request:
          t.spec.type === 'http'
            ? Buffer.from(
                `GET ${t.spec.path} HTTP/1.1\r\nHost: ${t.spec.host ?? t.address}\r\n` +
                  'User-Agent: sluice-health-check\r\nConnection: close\r\n\r\n',
                'latin1',
              )
            : undefined,
        healthy: true,
        successes: 0,
        failures: 0,
        checks: 0,
        lastReason: '',
        timer: undefined,
        inflight: undefined,
        stopped: false,
      };
      this.targets.set(t.slot, st);
      // Stratified spread: target i of n starts within the i-th n-th of the window.
      const window = Math.min(t.spec.intervalMs, FIRST_CHECK_SPREAD_MS);
      this.schedule(st, (window * (i + this.rand())) / added.length);
    }
    // Published after every target is in place, so a publish callback that reenters sees a
    // consistent set. The slot may have held another host before: say it is up, as it starts.
    for (const t of added) {
      const st = this.targets.get(t.slot);
      if (st !== undefined && !st.stopped) this.callPublish(t.slot, true);
    }
  }

  /** Stops every check, closes sockets, clears timers; idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const st of this.targets.values()) this.stop(st);
    this.targets.clear();
  }

  /**
   * For /status and tests, by slot. `successes` and `failures` are the current consecutive runs
   * (one of them is 0 once a check has run), `checks` the number of completed checks.
   */
  status(): { slot: number; group: string; address: string; healthy: boolean; successes: number; failures: number; lastReason: string; checks: number }[] {
    return [...this.targets.values()]
      .sort((a, b) => a.target.slot - b.target.slot)
      .map((st) => ({
        slot: st.target.slot,
        group: st.target.group,
        address: st.target.address,
        healthy: st.healthy,
        successes: st.successes,
        failures: st.failures,
        lastReason: st.lastReason,
        checks: st.checks,
      }));
  }

  private rand(): number {
    const r = this.random();
    return r >= 0 && r < 1 ? r : 0.5;
  }

  private schedule(st: TargetState, delayMs: number): void {
    st.timer = setTimeout(() => {
      st.timer = undefined;
      this.start(st);
    }, delayMs);
    st.timer.unref();
  }

  private stop(st: TargetState): void {
    st.stopped = true;
    if (st.timer !== undefined) clearTimeout(st.timer);
    st.timer = undefined;
    const c = st.inflight;
    st.inflight = undefined;
    if (c !== undefined) {
      c.done = true;
      c.socket?.destroy();
    }
  }

  private start(st: TargetState): void {
    if (st.stopped || st.inflight !== undefined) return;
    const c: Check = { socket: undefined, connected: false, done: false, buf: '' };
    st.inflight = c;
    st.timer = setTimeout(() => {
      st.timer = undefined;
      this.finish(st, c, false, c.connected ? 'timeout' : 'connect timeout');
    }, st.target.spec.timeoutMs);
    st.timer.unref();

    let socket: Socket;
    try {
      const tlsOptions = st.target.spec.tls;
      socket = tlsOptions === undefined ? connect({ host: st.host, port: st.port }) : tlsConnect({ ...tlsOptions, host: st.host, port: st.port });
    } catch (err) {
      // Synchronous failures (a bad address family, fd exhaustion): still a failed check.
      this.finish(st, c, false, errorReason(err as NodeJS.ErrnoException, false));
      return;
    }
    c.socket = socket;
    socket.unref();
    // Kept for the socket's whole life: an 'error' without a listener would crash the primary.
    socket.on('error', (err: NodeJS.ErrnoException) => this.finish(st, c, false, errorReason(err, c.connected)));
    socket.on('close', () => this.finish(st, c, false, c.connected ? 'closed before status line' : 'connect closed'));
    socket.once(st.target.spec.tls === undefined ? 'connect' : 'secureConnect', () => {
      c.connected = true;
      if (st.request === undefined) {
        this.finish(st, c, true, 'connected');
        return;
      }
      socket.on('data', (chunk: Buffer) => {
        if (c.done) return;
        c.buf += chunk.toString('latin1');
        const r = readStatus(c.buf);
        if (r === 'more') return;
        if (r === 'malformed') this.finish(st, c, false, 'malformed status line');
        else this.finish(st, c, inRanges(r, st.target.spec.expectStatuses), `status ${r}`);
      });
      socket.on('end', () => this.finish(st, c, false, 'closed before status line'));
      socket.write(st.request);
    });
  }

  private finish(st: TargetState, c: Check, ok: boolean, reason: string): void {
    if (c.done) return;
    c.done = true;
    c.socket?.destroy();
    if (st.inflight !== c || st.stopped) return;
    st.inflight = undefined;
    if (st.timer !== undefined) clearTimeout(st.timer);
    st.timer = undefined;

    st.checks++;
    st.lastReason = reason;
    if (ok) {
      st.successes++;
      st.failures = 0;
    } else {
      st.failures++;
      st.successes = 0;
    }
    const spec = st.target.spec;
    if ((st.healthy && st.failures >= spec.fall) || (!st.healthy && st.successes >= spec.rise)) {
      st.healthy = !st.healthy;
      const t = st.target;
      this.callPublish(t.slot, st.healthy);
      if (this.onChangeFn !== undefined) {
        const change: HealthChange = { slot: t.slot, group: t.group, address: t.address, healthy: st.healthy, reason };
        try {
          this.onChangeFn(change);
        } catch (err) {
          warn(err);
        }
      }
    }
    // The callbacks may have called setTargets() or close(): a stopped target schedules nothing.
    if (st.stopped) return;
    const r = this.rand();
    this.schedule(st, spec.intervalMs * (1 + spec.jitter * (2 * r - 1)));
  }

  private callPublish(slot: number, healthy: boolean): void {
    try {
      this.publishFn(slot, healthy);
    } catch (err) {
      warn(err);
    }
  }
}

/**
 * A throwing callback must not end the checks (they run from socket and timer events, where an
 * exception would take the primary down); it is reported as a process warning instead.
 */
function warn(err: unknown): void {
  // A string, not the Error itself: emitWarning ignores the options (the code) for an Error.
  const message = err instanceof Error ? err.message : String(err);
  const detail = err instanceof Error ? err.stack : undefined;
  process.emitWarning(`a health check callback threw: ${message}`, { code: 'HEALTH_CHECK_CALLBACK_FAILED', ...(detail !== undefined ? { detail } : {}) });
}
