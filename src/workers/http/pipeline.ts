/**
 * The single extension point of the request pipeline, modelled on Pingora's `ProxyHttp`
 * trait. Built-in features (routing, header edits, forwarding headers, rate limiting,
 * breakers and outlier detection, access log, Kafka events, ACLs) are phases like any
 * plug-in. The worker builds
 * the hook arrays once at start-up (and on reload), never per request.
 *
 * Order (see docs/phases.md for the chart):
 *   accept → requestFilter → upstreamPeer → upstreamRequestFilter → [upstream I/O]
 *   → attemptDone → responseFilter → logging
 * Error phases: failToConnect (nothing was sent: safe to retry elsewhere), errorWhileProxy
 * (a failure after the request went out), failToProxy (chooses the status when no response
 * has started). `logging` runs exactly once per request, with the error if any.
 *
 * Phases run synchronously on the worker's hot path: they must not block, must not call
 * Kafka, and should not allocate per request beyond what they add to the session.
 */
import type { SluiceError } from '../../shared/errors';

/** A downstream request as the pipeline sees it. Header names are lower case. */
export interface Session {
  readonly id: number;
  method: string;
  /** Path without the query, as sent to the upstream (rewrite phases may change it). */
  path: string;
  /** Query string without '?', '' if none. */
  query: string;
  /** Flat list [name0, value0, name1, value1, ...]: names lower case, repeats kept. */
  headers: string[];
  /**
   * The client: the peer address, or the one behind `proxy.trustedHops` trusted proxies in
   * X-Forwarded-For (docs/edge.md). ACLs, client_ip keys and logs use it.
   */
  readonly clientAddress: string;
  /** The connection's peer (the PROXY protocol v2 source when the listener takes it): what X-Forwarded-For gets appended. */
  readonly peerAddress: string;
  /**
   * The connection's verified client certificate as the identity header's value
   * (tls.clientAuth, docs/edge.md); '' when there is none.
   */
  readonly clientCert: string;
  /** `performance.now()` of this thread when the request head arrived (monoOfPerf gives monoMs). */
  readonly startedAt: number;
  /** Name of the matched route, '' before routing. */
  routeName: string;
  /** The request id (propagated or generated). */
  requestId: string;
  /** Response status sent to the client (0 while none). */
  status: number;
  /** Response flags for logs and events (e.g. 'UF' upstream connect failure, 'UT' timeout). */
  flags: string[];
  upstreamName: string;
  upstreamHost: string;
  /**
   * The load-balancing key the last pick hashed (ketama, maglev), '' when none: the key as
   * read, or `xxh3:<hex>` of it when it comes from a cookie or the Authorization header.
   */
  lbKey: string;
  attempts: number;
  bytesIn: number;
  bytesOut: number;
  /** Per upstream attempt (recorded when request events are on, else null). */
  tries: TryRecord[] | null;
}

export interface TryRecord {
  readonly host: string;
  /** Start, in ms after the request arrived (exact; events write it to the microsecond). */
  readonly at: number;
  /** Duration in ms (-1 while running). */
  ms: number;
  /** '' = answered; else why the attempt ended (an error code, or 'reused-connection-failed'). */
  outcome: string;
}

/** Where a request goes: an upstream group and one of its hosts. */
export interface Peer {
  readonly group: string;
  readonly host: string;
}

/** A response head from the upstream, mutable by responseFilter. */
export interface ResponseHead {
  status: number;
  /**
   * Flat list like Session.headers: names as the upstream sent them, hop-by-hop removed.
   * The worker makes this list only when a phase reads it (until then it forwards the
   * upstream's bytes): phases that only look for or add a header use `has` and `append`.
   */
  headers: string[];
  /** Whether a header named `lowerName` (lower case) is there, in any case. */
  has(lowerName: string): boolean;
  /** Adds a header after the others. */
  append(name: string, value: string): void;
}

/** Index of the first header named `name` (lower case) in a flat [name, value, ...] list, any case, or -1. */
export function findCaseless(headers: readonly string[], name: string): number {
  const len = name.length;
  for (let i = 0; i < headers.length; i += 2) {
    const h = headers[i] as string;
    // Only names of its length are lowered: no string made for the others.
    if (h.length === len && (h === name || h.toLowerCase() === name)) return i;
  }
  return -1;
}

/** A ResponseHead over a list made beforehand (tests; code that builds a head itself). */
export class ListResponseHead implements ResponseHead {
  constructor(
    public status: number,
    public headers: string[],
  ) {}

  has(lowerName: string): boolean {
    return findCaseless(this.headers, lowerName) !== -1;
  }

  append(name: string, value: string): void {
    this.headers.push(name, value);
  }
}

export interface ProxyPhases<Ctx> {
  /** Runs when the connection's request arrives, before anything else. false = refused (the phase responded). */
  accept?(session: Session, ctx: Ctx): boolean;
  /** Inspect or answer the request. true = the phase already responded; the pipeline stops. */
  requestFilter?(session: Session, ctx: Ctx): boolean;
  /**
   * Choose the upstream host. The first phase returning a Peer wins; null = this phase has no
   * opinion. `tried` lists hosts that already failed for this request (retries go elsewhere).
   * Throwing a SluiceError (e.g. no healthy host) fails the request through failToProxy.
   */
  upstreamPeer?(session: Session, tried: readonly string[], ctx: Ctx): Peer | null;
  /** Adjust the request head sent upstream (header edits, forwarding headers). */
  upstreamRequestFilter?(session: Session, headers: string[], ctx: Ctx): void;
  /** Adjust the upstream response head before it is sent to the client. */
  responseFilter?(session: Session, head: ResponseHead, ctx: Ctx): void;
  /**
   * The outcome of one upstream attempt, exactly once per attempt: when its response head
   * arrived (`status` > 0, `err` null) or when it failed before one did (`status` 0). What
   * happens after the head (a body cut short) is the request's business, not the attempt's:
   * breakers and outlier detection judge a host by whether it answers. `peer` is only valid
   * during the call (the proxy reuses it across attempts).
   */
  attemptDone?(session: Session, peer: Peer, status: number, err: SluiceError | null, ctx: Ctx): void;
  /** The connection to `peer` failed before anything was sent; returning false forbids retrying. */
  failToConnect?(session: Session, peer: Peer, err: SluiceError, ctx: Ctx): boolean;
  /** An error after the request went out (read timeout, reset, bad response). */
  errorWhileProxy?(session: Session, peer: Peer, err: SluiceError, ctx: Ctx): void;
  /** No response has started: may pick another status for `err` (return 0 to keep err.status). */
  failToProxy?(session: Session, err: SluiceError, ctx: Ctx): number;
  /** Exactly once per request, after the response ended or failed. */
  logging?(session: Session, err: SluiceError | null, ctx: Ctx): void;
}

/** Hook arrays built once from an ordered list of phase objects. */
export interface Pipeline<Ctx> {
  readonly accept: readonly ((s: Session, c: Ctx) => boolean)[];
  readonly requestFilter: readonly ((s: Session, c: Ctx) => boolean)[];
  readonly upstreamPeer: readonly ((s: Session, t: readonly string[], c: Ctx) => Peer | null)[];
  readonly upstreamRequestFilter: readonly ((s: Session, h: string[], c: Ctx) => void)[];
  readonly responseFilter: readonly ((s: Session, h: ResponseHead, c: Ctx) => void)[];
  readonly attemptDone: readonly ((s: Session, p: Peer, status: number, e: SluiceError | null, c: Ctx) => void)[];
  readonly failToConnect: readonly ((s: Session, p: Peer, e: SluiceError, c: Ctx) => boolean)[];
  readonly errorWhileProxy: readonly ((s: Session, p: Peer, e: SluiceError, c: Ctx) => void)[];
  readonly failToProxy: readonly ((s: Session, e: SluiceError, c: Ctx) => number)[];
  readonly logging: readonly ((s: Session, e: SluiceError | null, c: Ctx) => void)[];
}

export function buildPipeline<Ctx>(phases: readonly ProxyPhases<Ctx>[]): Pipeline<Ctx> {
  const collect = <K extends keyof ProxyPhases<Ctx>>(k: K): NonNullable<ProxyPhases<Ctx>[K]>[] =>
    phases
      .filter((p) => p[k] !== undefined)
      .map((p) => {
        // Bound once here so that phases may be class instances using `this`.
        const f = p[k] as unknown as (...args: unknown[]) => unknown;
        return f.bind(p) as unknown as NonNullable<ProxyPhases<Ctx>[K]>;
      });
  return Object.freeze({
    accept: collect('accept'),
    requestFilter: collect('requestFilter'),
    upstreamPeer: collect('upstreamPeer'),
    upstreamRequestFilter: collect('upstreamRequestFilter'),
    responseFilter: collect('responseFilter'),
    attemptDone: collect('attemptDone'),
    failToConnect: collect('failToConnect'),
    errorWhileProxy: collect('errorWhileProxy'),
    failToProxy: collect('failToProxy'),
    logging: collect('logging'),
  });
}
