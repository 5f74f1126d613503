/**
 * Sluice's built-in phases, in pipeline order: request id and forwarding headers, routing
 * (match, split, rewrite, load-balancer pick), route actions (redirect, respond, Kafka),
 * access log. Rate limiting and host judgement live in resilience.ts. They are ordinary
 * `ProxyPhases` implementations; the worker builds the pipeline from this list.
 */
import { performance } from 'node:perf_hooks';
import { randomUUID } from 'node:crypto';
import type { SluiceConfig } from '../../../shared/config';
import { sluiceError, type SluiceError } from '../../../shared/errors';
import { findCaseless, type Peer, type ProxyPhases, type ResponseHead, type Session } from '../pipeline';
import type { RequestCtx } from '../call';
import { applyEdits, pickSplit, rewritePath, type Router } from '../router';
import type { KafkaLink } from '../kafka/link';
import { KafkaRouteCall } from '../kafka/route';
import type { Upstreams } from '../upstream/upstreams';

/**
 * Request ids shaped like UUIDv4 without a CSPRNG call per request: a random prefix drawn
 * once per worker (and when the counter wraps) followed by a 48-bit counter. Unique within
 * the instance; across instances as unique as the 74 random prefix bits make them.
 */
let idPrefix = randomUUID().slice(0, 24);
let idCounter = 0;
export function nextRequestId(): string {
  if (idCounter >= 0xffffffffffff) {
    idPrefix = randomUUID().slice(0, 24);
    idCounter = 0;
  }
  const n = (idCounter++).toString(16);
  return idPrefix + '000000000000'.slice(n.length) + n;
}

function find(headers: readonly string[], name: string): number {
  for (let i = 0; i < headers.length; i += 2) if (headers[i] === name) return i;
  return -1;
}

/** Request id, X-Forwarded-*, Via, and the route's header edits. */
export class ForwardingPhase implements ProxyPhases<RequestCtx> {
  private readonly idHeader: string;
  private readonly via: string;
  /** tls.clientAuth.identityHeader: never taken from a client, set from a verified certificate. */
  private readonly certHeader: string;

  constructor(cfg: SluiceConfig) {
    this.idHeader = cfg.proxy.requestIdHeader.toLowerCase();
    this.via = cfg.proxy.via === '' ? '' : `1.1 ${cfg.proxy.via}`;
    this.certHeader = cfg.tls?.clientAuth?.identityHeader.toLowerCase() ?? '';
  }

  requestFilter(s: Session): boolean {
    const i = find(s.headers, this.idHeader);
    const v = i === -1 ? '' : (s.headers[i + 1] as string);
    if (v !== '' && v.length <= 200) s.requestId = v;
    else {
      s.requestId = nextRequestId();
      if (i === -1) s.headers.push(this.idHeader, s.requestId);
      else s.headers[i + 1] = s.requestId;
    }
    return false;
  }

  upstreamRequestFilter(s: Session, out: string[], ctx: RequestCtx): void {
    // The peer, not the derived client: each hop appends whom it heard from (docs/edge.md).
    const xff = find(out, 'x-forwarded-for');
    if (xff === -1) out.push('x-forwarded-for', s.peerAddress);
    else out[xff + 1] = `${out[xff + 1]}, ${s.peerAddress}`;
    // The scheme the client used with Sluice; a client's own value is overwritten, never trusted.
    const scheme = ctx.listener === 'https' ? 'https' : 'http';
    const proto = find(out, 'x-forwarded-proto');
    if (proto === -1) out.push('x-forwarded-proto', scheme);
    else out[proto + 1] = scheme;
    const host = find(s.headers, 'host');
    if (host !== -1) {
      const fh = find(out, 'x-forwarded-host');
      if (fh === -1) out.push('x-forwarded-host', s.headers[host + 1] as string);
      else out[fh + 1] = s.headers[host + 1] as string;
    }
    if (this.via !== '') {
      const via = find(out, 'via');
      if (via === -1) out.push('via', this.via);
      else out[via + 1] = `${out[via + 1]}, ${this.via}`;
    }
    if (this.certHeader !== '') {
      // Whatever a client sent under this name is a forgery, on every listener (Envoy's
      // forward_client_cert_details SANITIZE_SET does the same).
      for (let i = find(out, this.certHeader); i !== -1; i = find(out, this.certHeader)) out.splice(i, 2);
      if (s.clientCert !== '') out.push(this.certHeader, s.clientCert);
    }
    const edits = ctx.route?.requestEdits;
    if (edits != null) applyEdits(out, edits);
  }

  responseFilter(s: Session, head: ResponseHead, ctx: RequestCtx): void {
    // has/append: no header strings made for the usual response (ResponseHead.headers).
    if (this.via !== '') {
      if (!head.has('via')) head.append('via', this.via);
      else {
        const hs = head.headers;
        const via = findCaseless(hs, 'via');
        hs[via + 1] = `${hs[via + 1]}, ${this.via}`;
      }
    }
    if (!head.has(this.idHeader)) head.append(this.idHeader, s.requestId);
    const edits = ctx.route?.responseEdits;
    if (edits != null) applyEdits(head.headers, edits);
  }
}

/**
 * Route matching (with the split pick and the prefix rewrite), then the load-balancer pick
 * within the chosen group. The route's own answers (redirect, respond, Kafka) come later,
 * from RouteActionPhase, so that phases in between (rate limiting) see the route first.
 */
export class RoutingPhase implements ProxyPhases<RequestCtx> {
  constructor(
    private readonly router: Router,
    private readonly upstreams: Upstreams,
  ) {}

  requestFilter(s: Session, ctx: RequestCtx): boolean {
    const route = this.router.match(s.method, ctx.hostName, s.path, s.headers);
    if (route === null) throw sluiceError('SLUICE_ERR_NO_ROUTE', `${s.method} ${ctx.hostName}${s.path}`);
    ctx.route = route;
    s.routeName = route.name;
    const a = route.action;
    if (a.type === 'proxy') ctx.group = this.upstreams.groups.get(a.upstream) ?? null;
    else if (a.type === 'split') ctx.group = this.upstreams.groups.get(pickSplit(route, Math.random())) ?? null;
    else return false;
    if (route.rewriteFrom !== '') s.path = rewritePath(s.path, route.rewriteFrom, route.rewriteTo);
    return false;
  }

  upstreamPeer(s: Session, tried: readonly string[], ctx: RequestCtx): Peer | null {
    const g = ctx.group;
    if (g === null) return null;
    const h = g.pick(tried, s, ctx);
    if (h === null) throw sluiceError('SLUICE_ERR_NO_HEALTHY_UPSTREAM', g.name);
    ctx.groupHost = h;
    return h.peer;
  }
}

/** The route actions that answer without an upstream: redirect, direct response, Kafka produce. */
export class RouteActionPhase implements ProxyPhases<RequestCtx> {
  constructor(private readonly kafka: KafkaLink | null) {}

  requestFilter(s: Session, ctx: RequestCtx): boolean {
    const route = ctx.route;
    if (route === null) return false;
    const a = route.action;
    switch (a.type) {
      case 'proxy':
      case 'split':
        return false;
      case 'redirect': {
        const location = a.appendPath ? `${a.location}${s.path}${s.query === '' ? '' : `?${s.query}`}` : a.location;
        ctx.respond(a.status, '', ['location', location]);
        return true;
      }
      case 'kafka':
        // Takes over the request: collects the body, produces, answers.
        new KafkaRouteCall(ctx, route, a, this.kafka).start();
        return true;
      case 'respond': {
        const hs = ['content-type', a.contentType];
        for (const [k, v] of Object.entries(a.headers ?? {})) hs.push(k, v);
        ctx.respond(a.status, a.body, hs);
        return true;
      }
    }
  }
}

/** One JSON line per request on stdout (docs/access-log.md describes the fields). */
export class AccessLogPhase implements ProxyPhases<RequestCtx> {
  constructor(private readonly write: (line: string) => void) {}

  logging(s: Session, err: SluiceError | null): void {
    const rec = {
      ts: new Date().toISOString(),
      id: s.requestId,
      client: s.clientAddress,
      method: s.method,
      path: s.path,
      query: s.query === '' ? undefined : s.query,
      route: s.routeName,
      upstream: s.upstreamName === '' ? undefined : s.upstreamName,
      upstreamHost: s.upstreamHost === '' ? undefined : s.upstreamHost,
      status: s.status,
      attempts: s.attempts,
      bytesIn: s.bytesIn,
      bytesOut: s.bytesOut,
      ms: Math.round((performance.now() - s.startedAt) * 100) / 100,
      flags: s.flags.length === 0 ? undefined : s.flags.join(','),
      error: err === null ? undefined : err.code,
    };
    this.write(`${JSON.stringify(rec)}\n`);
  }
}
