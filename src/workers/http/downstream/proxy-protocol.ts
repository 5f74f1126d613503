/**
 * The PROXY protocol (HAProxy's spec, "The PROXY protocol", versions 1 and 2): the header a
 * load balancer sends before the client's bytes to say whom it accepted the connection from.
 * Parsed by the listener front (src/workers/http/downstream/front.ts) once, at the start of a connection;
 * written by it (v2) to hand each connection to the worker's internal uWS listener.
 *
 * Must never: read past the header (the caller passes the rest on), or accept a header the
 * spec calls invalid (a v1 line over 107 bytes, a v2 version other than 2, a truncated
 * address block).
 */
import { parseAddress } from '../../../shared/cidr';

/** Which versions a listener accepts. */
export type ProxyProtocolMode = 'v1' | 'v2' | 'any';

export type ProxyHeader =
  /** The bytes so far are a valid beginning: read more. */
  | { readonly kind: 'more' }
  | { readonly kind: 'bad'; readonly reason: string }
  /**
   * A complete header of `length` bytes. `source`: the client's address (16 bytes, IPv4
   * mapped), or null when the header carries none (v1 UNKNOWN, v2 LOCAL or UNSPEC: the
   * balancer's own connection, e.g. a health check), in which case the peer is the client.
   */
  | { readonly kind: 'ok'; readonly length: number; readonly version: 1 | 2; readonly source: Uint8Array | null };

/** The 12-byte v2 signature. */
export const PP2_SIGNATURE: Buffer = Buffer.from('0d0a0d0a000d0a515549540a', 'hex');
/** The longest v1 line, CRLF included (spec §2.1). */
export const PP1_MAX_LENGTH = 107;
const PP1_PREFIX = Buffer.from('PROXY ', 'latin1');
const MORE: ProxyHeader = Object.freeze({ kind: 'more' });

function bad(reason: string): ProxyHeader {
  return { kind: 'bad', reason };
}

/** Whether `buf` (possibly short) could still be the start of `sig`. */
function startsLike(buf: Buffer, sig: Buffer): boolean {
  const n = Math.min(buf.length, sig.length);
  return buf.subarray(0, n).equals(sig.subarray(0, n));
}

/** Parses the header at the start of `buf` for a listener accepting `mode`. */
export function parseProxyHeader(buf: Buffer, mode: ProxyProtocolMode): ProxyHeader {
  if (buf.length === 0) return MORE;
  const v2 = mode !== 'v1' && startsLike(buf, PP2_SIGNATURE);
  const v1 = mode !== 'v2' && startsLike(buf, PP1_PREFIX);
  if (v2) return buf.length < 16 ? MORE : parseV2(buf);
  if (v1) return buf.length < PP1_PREFIX.length ? MORE : parseV1(buf);
  return bad(`the connection does not start with a PROXY protocol ${mode === 'any' ? 'v1 or v2' : mode} header`);
}

function parseV1(buf: Buffer): ProxyHeader {
  const end = buf.indexOf('\r\n', 0, 'latin1');
  if (end === -1) return buf.length >= PP1_MAX_LENGTH ? bad(`v1 header longer than ${PP1_MAX_LENGTH} bytes`) : MORE;
  const length = end + 2;
  if (length > PP1_MAX_LENGTH) return bad(`v1 header longer than ${PP1_MAX_LENGTH} bytes`);
  const parts = buf.toString('latin1', PP1_PREFIX.length, end).split(' ');
  const proto = parts[0];
  // "PROXY UNKNOWN" may be followed by anything, which the receiver ignores (spec §2.1).
  if (proto === 'UNKNOWN') return { kind: 'ok', length, version: 1, source: null };
  if (proto !== 'TCP4' && proto !== 'TCP6') return bad(`v1 protocol ${JSON.stringify(proto)} is not TCP4, TCP6 or UNKNOWN`);
  if (parts.length !== 5) return bad('v1 header is not "PROXY TCPx <src> <dst> <sport> <dport>"');
  const [, src, dst, sport, dport] = parts as [string, string, string, string, string];
  for (const p of [sport, dport]) if (!/^(0|[1-9]\d{0,4})$/.test(p) || Number(p) > 65535) return bad(`v1 port ${JSON.stringify(p)} is not 0-65535`);
  const want4 = proto === 'TCP4';
  const addrs = [src, dst].map((a) => ((a.includes(':') ? !want4 : want4) ? parseAddress(a) : null));
  if (addrs[0] == null || addrs[1] == null) return bad(`v1 addresses ${JSON.stringify(`${src} ${dst}`)} are not ${want4 ? 'IPv4' : 'IPv6'}`);
  return { kind: 'ok', length, version: 1, source: addrs[0] };
}

function parseV2(buf: Buffer): ProxyHeader {
  const verCmd = buf[12] as number;
  if (verCmd >> 4 !== 2) return bad(`v2 version ${verCmd >> 4} is not 2`);
  const cmd = verCmd & 0x0f;
  if (cmd > 1) return bad(`v2 command ${cmd} is neither LOCAL nor PROXY`);
  const famProto = buf[13] as number;
  const length = 16 + buf.readUInt16BE(14);
  if (buf.length < length) return MORE;
  // LOCAL: the balancer speaking for itself; the address block, if any, is skipped.
  if (cmd === 0) return { kind: 'ok', length, version: 2, source: null };
  const family = famProto >> 4;
  if (family === 1) {
    if (length < 16 + 12) return bad('v2 address block too short for TCP/UDP over IPv4');
    const source = new Uint8Array(16);
    source[10] = 0xff;
    source[11] = 0xff;
    source.set(buf.subarray(16, 20), 12);
    return { kind: 'ok', length, version: 2, source };
  }
  if (family === 2) {
    if (length < 16 + 36) return bad('v2 address block too short for TCP/UDP over IPv6');
    return { kind: 'ok', length, version: 2, source: new Uint8Array(buf.subarray(16, 32)) };
  }
  // UNSPEC or AF_UNIX: no address Sluice could use; the peer stands for the client (spec §2.2).
  return { kind: 'ok', length, version: 2, source: null };
}

/**
 * A v2 PROXY header for TCP over IPv6 with `source` (16 bytes) as the source address and
 * zero destination and ports: the front's hand-over to the internal uWS listener.
 */
export function proxyV2Header(source: Uint8Array): Buffer {
  const b = Buffer.alloc(16 + 36);
  PP2_SIGNATURE.copy(b, 0);
  b[12] = 0x21; // version 2, PROXY
  b[13] = 0x21; // AF_INET6, STREAM
  b.writeUInt16BE(36, 14);
  b.set(source, 16);
  return b;
}
