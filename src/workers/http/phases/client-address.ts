/**
 * The client address (docs/edge.md): the connection's peer (or the PROXY protocol source the
 * engine already took), then, with \`proxy.trustedHops\`, the entry that many hops from the
 * right of X-Forwarded-For. Runs first in \`accept\`, so the ACLs, rate-limit keys, logs and
 * events all see the derived client.
 */
import { formatAddressBytes, parseAddress } from '../../../shared/cidr';
import type { SluiceConfig } from '../../../shared/config';
import type { RequestCtx } from '../context';
import type { ProxyPhases } from '../pipeline';
import type { Session } from '../session';

/**
 * One X-Forwarded-For entry as an address: `1.2.3.4`, `2001:db8::1`, and the forms some load
 * balancers write with a port (`1.2.3.4:5678`, `[2001:db8::1]:5678`, `[2001:db8::1]`).
 * Anything else (`unknown`, obfuscated identifiers, garbage) is null.
 */
export function parseForwardedEntry(entry: string): Uint8Array | null {
  let e = entry.trim();
  if (e.length === 0 || e.length > 64) return null;
  if (e[0] === '[') {
    const close = e.indexOf(']');
    if (close === -1) return null;
    const after = e.slice(close + 1);
    if (after !== '' && !/^:\d{1,5}$/.test(after)) return null;
    e = e.slice(1, close);
    if (!e.includes(':')) return null;
  } else {
    const colon = e.indexOf(':');
    // Exactly one colon after a dotted quad: IPv4 with a port. More colons: IPv6.
    if (colon !== -1 && colon === e.lastIndexOf(':') && e.includes('.')) {
      if (!/^\d{1,5}$/.test(e.slice(colon + 1))) return null;
      e = e.slice(0, colon);
    }
  }
  if (e.includes('%')) return null;
  return parseAddress(e);
}

/**
 * The client behind `hops` trusted proxies (Envoy's xff_num_trusted_hops): the entry `hops`
 * positions from the right of the X-Forwarded-For chain (`xff`: all the request's
 * X-Forwarded-For lines joined with ','), the leftmost when the chain is shorter. null when
 * there is no chain or that entry is not an address: the caller keeps the peer address.
 * Walks back from the right without splitting the header.
 */
export function forwardedClient(xff: string, hops: number): Uint8Array | null {
  if (hops <= 0 || xff.length === 0) return null;
  // [start, end) is the entry k positions from the right; start 0 = the leftmost entry.
  let end = xff.length;
  let start = xff.lastIndexOf(',', end - 1) + 1;
  for (let k = 1; k < hops && start > 0; k++) {
    end = start - 1;
    start = end === 0 ? 0 : xff.lastIndexOf(',', end - 1) + 1;
  }
  return parseForwardedEntry(xff.slice(start, end));
}

/**
 * Replaces the peer by the client behind `proxy.trustedHops` trusted proxies. Only in the
 * pipeline when trustedHops > 0; first in `accept`, so the listener's ACL judges the client.
 */
export class ClientAddressPhase implements ProxyPhases<RequestCtx> {
  private readonly hops: number;

  constructor(cfg: SluiceConfig) {
    this.hops = cfg.proxy.trustedHops;
  }

  get active(): boolean {
    return this.hops > 0;
  }

  accept(s: Session, ctx: RequestCtx): boolean {
    const xff = ctx.forwardedFor;
    if (xff === '') return true;
    const fwd = forwardedClient(xff, this.hops);
    if (fwd !== null) {
      s.clientAddress = formatAddressBytes(fwd);
      ctx.clientBytes = fwd;
    }
    return true;
  }
}
