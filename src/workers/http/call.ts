/**
 * One proxied request: the uWS response on the client side, a pooled raw socket on the
 * upstream side, and the phases of the pipeline between them. A `ProxyCall` is the
 * session, the phases' context, the owner of the upstream connection and its own deadline
 * holder at once, so a request costs one object plus its header list.
 *
 * Streams both ways with backpressure: upstream bytes go out with `tryEnd` (known length) or
 * `write` (chunked / close-delimited); when uWS buffers, the upstream socket is paused until
 * `onWritable`. Client body chunks are copied (uWS detaches them) and written to the
 * upstream socket; when the socket buffers, the client upload is paused until `drain`.
 *
 * Must never: touch `res` after it ended or aborted, block, call Kafka, or arm a timer per
 * request (deadlines run on the coarse clock).
 */
import { performance } from 'node:perf_hooks';
import type { HttpResponse } from 'uWebSockets.js';
import { coarseNow, track, untrack, type DeadlineHolder } from './clock';
import { sluiceError, statusLine, toSluiceError, type ErrorCode, type SluiceError } from '../../shared/errors';
import { KIND_ACTIVE, KIND_PENDING } from '../../shared/host-state';
import type { ListenerKind, ProxyEnv, RequestCtx } from './context';
import type { RequestScan } from './downstream/request-head';
import { parseHead, sendHead, UpstreamHead } from './response-head';
import type { Peer, Session, TryRecord } from './session';
import { CHUNKED_ERROR, ChunkedDecoder, HEAD_INCOMPLETE, isRequestHop, responseHasNoBody, type ParsedHead } from './upstream/http1';
import type { Conn, ConnOwner } from './upstream/pool';
import type { CompiledRoute } from './router';
import type { GroupHost, UpstreamGroup } from './upstream/upstreams';

export const enum BodyMode {
  None = 0,
  Length = 1,
  Chunked = 2,
  Close = 3,
}

const enum Stage {
  Idle = 0,
  Connect = 1,
  Send = 2,
  Head = 3,
  Body = 4,
}

let nextId = 1;

const EMPTY: readonly string[] = [];

/**
 * What ProxyCall.onHead and onData hand to res.cork, in one object per thread and one
 * function instead of a closure per response or read: cork runs its callback at once, and
 * the callback clears the fields before it calls the ProxyCall, so no response sees another's.
 */
const corked = {
  call: null as ProxyCall | null,
  head: null as UpstreamHead | null,
  buf: null as Buffer | null,
  bodyStart: 0,
  end: 0,
  noBody: false,
};

function sendCorked(): void {
  const c = corked;
  const call = c.call as ProxyCall;
  const head = c.head as UpstreamHead;
  const buf = c.buf as Buffer;
  c.call = null;
  c.head = null;
  c.buf = null;
  call.sendResponse(head, buf, c.bodyStart, c.end, c.noBody);
}

/** ProxyCall.onData's body bytes to the client, inside res.cork. */
function forwardCorked(): void {
  const c = corked;
  const call = c.call as ProxyCall;
  const buf = c.buf as Buffer;
  c.call = null;
  c.buf = null;
  call.forwardBody(buf, c.bodyStart, c.end);
}

export class ProxyCall implements Session, RequestCtx, ConnOwner, DeadlineHolder {
  // ---- Session
  readonly id = nextId++;
  method: string;
  path: string;
  query: string;
  headers: string[];
  clientAddress: string;
  readonly peerAddress: string;
  /** Set by the handler before run(): the verified client certificate (front listeners only). */
  clientCert = '';
  readonly startedAt: number;
  routeName = '';
  requestId = '';
  status = 0;
  flags: string[] = [];
  upstreamName = '';
  upstreamHost = '';
  lbKey = '';
  attempts = 0;
  bytesIn = 0;
  bytesOut = 0;
  tries: TryRecord[] | null = null;
  // ---- ctx
  readonly hostName: string;
  route: CompiledRoute | null = null;
  group: UpstreamGroup | null = null;
  groupHost: GroupHost | null = null;
  breakerProbe = false;
  holdsActive = false;
  rateLimitRemaining = -1;
  clientBytes: Uint8Array | null;
  readonly forwardedFor: string;
  totalDeadline = 0;
  retries = 0;
  budgetGroup: UpstreamGroup | null = null;
  budgetRetrying = false;
  // ---- downstream state
  private aborted = false;
  private headSent = false;
  private done = false;
  private logged = false;
  // ---- request body
  private readonly reqMode: BodyMode;
  private reqDone: boolean;
  private replay: Buffer[] | null = null;
  private replayBytes = 0;
  private clientPaused = false;
  private bodySink: ((chunk: Buffer | null, isLast: boolean) => void) | null = null;
  // ---- upstream
  private conn: Conn | null = null;
  private reqHead = '';
  private stage = Stage.Idle;
  deadline = 0;
  trackSlot = -1;
  private respMode = BodyMode.None;
  private respRemaining = 0;
  private respTotal = 0;
  private respSent = 0;
  private respComplete = false;
  private reusable = true;
  private decoder: ChunkedDecoder | null = null;
  private pending: Buffer | null = null;
  private pendingBase = 0;
  private gotResponseBytes = false;
  // ---- attempts and retries
  /** The running attempt's outcome has not been reported to attemptDone yet. */
  private attemptOpen = false;
  /** The running attempt holds one of its host's maxPendingPerHost places (connecting). */
  private holdsPending = false;
  /** Hosts that failed this request (retries go elsewhere); null until one did. */
  private tried: string[] | null = null;
  private retryTimer: NodeJS.Timeout | null = null;
  /** The attempt holds its host (gh.active counted). */
  private hostHeld = false;
  /** A failToConnect phase forbade retrying this failure. */
  private noRetry = false;
  /** The Peer handed to attemptDone, reused across attempts (phases must not keep it). */
  private attemptPeer: { group: string; host: string } | null = null;
  /** The last upstream failure, answered when a scheduled retry finds no host. */
  private lastError: SluiceError | null = null;

  /**
   * `head` is the worker's one scan object, read only by the first phases (requestHead);
   * `peerBytes` the connection's peer as 16 bytes, `peer` its text.
   */
  constructor(
    private readonly res: HttpResponse,
    private readonly env: ProxyEnv,
    readonly requestHead: RequestScan,
    hostName: string,
    peer: string,
    readonly peerBytes: Uint8Array | null,
    readonly listener: ListenerKind,
    reqMode: BodyMode,
  ) {
    this.method = requestHead.method;
    this.path = requestHead.url;
    this.query = requestHead.query;
    this.headers = requestHead.headers;
    this.forwardedFor = requestHead.xff;
    this.hostName = hostName;
    this.clientAddress = peer;
    this.peerAddress = peer;
    this.clientBytes = peerBytes;
    this.startedAt = performance.now();
    this.reqMode = reqMode;
    this.reqDone = reqMode === BodyMode.None;
    env.stats.inflight++;
    env.stats.requests++;
  }

  // ------------------------------------------------------------ pipeline

  run(): void {
    const p = this.env.pipeline;
    try {
      for (const f of p.accept) if (!f(this, this) || this.done) return;
      for (const f of p.requestFilter) if (f(this, this) || this.done) return;
      const total = this.route?.timeouts?.totalMs ?? this.env.config.timeouts.totalMs;
      if (total > 0) this.totalDeadline = coarseNow() + total;
      this.attempt(false);
    } catch (e) {
      this.fail(toSluiceError(e));
    }
  }

  get triedHosts(): readonly string[] {
    return this.tried ?? EMPTY;
  }

  private pickPeer(): Peer | null {
    const tried = this.tried ?? EMPTY;
    for (const f of this.env.pipeline.upstreamPeer) {
      const peer = f(this, tried, this);
      if (peer !== null) return peer;
    }
    return null;
  }

  /** Starts one attempt; `fresh` forces a new connection (the reused-connection retry). */
  private attempt(fresh: boolean): void {
    const peer = this.pickPeer();
    const gh = this.groupHost;
    if (peer === null || gh === null) throw sluiceError('SLUICE_ERR_NO_HEALTHY_UPSTREAM', this.group?.name);
    this.upstreamName = peer.group;
    this.upstreamHost = peer.host;
    const g = this.group;
    const conn = gh.pool.acquire(fresh);
    if (conn === null) {
      this.releaseShared(gh);
      throw sluiceError('SLUICE_ERR_POOL_EXHAUSTED', peer.host);
    }
    if (!conn.connected && g !== null && g.maxPending > 0 && g.state !== null) {
      if (!g.state.tryAcquire(gh.slot, KIND_PENDING, g.maxPending)) {
        conn.destroy();
        this.releaseShared(gh);
        this.flags.push('UO');
        throw sluiceError('SLUICE_ERR_UPSTREAM_OVERFLOW', `${peer.host}: ${g.maxPending} connections being opened (maxPendingPerHost)`);
      }
      this.holdsPending = true;
    }
    this.attempts++;
    this.attemptOpen = true;
    this.hostHeld = true;
    gh.active++;
    if (this.env.recordTries) (this.tries ??= []).push({ host: peer.host, at: performance.now() - this.startedAt, ms: -1, outcome: '' });
    this.conn = conn;
    conn.owner = this;
    if (this.reqHead === '') this.reqHead = this.buildRequestHead();
    const sock = conn.socket;
    const replay = this.replay;
    const lastChunk = this.reqDone && this.reqMode === BodyMode.Chunked;
    // A head with nothing to follow it goes out at the end of the turn, with the others
    // (Conn.queueText); a body's first bytes may follow within this turn, so its head is sent now.
    if (replay === null && !lastChunk) {
      if (this.reqDone) conn.queueText(this.reqHead);
      else conn.writeText(this.reqHead);
    } else {
      // One write for the head and what the client already sent (cork: no stream buffering for the plain case).
      sock.cork();
      sock.write(this.reqHead, 'utf8');
      if (replay !== null) for (const b of replay) this.writeBody(b);
      if (lastChunk) sock.write('0\r\n\r\n', 'latin1');
      sock.uncork();
    }
    if (!conn.connected) this.arm(Stage.Connect);
    else this.arm(this.reqDone ? Stage.Head : Stage.Send);
    if (this.clientPaused && !sock.writableNeedDrain) this.resumeClient();
  }

  private buildRequestHead(): string {
    const hs = this.headers;
    const out: string[] = [];
    let connTokens: string[] | null = null;
    for (let i = 0; i < hs.length; i += 2) {
      if (hs[i] !== 'connection') continue;
      const v = hs[i + 1] as string;
      // The usual value names only Keep-Alive, which is dropped anyway: nothing to split.
      if (v !== 'keep-alive' && v !== 'Keep-Alive') (connTokens ??= []).push(...v.toLowerCase().split(',').map((t) => t.trim()));
    }
    for (let i = 0; i < hs.length; i += 2) {
      const n = hs[i] as string;
      if (isRequestHop(n) || (connTokens !== null && connTokens.includes(n))) continue;
      if (n === 'content-length' && this.reqMode !== BodyMode.Length) continue;
      out.push(n, hs[i + 1] as string);
    }
    for (const f of this.env.pipeline.upstreamRequestFilter) f(this, out, this);
    let head = `${this.method} ${this.path}${this.query === '' ? '' : `?${this.query}`} HTTP/1.1\r\n`;
    for (let i = 0; i < out.length; i += 2) head += `${out[i]}: ${out[i + 1]}\r\n`;
    if (this.reqMode === BodyMode.Chunked) head += 'transfer-encoding: chunked\r\n';
    return `${head}\r\n`;
  }

  // ------------------------------------------------------------ deadlines

  private arm(stage: Stage): void {
    this.stage = stage;
    const t = this.timeouts();
    let ms: number;
    switch (stage) {
      case Stage.Connect:
        ms = t.connectMs;
        break;
      case Stage.Head:
        ms = t.headerMs;
        break;
      default:
        ms = t.idleMs;
    }
    let d = coarseNow() + ms;
    if (this.totalDeadline !== 0 && this.totalDeadline < d) d = this.totalDeadline;
    if (this.deadline === 0) track(this);
    this.deadline = d;
  }

  private timeouts(): { connectMs: number; headerMs: number; idleMs: number } {
    const g = this.group?.timeouts ?? this.env.config.timeouts;
    const r = this.route?.timeouts;
    if (r === undefined) return g;
    return { connectMs: r.connectMs ?? g.connectMs, headerMs: r.headerMs ?? g.headerMs, idleMs: r.idleMs ?? g.idleMs };
  }

  private disarm(): void {
    if (this.deadline !== 0) {
      this.deadline = 0;
      untrack(this);
    }
  }

  onDeadline(now: number): void {
    this.deadline = 0;
    if (this.done) return;
    let code: ErrorCode;
    if (this.totalDeadline !== 0 && now >= this.totalDeadline) code = 'SLUICE_ERR_TOTAL_TIMEOUT';
    else if (this.stage === Stage.Connect) code = 'SLUICE_ERR_UPSTREAM_CONNECT_TIMEOUT';
    else if (this.stage === Stage.Head) code = 'SLUICE_ERR_UPSTREAM_HEAD_TIMEOUT';
    else code = 'SLUICE_ERR_UPSTREAM_READ_TIMEOUT';
    this.flags.push(code === 'SLUICE_ERR_TOTAL_TIMEOUT' ? 'RT' : 'UT');
    this.upstreamFailed(sluiceError(code, this.upstreamHost));
  }

  // ------------------------------------------------------------ request body (client → upstream)

  /** uWS onData: the ArrayBuffer is detached after this returns, so it is copied. */
  onClientData(ab: ArrayBuffer, isLast: boolean): void {
    if (this.done) return;
    const n = ab.byteLength;
    this.bytesIn += n;
    try {
      for (const f of this.env.pipeline.requestBodyFilter) f(this, this);
    } catch (e) {
      this.abandonUpstream();
      this.fail(toSluiceError(e), true);
      return;
    }
    const sink = this.bodySink;
    if (sink !== null) {
      if (isLast) this.reqDone = true;
      sink(n > 0 ? Buffer.copyBytesFrom(new Uint8Array(ab)) : null, isLast);
      return;
    }
    if (n > 0) {
      const chunk = Buffer.copyBytesFrom(new Uint8Array(ab));
      if (this.replay !== null || (this.bytesIn === n && !this.headSent)) {
        // Keep the body for a possible retry while it fits the retry buffer.
        if (this.replayBytes + n <= this.env.config.proxy.retryBufferBytes && !this.headSent) {
          (this.replay ??= []).push(chunk);
          this.replayBytes += n;
        } else {
          this.replay = null;
          this.replayBytes = -1;
        }
      }
      if (this.conn !== null) {
        const ok = this.writeBody(chunk);
        if (!ok) this.pauseClient();
      }
    }
    if (isLast) {
      this.reqDone = true;
      const c = this.conn;
      if (c !== null) {
        if (this.reqMode === BodyMode.Chunked) c.socket.write('0\r\n\r\n', 'latin1');
        if (this.stage === Stage.Send) this.arm(Stage.Head);
      }
    } else if (this.stage === Stage.Send) {
      this.arm(Stage.Send);
    }
  }

  private writeBody(chunk: Buffer): boolean {
    const s = (this.conn as Conn).socket;
    if (this.reqMode === BodyMode.Chunked) {
      s.write(`${chunk.length.toString(16)}\r\n`, 'latin1');
      s.write(chunk);
      return s.write('\r\n', 'latin1');
    }
    return s.write(chunk);
  }

  private pauseClient(): void {
    if (!this.clientPaused && !this.done) {
      this.clientPaused = true;
      this.res.pause();
    }
  }

  private resumeClient(): void {
    if (this.clientPaused) {
      this.clientPaused = false;
      if (!this.aborted) this.res.resume();
    }
  }

  // ------------------------------------------------------------ upstream events (ConnOwner)

  onConnect(conn: Conn): void {
    if (conn !== this.conn || this.done) return;
    this.releasePending();
    this.arm(this.reqDone ? Stage.Head : Stage.Send);
  }

  onDrain(conn: Conn): void {
    if (conn !== this.conn) return;
    this.resumeClient();
    if (this.stage === Stage.Send) this.arm(Stage.Send);
  }

  onData(conn: Conn, buf: Buffer, start: number, end: number): void {
    if (conn !== this.conn || this.done) {
      conn.destroy();
      return;
    }
    this.gotResponseBytes = true;
    if (this.stage !== Stage.Body) {
      const p = conn.pending;
      if (p !== null) {
        conn.pending = null;
        const joined = Buffer.concat([p, buf.subarray(start, end)]);
        this.onHeadBytes(conn, joined, 0, joined.length);
      } else this.onHeadBytes(conn, buf, start, end);
      return;
    }
    this.arm(Stage.Body);
    corked.call = this;
    corked.buf = buf;
    corked.bodyStart = start;
    corked.end = end;
    this.res.cork(forwardCorked);
  }

  private onHeadBytes(conn: Conn, buf: Buffer, start: number, end: number): void {
    for (;;) {
      const r = parseHead(buf, start, end);
      if (r === HEAD_INCOMPLETE) {
        // A copy: `buf` may be the pool's shared read buffer (ConnOwner.onData).
        conn.pending = Buffer.from(buf.subarray(start, end));
        return;
      }
      if (typeof r === 'string') {
        this.flags.push('UP');
        this.upstreamFailed(
          sluiceError(r === 'head too large' ? 'SLUICE_ERR_UPSTREAM_HEAD_TOO_LARGE' : 'SLUICE_ERR_UPSTREAM_BAD_RESPONSE', r),
        );
        return;
      }
      if (r.status >= 100 && r.status < 200) {
        if (r.status === 101) {
          this.upstreamFailed(sluiceError('SLUICE_ERR_UPSTREAM_BAD_RESPONSE', 'unexpected 101 Switching Protocols'));
          return;
        }
        // 100 Continue / 103 Early Hints: interim, not forwarded (uWS answered Expect itself).
        start += r.headLength;
        if (start >= end) return;
        continue;
      }
      this.onHead(conn, r, buf, start + r.headLength, end);
      return;
    }
  }

  private onHead(conn: Conn, h: ParsedHead, buf: Buffer, bodyStart: number, end: number): void {
    if (h.close) this.reusable = false;
    if (h.keepAliveTimeoutS >= 0) conn.setKeepAliveHint(h.keepAliveTimeoutS);
    this.attemptEnded(h.status, null);
    if (h.status >= 500 && this.retryOnStatus(h)) return;
    // The response is going to the client: no retry can happen any more.
    this.replay = null;
    this.replayBytes = -1;
    const head = new UpstreamHead(h);
    for (const f of this.env.pipeline.responseFilter) f(this, head, this);
    const noBody = responseHasNoBody(this.method, h.status);
    if (noBody) this.respMode = BodyMode.None;
    else if (h.chunked) {
      this.respMode = BodyMode.Chunked;
      this.decoder = new ChunkedDecoder();
    } else if (h.contentLength >= 0) {
      this.respMode = BodyMode.Length;
      this.respRemaining = h.contentLength;
      this.respTotal = h.contentLength;
    } else {
      this.respMode = BodyMode.Close;
      this.reusable = false;
    }
    this.status = head.status;
    this.stage = Stage.Body;
    this.arm(Stage.Body);
    corked.call = this;
    corked.head = head;
    corked.buf = buf;
    corked.bodyStart = bodyStart;
    corked.end = end;
    corked.noBody = noBody;
    this.res.cork(sendCorked);
  }

  /** onHead's answer to the client, inside res.cork (sendCorked); the body's first bytes are buf[bodyStart..end). */
  sendResponse(head: UpstreamHead, buf: Buffer, bodyStart: number, end: number, noBody: boolean): void {
    const res = this.res;
    const h = head.parsed;
    this.headSent = true;
    sendHead(res, head);
    if (noBody) {
      if (h.contentLength >= 0 && h.status !== 204) res.writeHeader('content-length', String(h.contentLength));
      this.respComplete = true;
      if (bodyStart < end) this.reusable = false;
      res.endWithoutBody();
      this.complete();
      return;
    }
    if (this.respMode === BodyMode.Length && this.respTotal === 0) {
      if (bodyStart < end) this.reusable = false;
      this.respComplete = true;
      res.end();
      this.complete();
      return;
    }
    if (bodyStart < end) this.forwardBody(buf, bodyStart, end);
  }

  /** Sends response body bytes buf[start..end); runs inside res.cork. */
  forwardBody(buf: Buffer, start: number, end: number): void {
    switch (this.respMode) {
      case BodyMode.Length: {
        const avail = end - start;
        const take = avail < this.respRemaining ? avail : this.respRemaining;
        if (take < avail) this.reusable = false; // bytes past the declared length
        const slice = start === 0 && take === buf.length ? buf : buf.subarray(start, start + take);
        this.respRemaining -= take;
        this.sendLength(slice);
        return;
      }
      case BodyMode.Chunked: {
        const dec = this.decoder as ChunkedDecoder;
        // The decoder reads to the end of what it is given: only this read's bytes.
        const data = end === buf.length ? buf : buf.subarray(0, end);
        const used = dec.feed(data, start, (this.chunkSink ??= (chunk: Buffer): void => this.writeChunk(chunk)));
        if (used === CHUNKED_ERROR) {
          this.flags.push('UP');
          this.upstreamFailed(sluiceError('SLUICE_ERR_UPSTREAM_BAD_RESPONSE', 'bad chunked framing'));
          return;
        }
        if (dec.done && !this.done) {
          if (used < end) this.reusable = false;
          this.respComplete = true;
          this.res.end();
          this.complete();
        }
        return;
      }
      case BodyMode.Close:
        this.writeChunk(start === 0 && end === buf.length ? buf : buf.subarray(start, end));
        return;
      case BodyMode.None:
        this.reusable = false;
        return;
    }
  }

  /** writeChunk bound for the chunked decoder; made on first use, like the other callbacks (no closures per request). */
  private chunkSink: ((chunk: Buffer) => void) | null = null;
  private writableSink: ((offset: number) => boolean) | null = null;

  private writeChunk(chunk: Buffer): void {
    if (this.done || chunk.length === 0) return;
    this.bytesOut += chunk.length;
    if (!this.res.write(chunk)) this.waitWritable();
  }

  private sendLength(slice: Buffer): void {
    if (this.done) return;
    const base = this.respSent;
    if (base === 0 && slice.length === this.respTotal) {
      // The whole body in one read: end() takes it all (uWS keeps what the socket does not
      // take yet, at most one read's worth) and returns no [ok, done] array as tryEnd does.
      this.res.end(slice);
      this.bytesOut = this.respTotal;
      this.respSent = this.respTotal;
      this.respComplete = true;
      this.complete();
      return;
    }
    const [ok, finished] = this.res.tryEnd(slice, this.respTotal);
    if (finished) {
      this.bytesOut = this.respTotal;
      this.respSent = this.respTotal;
      if (this.respRemaining === 0) {
        this.respComplete = true;
        this.complete();
      }
      return;
    }
    if (ok) {
      this.respSent += slice.length;
      this.bytesOut = this.respSent;
      return;
    }
    this.pending = Buffer.from(slice); // kept past this read: `slice` may view the shared read buffer
    this.pendingBase = base;
    this.waitWritable();
  }

  private waitWritable(): void {
    this.conn?.pauseReading();
    this.res.onWritable((this.writableSink ??= (offset: number): boolean => this.onWritable(offset)));
  }

  private onWritable(offset: number): boolean {
    if (this.done) return true;
    const p = this.pending;
    if (p !== null) {
      const [ok, finished] = this.res.tryEnd(p.subarray(offset - this.pendingBase), this.respTotal);
      if (finished) {
        this.pending = null;
        this.respSent = this.respTotal;
        this.bytesOut = this.respTotal;
        if (this.respRemaining === 0) {
          this.respComplete = true;
          this.complete();
        }
        return true;
      }
      if (!ok) return false;
      this.respSent = this.pendingBase + p.length;
      this.bytesOut = this.respSent;
      this.pending = null;
    }
    this.conn?.resumeReading();
    return true;
  }

  onEnd(conn: Conn, err: Error | null): void {
    if (conn !== this.conn || this.done) return;
    this.conn = null;
    this.releaseHost();
    if (this.stage === Stage.Body && this.respMode === BodyMode.Close && err === null) {
      this.respComplete = true;
      this.res.cork(() => this.res.end());
      this.complete();
      return;
    }
    // The keep-alive reuse race: a reused connection failed before any response byte.
    if (!this.gotResponseBytes && conn.uses > 0 && this.replayBytes >= 0 && this.attempts === 1) {
      this.flags.push('RR');
      this.attemptAbandoned();
      this.endTry('reused-connection-failed');
      try {
        this.attempt(true);
      } catch (e) {
        this.fail(toSluiceError(e));
      }
      return;
    }
    let e: SluiceError;
    // A TLS failure before any response byte (refused certificate, name mismatch, a TLS alert
    // such as TLS 1.3's late "certificate required") is a connect failure: nothing reached
    // the upstream's application.
    const tlsReason = this.gotResponseBytes ? null : conn.tlsFailure(err);
    if (tlsReason !== null || this.stage === Stage.Connect || !conn.connected) {
      this.flags.push('UF');
      e =
        tlsReason !== null
          ? sluiceError('SLUICE_ERR_UPSTREAM_TLS', `${this.upstreamHost}: ${tlsReason} (${(err?.message ?? '').trim()})`)
          : sluiceError('SLUICE_ERR_UPSTREAM_CONNECT', `${this.upstreamHost}: ${err?.message ?? 'closed'}`);
      for (const f of this.env.pipeline.failToConnect) if (!f(this, { group: this.upstreamName, host: this.upstreamHost }, e, this)) this.noRetry = true;
    } else if (err !== null && (err as NodeJS.ErrnoException).code === 'ECONNRESET') {
      this.flags.push('UR');
      e = sluiceError('SLUICE_ERR_UPSTREAM_RESET', this.upstreamHost);
    } else {
      this.flags.push('UC');
      e = sluiceError('SLUICE_ERR_UPSTREAM_CLOSED', this.upstreamHost);
    }
    this.upstreamFailed(e, false);
  }

  // ------------------------------------------------------------ completion

  private releaseHost(): void {
    if (!this.hostHeld) return;
    this.hostHeld = false;
    const gh = this.groupHost as GroupHost;
    gh.active--;
    this.releaseShared(gh);
  }

  /** Gives back what the pick took in shared state: places under the host limits, an unjudged probe. */
  private releaseShared(gh: GroupHost): void {
    this.releasePending();
    const st = this.group?.state;
    if (st == null) return;
    if (this.holdsActive) {
      this.holdsActive = false;
      st.release(gh.slot, KIND_ACTIVE);
    }
    if (this.breakerProbe) {
      this.breakerProbe = false;
      st.abandonProbe(gh.slot);
    }
  }

  private releasePending(): void {
    if (!this.holdsPending) return;
    this.holdsPending = false;
    const gh = this.groupHost;
    if (gh !== null) this.group?.state?.release(gh.slot, KIND_PENDING);
  }

  /** Reports the running attempt's outcome to the attemptDone phases (once per attempt). */
  private attemptEnded(status: number, err: SluiceError | null): void {
    if (!this.attemptOpen) return;
    this.attemptOpen = false;
    const hooks = this.env.pipeline.attemptDone;
    if (hooks.length === 0) return;
    const peer = (this.attemptPeer ??= { group: '', host: '' });
    peer.group = this.upstreamName;
    peer.host = this.upstreamHost;
    for (const f of hooks) f(this, peer, status, err, this);
  }

  /** The attempt ends without a verdict on the host (the keep-alive reuse race). */
  private attemptAbandoned(): void {
    this.attemptOpen = false;
    const gh = this.groupHost;
    if (this.breakerProbe && gh !== null) {
      this.breakerProbe = false;
      this.group?.state?.abandonProbe(gh.slot);
    }
  }

  // ------------------------------------------------------------ retries

  /**
   * Asks the shouldRetry phases whether to try another host after `err` (or a 5xx head:
   * `err` null); the delay in ms, or -1. Asked only while a retry can be carried out: no
   * response byte went to the client, no phase forbade it, the body can be sent again.
   */
  private retryDelay(err: SluiceError | null, status: number, retryAfter: string): number {
    if (this.headSent || this.noRetry || (this.reqMode !== BodyMode.None && this.replayBytes < 0)) return -1;
    for (const f of this.env.pipeline.shouldRetry) {
      const d = f(this, err, status, retryAfter, this);
      if (d >= 0) return d;
    }
    return -1;
  }

  /** A 5xx head: discard it and retry elsewhere when a phase says so. */
  private retryOnStatus(h: ParsedHead): boolean {
    if (this.env.pipeline.shouldRetry.length === 0) return false;
    let after = '';
    const names = h.lowerNames;
    for (let i = 0; i < names.length; i++) {
      if (names[i] === 'retry-after') {
        after = h.headers[2 * i + 1] as string;
        break;
      }
    }
    const delay = this.retryDelay(null, h.status, after);
    if (delay < 0) return false;
    this.lastError = sluiceError(h.status === 504 ? 'SLUICE_ERR_UPSTREAM_HEAD_TIMEOUT' : 'SLUICE_ERR_NO_HEALTHY_UPSTREAM', `${this.upstreamHost} answered ${h.status}`);
    this.retryIn(delay, `status ${h.status}`);
    return true;
  }

  /** Carries out a retry decision: the attempt ends, another starts after `delay` ms on a host not tried yet. */
  private retryIn(delay: number, outcome: string): void {
    this.endTry(outcome);
    (this.tried ??= []).push(this.upstreamHost);
    this.abandonUpstream();
    this.disarm();
    this.stage = Stage.Idle;
    this.gotResponseBytes = false;
    this.reusable = true;
    this.respMode = BodyMode.None;
    this.decoder = null;
    this.retryTimer = setTimeout(() => this.retryNow(), delay);
  }

  private retryNow(): void {
    this.retryTimer = null;
    if (this.done) return;
    const last = this.lastError ?? sluiceError('SLUICE_ERR_NO_HEALTHY_UPSTREAM', this.group?.name);
    // The upload went on while we waited and outgrew the retry buffer: nothing left to replay.
    if (this.reqMode !== BodyMode.None && this.replayBytes < 0) {
      this.fail(last);
      return;
    }
    try {
      this.attempt(false);
    } catch (e) {
      const err = toSluiceError(e);
      this.fail(err.code === 'SLUICE_ERR_NO_HEALTHY_UPSTREAM' ? last : err);
    }
  }

  /** The response went out completely: return the connection and log. */
  private complete(): void {
    if (this.done) return;
    this.done = true;
    this.disarm();
    this.endTry('');
    const c = this.conn;
    this.conn = null;
    this.releaseHost();
    if (c !== null) {
      if (this.reusable && this.reqDone && this.respComplete && c.pending === null) {
        c.resumeReading();
        c.pool.release(c);
      } else c.destroy();
    }
    this.finish(null);
  }

  private abandonUpstream(): void {
    const c = this.conn;
    this.conn = null;
    this.releaseHost();
    if (c !== null) c.destroy();
  }

  private upstreamFailed(err: SluiceError, destroy = true): void {
    if (this.done) return;
    this.attemptEnded(0, err);
    if (destroy) this.abandonUpstream();
    if (this.attempts > 0 && err.source === 'upstream' && this.upstreamHost !== '') {
      for (const f of this.env.pipeline.errorWhileProxy) f(this, { group: this.upstreamName, host: this.upstreamHost }, err, this);
    }
    this.lastError = err;
    const delay = this.retryDelay(err, 0, '');
    if (delay >= 0) {
      this.retryIn(delay, err.code);
      return;
    }
    this.fail(err);
  }

  /** Ends the request with an error: an error response if none started, else a cut connection. */
  fail(err: SluiceError, closeConnection = false): void {
    if (this.done) return;
    this.done = true;
    this.disarm();
    this.endTry(err.code);
    this.abandonUpstream();
    if (!this.aborted) {
      if (!this.headSent) {
        let status = err.status;
        for (const f of this.env.pipeline.failToProxy) {
          const s = f(this, err, this);
          if (s !== 0) status = s;
        }
        this.status = status;
        const body = `{"error":"${err.code}","message":${JSON.stringify(err.message)}}\n`;
        const close = closeConnection || err.close || (!this.reqDone && this.reqMode !== BodyMode.None);
        this.res.cork(() => {
          this.headSent = true;
          this.res
            .writeStatus(statusLine(status))
            .writeHeader('content-type', 'application/json')
            .writeHeader('x-sluice-error', err.code);
          const extra = err.headers;
          if (extra !== null) for (let i = 0; i < extra.length; i += 2) this.res.writeHeader(extra[i] as string, extra[i + 1] as string);
          if (this.requestId !== '') this.res.writeHeader(this.env.config.proxy.requestIdHeader, this.requestId);
          this.res.end(body, close);
        });
      } else {
        // Headers already went out: the only honest signal left is a cut connection.
        this.res.close();
      }
    }
    this.finish(err);
  }

  get requestIdHeader(): string {
    return this.env.config.proxy.requestIdHeader;
  }

  /** RequestCtx.setBodySink: a phase takes the request body instead of an upstream. */
  setBodySink(sink: (chunk: Buffer | null, isLast: boolean) => void): void {
    this.bodySink = sink;
    if (this.reqDone) sink(null, true);
  }

  /** Closes the running attempt's record (request events). */
  private endTry(outcome: string): void {
    const t = this.tries;
    if (t === null) return;
    const last = t[t.length - 1];
    if (last !== undefined && last.ms === -1) {
      // From the exact start: a start rounded first made sub-millisecond attempts negative.
      last.ms = Math.round((performance.now() - this.startedAt - last.at) * 1000) / 1000;
      last.outcome = outcome;
    }
  }

  /** RequestCtx.respond: a direct answer from a phase (route actions, denials). */
  respond(status: number, body: string, headers?: readonly string[]): void {
    if (this.done) return;
    this.done = true;
    this.status = status;
    this.bytesOut = body.length;
    if (!this.aborted) {
      const close = !this.reqDone && this.reqMode !== BodyMode.None;
      this.res.cork(() => {
        this.headSent = true;
        this.res.writeStatus(statusLine(status));
        if (headers !== undefined) for (let i = 0; i < headers.length; i += 2) this.res.writeHeader(headers[i] as string, headers[i + 1] as string);
        if (this.requestId !== '') this.res.writeHeader(this.env.config.proxy.requestIdHeader, this.requestId);
        if (this.method === 'HEAD') {
          this.res.writeHeader('content-length', String(Buffer.byteLength(body)));
          this.res.endWithoutBody();
        } else this.res.end(body, close);
      });
    }
    this.finish(null);
  }

  onAborted(): void {
    this.aborted = true;
    if (this.done) return;
    this.flags.push('DC');
    this.done = true;
    this.disarm();
    this.abandonUpstream();
    this.finish(sluiceError('SLUICE_ERR_CLIENT_ABORTED'));
  }

  private finish(err: SluiceError | null): void {
    if (this.logged) return;
    this.logged = true;
    this.env.stats.inflight--;
    if (this.retryTimer !== null) {
      clearTimeout(this.retryTimer);
      this.retryTimer = null;
    }
    if (err !== null && this.status === 0) this.status = err.status;
    for (const f of this.env.pipeline.logging) {
      try {
        f(this, err, this);
      } catch (e) {
        this.env.log.error('logging phase failed', { err: e });
      }
    }
    onFinished?.();
  }
}

let onFinished: (() => void) | undefined;

/** Called after every request ends (the worker's drain watch). */
export function setOnFinished(f: (() => void) | undefined): void {
  onFinished = f;
}
