/**
 * The PROXY protocol parser (src/workers/http/downstream/proxy-protocol.ts) with the header forms of HAProxy's
 * spec, byte by byte, and the listener front's identity header value (clientCertValue) for
 * a certificate made by openssl.
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { describe, test } from 'node:test';
import { frontOf } from '../../src/shared/config';
import { formatAddressBytes } from '../../src/shared/cidr';
import { parseProxyHeader, PP1_MAX_LENGTH, proxyV2Header, type ProxyHeader } from '../../src/workers/http/downstream/proxy-protocol';
import { clientCertValue } from '../../src/workers/http/downstream/front';
import { proxyV2 } from '../raw-client';
import { clientCert, createCa, issueCert } from '../tls-helpers';

function ok(h: ProxyHeader): { length: number; version: number; source: string | null } {
  assert.equal(h.kind, 'ok', JSON.stringify(h));
  if (h.kind !== 'ok') throw new Error('unreachable');
  return { length: h.length, version: h.version, source: h.source === null ? null : formatAddressBytes(h.source) };
}

function bad(h: ProxyHeader, reason: RegExp): void {
  assert.equal(h.kind, 'bad', JSON.stringify(h));
  if (h.kind === 'bad') assert.match(h.reason, reason);
}

const b = (s: string): Buffer => Buffer.from(s, 'latin1');

describe('PROXY v1', () => {
  test('TCP4, TCP6 and UNKNOWN lines; the length covers the CRLF and nothing after it', () => {
    const line = 'PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n';
    assert.deepEqual(ok(parseProxyHeader(b(`${line}GET / HTTP/1.1\r\n`), 'v1')), { length: line.length, version: 1, source: '192.0.2.1' });
    assert.deepEqual(ok(parseProxyHeader(b('PROXY TCP6 2001:DB8::1 ::1 1 2\r\n'), 'any')).source, '2001:db8::1');
    assert.deepEqual(ok(parseProxyHeader(b('PROXY UNKNOWN\r\n'), 'v1')), { length: 15, version: 1, source: null });
    assert.equal(ok(parseProxyHeader(b('PROXY UNKNOWN ffff::1 ::1 1 2\r\n'), 'v1')).source, null);
  });

  test('every prefix of a valid line asks for more, byte by byte', () => {
    const line = b('PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n');
    for (let n = 0; n < line.length; n++) assert.equal(parseProxyHeader(line.subarray(0, n), 'v1').kind, 'more', `after ${n} bytes`);
  });

  test('invalid lines are refused with a reason', () => {
    bad(parseProxyHeader(b('PROXY UDP4 1.2.3.4 1.2.3.4 1 2\r\n'), 'v1'), /not TCP4, TCP6 or UNKNOWN/);
    bad(parseProxyHeader(b('PROXY TCP4 1.2.3.4 1.2.3.4 1\r\n'), 'v1'), /is not "PROXY TCPx/);
    bad(parseProxyHeader(b('PROXY TCP4 1.2.3.4 1.2.3.4 1 65536\r\n'), 'v1'), /port "65536"/);
    bad(parseProxyHeader(b('PROXY TCP4 1.2.3.4 1.2.3.4 01 2\r\n'), 'v1'), /port "01"/);
    bad(parseProxyHeader(b('PROXY TCP4 ::1 1.2.3.4 1 2\r\n'), 'v1'), /are not IPv4/);
    bad(parseProxyHeader(b('PROXY TCP6 1.2.3.4 ::1 1 2\r\n'), 'v1'), /are not IPv6/);
    bad(parseProxyHeader(b(`PROXY TCP4 ${'9'.repeat(PP1_MAX_LENGTH)}`), 'v1'), /longer than 107/);
    bad(parseProxyHeader(b('GET / HTTP/1.1\r\n\r\n'), 'v1'), /does not start with a PROXY protocol v1 header/);
    bad(parseProxyHeader(proxyV2('192.0.2.1'), 'v1'), /v1 header/);
  });
});

describe('PROXY v2', () => {
  test('TCP over IPv4 and IPv6; LOCAL and UNSPEC carry no address; TLVs are skipped by the length', () => {
    const v4 = proxyV2('192.0.2.9');
    assert.deepEqual(ok(parseProxyHeader(Buffer.concat([v4, b('GET')]), 'v2')), { length: v4.length, version: 2, source: '192.0.2.9' });
    const v6 = proxyV2(Buffer.from('20010db8000000000000000000000007', 'hex'));
    assert.equal(ok(parseProxyHeader(v6, 'any')).source, '2001:db8::7');
    const local = Buffer.concat([v4.subarray(0, 12), Buffer.from([0x20, 0x00, 0, 0])]);
    assert.deepEqual(ok(parseProxyHeader(local, 'v2')), { length: 16, version: 2, source: null });
    const unspec = Buffer.concat([v4.subarray(0, 12), Buffer.from([0x21, 0x00, 0, 0])]);
    assert.equal(ok(parseProxyHeader(unspec, 'v2')).source, null);
    const tlv = Buffer.from([0x04, 0x00, 0x02, 0xab, 0xcd]);
    const withTlv = Buffer.concat([v4, tlv]);
    withTlv.writeUInt16BE(12 + tlv.length, 14);
    assert.deepEqual(ok(parseProxyHeader(withTlv, 'v2')), { length: v4.length + tlv.length, version: 2, source: '192.0.2.9' });
  });

  test('every prefix asks for more; bad version, command or a short address block is refused', () => {
    const v6 = proxyV2(Buffer.from('20010db8000000000000000000000007', 'hex'));
    for (let n = 0; n < v6.length; n++) assert.equal(parseProxyHeader(v6.subarray(0, n), 'v2').kind, 'more', `after ${n} bytes`);
    const v4 = proxyV2('192.0.2.9');
    const version1 = Buffer.from(v4);
    version1[12] = 0x11;
    bad(parseProxyHeader(version1, 'v2'), /version 1 is not 2/);
    const cmd = Buffer.from(v4);
    cmd[12] = 0x22;
    bad(parseProxyHeader(cmd, 'v2'), /command 2/);
    const short = Buffer.from(v4);
    short.writeUInt16BE(4, 14);
    bad(parseProxyHeader(short, 'v2'), /too short for TCP\/UDP over IPv4/);
    bad(parseProxyHeader(b('PROXY TCP4 1.2.3.4 1.2.3.4 1 2\r\n'), 'v2'), /does not start with a PROXY protocol v2 header/);
  });

  test("the front's own header round-trips its 16-byte ticket", () => {
    const ticket = Buffer.from('fd0000000112233445566778899aabbc', 'hex');
    const h = parseProxyHeader(proxyV2Header(ticket), 'v2');
    assert.equal(h.kind, 'ok');
    if (h.kind === 'ok') assert.deepEqual(Buffer.from(h.source as Uint8Array), ticket);
  });
});

describe('frontOf: which listeners run through the front', () => {
  test('off and v2 stay on uWS; v1 and any need the front; client certificates always do', () => {
    assert.equal(frontOf('off'), null);
    assert.equal(frontOf('v2'), null);
    assert.deepEqual(frontOf('v1'), { proxyProtocol: 'v1', clientAuth: null });
    assert.deepEqual(frontOf('any'), { proxyProtocol: 'any', clientAuth: null });
    assert.deepEqual(frontOf('off', { required: true }), { proxyProtocol: null, clientAuth: { required: true } });
    assert.deepEqual(frontOf('v2', { required: false }), { proxyProtocol: 'v2', clientAuth: { required: false } });
  });
});

describe('clientCertValue', () => {
  test('Hash, Subject (most specific first, escaped), then URI and DNS names, in the XFCC format', () => {
    const ca = createCa('XFCC test CA');
    const c = clientCert(ca, 'alice');
    const x = new X509Certificate(c.cert);
    const hash = x.fingerprint256.replace(/:/g, '').toLowerCase();
    assert.equal(clientCertValue(x), `Hash=${hash};Subject="CN=alice"`);
    const withSans = issueCert(ca, { cn: 'svc, "quoted"', dns: ['svc.example.com'], usage: 'client' });
    const y = new X509Certificate(withSans.cert);
    assert.equal(clientCertValue(y), `Hash=${y.fingerprint256.replace(/:/g, '').toLowerCase()};Subject="CN=svc\\\\, \\\\\\"quoted\\\\\\"";DNS=svc.example.com`);
  });
});
