/**
 * The single extension point of the request pipeline, modelled on Pingora's `ProxyHttp`
 * trait. Built-in features (routing, header edits, forwarding headers, rate limiting,
 * breakers and outlier detection, access log, Kafka events, ACLs) are phases like any
 * plug-in. The worker builds
 * the hook arrays once at start-up (and on reload), never per request.
 *
 * Order (see docs/phases.md for the chart; session.ts for what phases see):
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
import type { Peer, ResponseHead, Session } from './session';

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
  /**
   * A request body chunk arrived (`session.bytesIn` counts it); before it goes upstream or to
   * the phase that took the body. Throwing a SluiceError ends the request with it (the
   * upload is cut: the connection closes).
   */
  requestBodyFilter?(session: Session, ctx: Ctx): void;
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
  /**
   * The attempt failed (`err`), or answered with a 5xx head (`err` null, `status`, and its
   * Retry-After value or ''): may the request try again on another host? The first phase
   * returning a delay in ms (>= 0) decides; -1 = no opinion. Asked only while a retry is
   * possible: nothing went to the client, the body can be sent again, no phase forbade it.
   * The phase that says yes owns the decision's bookkeeping (counts, budget, flags).
   */
  shouldRetry?(session: Session, err: SluiceError | null, status: number, retryAfter: string, ctx: Ctx): number;
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
  readonly requestBodyFilter: readonly ((s: Session, c: Ctx) => void)[];
  readonly shouldRetry: readonly ((s: Session, e: SluiceError | null, status: number, retryAfter: string, c: Ctx) => number)[];
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
    requestBodyFilter: collect('requestBodyFilter'),
    shouldRetry: collect('shouldRetry'),
    upstreamRequestFilter: collect('upstreamRequestFilter'),
    responseFilter: collect('responseFilter'),
    attemptDone: collect('attemptDone'),
    failToConnect: collect('failToConnect'),
    errorWhileProxy: collect('errorWhileProxy'),
    failToProxy: collect('failToProxy'),
    logging: collect('logging'),
  });
}
