/**
 * The request id (kept or generated), X-Forwarded-For/-Proto/-Host, Via, the client
 * certificate identity header and the route's header edits, both ways (docs/edge.md).
 */
import { randomUUID } from 'node:crypto';
import type { SluiceConfig } from '../../../shared/config';
import type { RequestCtx } from '../context';
import type { ProxyPhases } from '../pipeline';
import { applyEdits } from '../router';
import { findCaseless, type ResponseHead, type Session } from '../session';

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
