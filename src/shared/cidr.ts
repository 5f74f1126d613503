/**
 * IPv4 and IPv6 addresses and CIDR blocks for ACLs: parsed once per config into 16-byte
 * forms (IPv4 as IPv4-mapped IPv6, so that `::ffff:10.0.0.1` from a dual-stack listener
 * matches a `10.0.0.0/8` rule), matched with a byte-wise prefix compare.
 *
 * Families follow nginx's allow/deny: an IPv4 client (or an IPv4-mapped IPv6 one) is matched
 * only by IPv4 rules (or rules written inside ::ffff:0:0/96), an IPv6 client only by IPv6
 * rules, so `deny ::/0` denies every IPv6 client and no IPv4 one.
 *
 * Leaf module: imports nothing from the workers; nothing here throws on client input.
 */
import type { AclRule } from './config/common';

export interface Cidr {
  /** 16 bytes; IPv4 blocks are stored as ::ffff:a.b.c.d. */
  readonly bytes: Uint8Array;
  /** Prefix length in bits over the 16 bytes (an IPv4 /8 is 96 + 8). */
  readonly bits: number;
  /** An IPv4 block (written as IPv4, or as an IPv6 block inside ::ffff:0:0/96): matches IPv4 clients only. */
  readonly v4: boolean;
}

function parseV4(text: string, out: Uint8Array, at: number): boolean {
  const parts = text.split('.');
  if (parts.length !== 4) return false;
  for (let i = 0; i < 4; i++) {
    const p = parts[i] as string;
    // Leading zeros are refused: inet_aton reads 010 as octal 8, others as decimal 10.
    if (!/^\d{1,3}$/.test(p) || (p.length > 1 && p[0] === '0')) return false;
    const n = Number(p);
    if (n > 255) return false;
    out[at + i] = n;
  }
  return true;
}

/** Whether 16 address bytes are IPv4-mapped IPv6 (::ffff:a.b.c.d), i.e. an IPv4 address. */
export function isV4Mapped(b: Uint8Array): boolean {
  for (let i = 0; i < 10; i++) if (b[i] !== 0) return false;
  return b[10] === 0xff && b[11] === 0xff;
}

/** Parses an IPv4 or IPv6 address (no prefix) into 16 bytes; null when invalid. */
export function parseAddress(text: string): Uint8Array | null {
  const out = new Uint8Array(16);
  if (!text.includes(':')) {
    if (!parseV4(text, out, 12)) return null;
    out[10] = 0xff;
    out[11] = 0xff;
    return out;
  }
  let s = text;
  const pct = s.indexOf('%'); // zone id (fe80::1%eth0): not part of the address
  if (pct !== -1) s = s.slice(0, pct);
  // An embedded IPv4 tail (::ffff:1.2.3.4) becomes two groups.
  const lastColon = s.lastIndexOf(':');
  const tail = s.slice(lastColon + 1);
  let v4Tail: Uint8Array | null = null;
  if (tail.includes('.')) {
    v4Tail = new Uint8Array(4);
    if (!parseV4(tail, v4Tail, 0)) return null;
    s = `${s.slice(0, lastColon + 1)}0:0`;
  }
  const halves = s.split('::');
  if (halves.length > 2) return null;
  const head = halves[0] === '' ? [] : (halves[0] as string).split(':');
  const rest = halves.length === 2 ? (halves[1] === '' ? [] : (halves[1] as string).split(':')) : null;
  // '::' stands for at least one zero group: at most 7 explicit groups around it.
  if (rest !== null && head.length + rest.length > 7) return null;
  const groups = rest === null ? head : [...head, ...new Array<string>(8 - head.length - rest.length).fill('0'), ...rest];
  if (groups.length !== 8) return null;
  for (let i = 0; i < 8; i++) {
    const g = groups[i] as string;
    if (!/^[0-9A-Fa-f]{1,4}$/.test(g)) return null;
    const n = parseInt(g, 16);
    out[2 * i] = n >> 8;
    out[2 * i + 1] = n & 0xff;
  }
  if (v4Tail !== null) out.set(v4Tail, 12);
  return out;
}

/**
 * Parses `address` or `address/prefix`; a string is the reason it is invalid, phrased to
 * follow an option path. Host bits below the prefix are ignored (10.1.2.3/8 = 10.0.0.0/8),
 * as nginx does.
 */
export function parseCidr(text: string): Cidr | string {
  const slash = text.indexOf('/');
  const addr = slash === -1 ? text : text.slice(0, slash);
  const what = `must be an IPv4 or IPv6 address with an optional /prefix (got ${JSON.stringify(text)}`;
  if (addr.includes('%')) return `${what}: zone ids are not supported)`;
  const bytes = parseAddress(addr);
  const v4 = !addr.includes(':');
  if (bytes === null) return `${what}: not an address)`;
  const max = v4 ? 32 : 128;
  let prefix = max;
  if (slash !== -1) {
    const p = text.slice(slash + 1);
    if (!/^\d{1,3}$/.test(p)) return `${what}: bad prefix)`;
    prefix = Number(p);
    if (prefix > max) return `${what}: prefix over ${max})`;
  }
  const bits = v4 ? 96 + prefix : prefix;
  return { bytes, bits, v4: bits >= 96 && isV4Mapped(bytes) };
}

/** Whether `addr` (16 bytes) is inside `c`; an IPv4 address is never inside an IPv6 block. */
export function cidrContains(c: Cidr, addr: Uint8Array): boolean {
  // An IPv4 block's first 96 bits already pin the mapped prefix; an IPv6 block shorter than
  // that (::/0, ::/8) would otherwise swallow every IPv4 client.
  if (!c.v4 && c.bits < 96 && isV4Mapped(addr)) return false;
  const full = c.bits >> 3;
  for (let i = 0; i < full; i++) if (c.bytes[i] !== addr[i]) return false;
  const rem = c.bits & 7;
  if (rem === 0) return true;
  const mask = (0xff << (8 - rem)) & 0xff;
  return ((c.bytes[full] as number) & mask) === ((addr[full] as number) & mask);
}

/** A compiled ACL, for callers that already hold the client address as 16 bytes. */
export interface CompiledAcl {
  readonly size: number;
  /** First match wins, no match = allowed. `null` (no usable address) is denied when any rule denies. */
  allows(addr: Uint8Array | null): boolean;
}

/** Compiles ACL rules (already validated by the config's semantic checks; throws otherwise). */
export function compileAclRules(rules: readonly AclRule[]): CompiledAcl {
  const compiled = rules.map((r) => {
    const c = parseCidr(r.allow ?? r.deny ?? '');
    if (typeof c === 'string') throw new Error(`invalid ACL rule: ${c}`);
    return { allow: r.allow !== undefined, c };
  });
  const anyDeny = compiled.some((r) => !r.allow);
  return {
    size: compiled.length,
    allows(a: Uint8Array | null): boolean {
      if (a === null) return !anyDeny;
      for (const r of compiled) if (cidrContains(r.c, a)) return r.allow;
      return true;
    },
  };
}

/**
 * An ACL: rules in order, the first match wins, no match = allowed (nginx's allow/deny).
 * Returns a predicate on the client's address text; an address that cannot be parsed is
 * denied when the list has any deny rule (fail closed), else allowed.
 */
export function compileAcl(rules: readonly AclRule[]): (address: string) => boolean {
  const acl = compileAclRules(rules);
  return (address: string): boolean => acl.allows(parseAddress(address));
}

/**
 * 16 address bytes as text: IPv4-mapped as dotted IPv4, other IPv6 per RFC 5952 (lower
 * case, the longest run of two or more zero groups compressed, the first on a tie).
 */
export function formatAddressBytes(b: Uint8Array): string {
  if (b.length === 4) return `${b[0]}.${b[1]}.${b[2]}.${b[3]}`;
  if (b.length !== 16) return '';
  if (isV4Mapped(b)) return `${b[12]}.${b[13]}.${b[14]}.${b[15]}`;
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((b[i] as number) << 8) | (b[i + 1] as number));
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart === -1) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLen).join(':')}`;
}

/** uWS's binary address (4 or 16 bytes) as 16 bytes (IPv4 mapped); null for any other length. */
export function toAddress16(b: Uint8Array): Uint8Array | null {
  if (b.length === 16) return b;
  if (b.length !== 4) return null;
  const out = new Uint8Array(16);
  out[10] = 0xff;
  out[11] = 0xff;
  out.set(b, 12);
  return out;
}
