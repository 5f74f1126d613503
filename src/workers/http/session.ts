/**
 * What the phases see of a request: the session (method, path, headers, what the request
 * became), its upstream attempts, the chosen peer and the response head. Plain types only:
 * the engine (call.ts) implements them, phases read and edit them.
 */

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
   * X-Forwarded-For (docs/edge.md; set by ClientAddressPhase). ACLs, client_ip keys and logs use it.
   */
  clientAddress: string;
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
