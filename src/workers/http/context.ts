/**
 * The phases' context (Pingora's `CTX`): what a request carries between phases, and the
 * worker environment it runs in. Apart from the engine (call.ts) so that phases import
 * this file, never the engine: call.ts implements RequestCtx, phases only use it.
 */
import type { HttpResponse } from 'uWebSockets.js';
import type { SluiceConfig } from '../../shared/config';
import type { Logger } from '../../shared/log';
import type { KafkaLink } from './kafka/link';
import type { KafkaRouteHost } from './kafka/route';
import type { Pipeline } from './pipeline';
import type { RequestScan } from './downstream/request-head';
import type { CompiledRoute, Router } from './router';
import type { GroupHost, PickState, UpstreamGroup, Upstreams } from './upstream/upstreams';

/** Which listener a request came in on: the HTTP one (listen.*) or the HTTPS one (tls.*). */
export type ListenerKind = 'http' | 'https';

export interface WorkerStats {
  inflight: number;
  requests: number;
}

/** Everything a request needs from its worker; swapped whole on reload. */
export interface ProxyEnv {
  readonly config: SluiceConfig;
  readonly router: Router;
  readonly upstreams: Upstreams;
  readonly pipeline: Pipeline<RequestCtx>;
  readonly log: Logger;
  readonly stats: WorkerStats;
  /** The worker's connection to the Kafka producer process (null when Kafka is unused). */
  readonly kafka: KafkaLink | null;
  /** Record per-attempt details (request events need them). */
  readonly recordTries: boolean;
}

/** Per-request state shared by the built-in phases. */
export interface RequestCtx extends KafkaRouteHost, PickState {
  /** Host header, lower case, without port. */
  readonly hostName: string;
  route: CompiledRoute | null;
  group: UpstreamGroup | null;
  groupHost: GroupHost | null;
  /** Tokens left in the request's rate-limit bucket when its route sends RateLimit on every response; -1 otherwise. */
  rateLimitRemaining: number;
  /** Respond directly (phases that answer themselves). */
  respond(status: number, body: string, headers?: readonly string[]): void;
  /** The listener the request came in on. */
  readonly listener: ListenerKind;
  /**
   * Session.clientAddress as 16 bytes (IPv4 mapped), parsed once for the ACLs; null if uWS
   * gave no address. ClientAddressPhase sets both from the peer and X-Forwarded-For.
   */
  clientBytes: Uint8Array | null;
  /** The connection's peer as 16 bytes (IPv4 mapped), or null: what the client address starts from. */
  readonly peerBytes: Uint8Array | null;
  /** All the request's X-Forwarded-For lines joined with ',' ('' when none). */
  readonly forwardedFor: string;
  /**
   * The request head as read (lengths, Content-Length) for LimitsPhase: the worker's one scan
   * object, valid only while the request's first phases run (accept, requestFilter).
   */
  readonly requestHead: RequestScan;
  /** Absolute coarse-clock deadline of the route's total timeout, 0 when none. */
  readonly totalDeadline: number;
  /** Hosts that already failed this request (a retry goes elsewhere). */
  readonly triedHosts: readonly string[];
  /** Upstream attempts retried so far (RetryPhase's count). */
  retries: number;
  /** The group counted in its requests in flight (retry budget), null until counted. */
  budgetGroup: UpstreamGroup | null;
  /** Counted among its group's retries in flight (retry budget). */
  budgetRetrying: boolean;
}

/** Who is behind a connection of the listener front (src/workers/http/downstream/front.ts implements it). */
export interface FrontPeers {
  peer(res: HttpResponse): { readonly address: Uint8Array; readonly clientCert: string } | undefined;
}
