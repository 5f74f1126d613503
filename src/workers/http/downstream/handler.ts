/**
 * The uWS handler of a listener: reads the request head uWS parsed (request-head.ts) and the
 * connection's peer (client-address.ts, the PROXY protocol, the listener front), makes the
 * request's ProxyCall and runs its pipeline. Limits, the client address behind trusted
 * proxies and everything after are phases (phases/index.ts).
 *
 * Must never: touch `req` after it returns (uWS invalidates it), or answer a request itself
 * except one that reached a front listener without passing the front.
 */
import type { HttpRequest, HttpResponse } from 'uWebSockets.js';
import { formatAddressBytes, toAddress16 } from '../../../shared/cidr';
import { sluiceError, statusLine, type ErrorCode } from '../../../shared/errors';
import { loadNative } from '../../../shared/native';
import { BodyMode, ProxyCall } from '../call';
import type { FrontPeers, ListenerKind, ProxyEnv } from '../context';
import { acceptPeersAvailable, PeerReader } from './client-address';
import { requestReader } from './request-head';

const native = loadNative();


/** Formats uWS's binary remote address (4 or 16 bytes); IPv4-mapped IPv6 becomes dotted IPv4. */
export function formatAddress(ab: ArrayBuffer): string {
  return formatAddressBytes(new Uint8Array(ab));
}

/**
 * The last client address seen, as 16 bytes and as text: consecutive requests mostly come
 * from the same address (keep-alive, a few load balancers in front), so they share one
 * Uint8Array and one string instead of making both per request. Nothing may modify `bytes`.
 */
export class LastPeer {
  bytes: Uint8Array | null = null;
  text = '';

  /** Same address as `raw` (4 or 16 bytes as uWS gives it)? */
  is(raw: Uint8Array): boolean {
    const b = this.bytes;
    if (b === null) return false;
    if (raw.length === 16) {
      for (let i = 0; i < 16; i++) if (raw[i] !== b[i]) return false;
      return true;
    }
    if (raw.length !== 4 || b[10] !== 0xff || b[11] !== 0xff || b[0] !== 0 || b[9] !== 0) return false;
    for (let i = 1; i < 9; i++) if (b[i] !== 0) return false;
    return raw[0] === b[12] && raw[1] === b[13] && raw[2] === b[14] && raw[3] === b[15];
  }

  /** Remembers `raw` (16 bytes, IPv4 mapped); null when uWS gave no address. */
  set(raw: Uint8Array): Uint8Array | null {
    const b = toAddress16(raw);
    if (b === null) return null;
    // A copy: uWS's ArrayBuffer is the caller's, and `bytes` outlives this request.
    this.bytes = b === raw ? Uint8Array.from(raw) : b;
    this.text = formatAddressBytes(this.bytes);
    return this.bytes;
  }
}
const lastPeer = new LastPeer();

/**
 * The Host header without its port, lower case (`[::1]:80` → `[::1]`, `Api.Example:8080` →
 * `api.example`). The last one is remembered: consecutive requests mostly name the same host.
 */
export function hostNameOf(host: string): string {
  if (host === lastHost) return lastHostName;
  let name = host;
  for (let i = host.length - 1; i >= 0; i--) {
    const c = host.charCodeAt(i);
    if (c === 0x3a /* : */) {
      name = host.slice(0, i);
      break;
    }
    if (c === 0x5d /* ] */) break;
  }
  lastHost = host;
  lastHostName = name.toLowerCase();
  return lastHostName;
}
let lastHost = '';
let lastHostName = '';

/** Answers before a ProxyCall exists (a connection that bypassed the listener front); the request body, if any, is not read. */
function reject(res: HttpResponse, code: ErrorCode, detail: string): void {
  const e = sluiceError(code, detail);
  res
    .writeStatus(statusLine(e.status))
    .writeHeader('content-type', 'application/json')
    .writeHeader('x-sluice-error', code)
    .end(`{"error":"${code}","message":${JSON.stringify(e.message)}}\n`, true);
}

/**
 * The uWS handler of one listener (`listener` tells the phases which one: ACLs, PROXY
 * protocol); `front` when the listener runs through the listener front (src/workers/http/downstream/front.ts).
 */
export function makeHandler(getEnv: () => ProxyEnv, listener: ListenerKind = 'http', front?: FrontPeers): (res: HttpResponse, req: HttpRequest) => void {
  const peers = new PeerReader(front === undefined ? native.uwsPeerAddress : null, listener, front === undefined && acceptPeersAvailable());
  // The request head: the addon's one-call reading once checked, else uWS's functions (request-head.ts).
  const heads = requestReader(listener);
  return (res, req) => {
    const env = getEnv();
    // Valid until this handler returns: the worker's one scan object (LimitsPhase reads it in accept).
    const head = heads.read(req, env.log);
    const mode = head.chunked ? BodyMode.Chunked : head.contentLength > 0 ? BodyMode.Length : BodyMode.None;
    // The connection's peer: the socket's, or the PROXY v2 source when the listener takes it
    // (uWS parses v2 on every connection, so it is ignored unless configured: any client could
    // send one). Behind the listener front, the front says who the peer is (and its
    // certificate). ClientAddressPhase derives the client from it and X-Forwarded-For.
    let peerBytes: Uint8Array | null;
    let clientCert = '';
    if (front !== undefined) {
      const p = front.peer(res);
      if (p === undefined) {
        reject(res, 'SLUICE_ERR_FORBIDDEN', 'the connection did not come through the listener front');
        return;
      }
      peerBytes = p.address;
      clientCert = p.clientCert;
    } else {
      peerBytes = peers.read(res, env.log);
      const lc = listener === 'https' ? (env.config.tls ?? env.config.listen) : env.config.listen;
      if (lc.proxyProtocol === 'v2') {
        const pp = new Uint8Array(res.getProxiedRemoteAddress());
        if (pp.length !== 0) peerBytes = pp;
      }
      peerBytes = lastPeer.is(peerBytes) ? lastPeer.bytes : lastPeer.set(peerBytes);
    }
    const peer = peerBytes === null ? '' : peerBytes === lastPeer.bytes ? lastPeer.text : formatAddressBytes(peerBytes);
    const call = new ProxyCall(res, env, head, hostNameOf(head.host), peer, peerBytes, listener, mode);
    call.clientCert = clientCert;
    res.onAborted(() => call.onAborted());
    if (mode !== BodyMode.None) res.onData((ab, last) => call.onClientData(ab, last));
    call.run();
  };
}
