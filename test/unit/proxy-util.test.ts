/**
 * formatAddress (src/workers/http/call.ts): the client address uWS hands over as raw bytes,
 * turned into the text used in X-Forwarded-For and logs (dotted IPv4, RFC 5952 IPv6).
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { isResponseHopBytes } from '../../src/shared/native';
import { formatAddress, hostNameOf, LastPeer } from '../../src/workers/http/downstream/handler';
import { isRequestHop, isResponseHop } from '../../src/workers/http/upstream/http1';

function ab(bytes: readonly number[]): ArrayBuffer {
  return new Uint8Array(bytes).buffer;
}

/** 16 address bytes from eight 16-bit groups. */
function v6(groups: readonly number[]): ArrayBuffer {
  assert.equal(groups.length, 8);
  return ab(groups.flatMap((g) => [g >> 8, g & 0xff]));
}

/** Deterministic uniform draws in [0, 1) (32-bit LCG). */
function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

describe('formatAddress: IPv4', () => {
  test('4-byte addresses are dotted decimal', () => {
    assert.equal(formatAddress(ab([127, 0, 0, 1])), '127.0.0.1');
    assert.equal(formatAddress(ab([0, 0, 0, 0])), '0.0.0.0');
    assert.equal(formatAddress(ab([255, 255, 255, 255])), '255.255.255.255');
    assert.equal(formatAddress(ab([10, 1, 20, 200])), '10.1.20.200');
  });

  test('IPv4-mapped IPv6 is shown dotted', () => {
    assert.equal(formatAddress(ab([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 168, 1, 2])), '192.168.1.2');
    assert.equal(formatAddress(ab([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 0, 1])), '127.0.0.1');
    assert.equal(formatAddress(ab([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 0, 0])), '0.0.0.0');
  });

  test('almost-mapped addresses stay IPv6', () => {
    // ::fffe:c0a8:102 and 1::ffff:c0a8:102 are not IPv4-mapped
    assert.equal(formatAddress(ab([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xfe, 192, 168, 1, 2])), '::fffe:c0a8:102');
    assert.equal(formatAddress(ab([0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 168, 1, 2])), '1::ffff:c0a8:102');
    assert.equal(formatAddress(ab([0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0xff, 192, 168, 1, 2])), '::1:ffff:c0a8:102');
  });
});

describe('formatAddress: IPv6 (RFC 5952)', () => {
  const cases: [number[], string][] = [
    [[0, 0, 0, 0, 0, 0, 0, 1], '::1'],
    [[0, 0, 0, 0, 0, 0, 0, 0], '::'],
    [[1, 0, 0, 0, 0, 0, 0, 0], '1::'],
    [[0x2001, 0xdb8, 0, 0, 0, 0, 0, 1], '2001:db8::1'],
    [[0x2001, 0xdb8, 0x85a3, 0x1234, 0x5678, 0x8a2e, 0x370, 0x7334], '2001:db8:85a3:1234:5678:8a2e:370:7334'],
    [[0xfe80, 0, 0, 0, 0x1ff, 0xfe23, 0x4567, 0x890a], 'fe80::1ff:fe23:4567:890a'],
    // lower case, no leading zeros
    [[0xabcd, 0xef01, 0x0a, 0x00b0, 0x0c00, 0xd, 0xffff, 0x1], 'abcd:ef01:a:b0:c00:d:ffff:1'],
    // a single zero group is not compressed
    [[0x2001, 0xdb8, 0, 1, 1, 1, 1, 1], '2001:db8:0:1:1:1:1:1'],
    [[0, 1, 2, 3, 4, 5, 6, 7], '0:1:2:3:4:5:6:7'],
    [[1, 2, 3, 4, 5, 6, 7, 0], '1:2:3:4:5:6:7:0'],
    [[1, 0, 2, 0, 3, 0, 4, 0], '1:0:2:0:3:0:4:0'],
    // the longest run is compressed
    [[0x2001, 0, 0, 1, 0, 0, 0, 1], '2001:0:0:1::1'],
    [[0x2001, 0, 0, 0, 1, 0, 0, 1], '2001::1:0:0:1'],
    [[0, 0, 1, 0, 0, 0, 1, 0], '0:0:1::1:0'],
    // the first of equal runs is compressed
    [[0x2001, 0xdb8, 0, 0, 1, 0, 0, 1], '2001:db8::1:0:0:1'],
    [[0, 0, 1, 1, 1, 1, 0, 0], '::1:1:1:1:0:0'],
    [[1, 0, 0, 1, 1, 0, 0, 1], '1::1:1:0:0:1'],
    // runs at either end
    [[0, 0, 0, 1, 2, 3, 4, 5], '::1:2:3:4:5'],
    [[1, 2, 3, 4, 5, 0, 0, 0], '1:2:3:4:5::'],
    [[1, 0, 0, 0, 0, 0, 0, 1], '1::1'],
    [[0, 0, 0, 0, 0, 0, 0x0102, 0x0304], '::102:304'],
  ];
  for (const [groups, want] of cases) {
    test(`${groups.map((g) => g.toString(16)).join(':')} → ${want}`, () => {
      assert.equal(formatAddress(v6(groups)), want);
    });
  }

  test('agrees with the WHATWG URL serializer on seeded random addresses', () => {
    const rnd = lcg(20240601);
    let compared = 0;
    for (let k = 0; k < 3000; k++) {
      const groups = Array.from({ length: 8 }, () => {
        const r = rnd();
        if (r < 0.55) return 0;
        if (r < 0.7) return Math.floor(rnd() * 16);
        return Math.floor(rnd() * 0x10000);
      });
      const mapped = groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff;
      if (mapped) continue;
      const want = new URL(`http://[${groups.map((g) => g.toString(16)).join(':')}]/`).hostname.slice(1, -1);
      assert.equal(formatAddress(v6(groups)), want, groups.join(','));
      compared++;
    }
    assert.ok(compared > 2900);
  });
});

describe('formatAddress: other lengths', () => {
  test('anything but 4 or 16 bytes is empty', () => {
    for (const n of [0, 1, 3, 5, 8, 15, 17, 32]) assert.equal(formatAddress(new ArrayBuffer(n)), '', `${n} bytes`);
  });
});

describe('LastPeer: one address remembered across requests', () => {
  const v4 = [127, 0, 0, 1];
  const mapped = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 0, 1];
  const v6 = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];

  test('an IPv4 address and its mapped form are the same peer; the text is made once', () => {
    const p = new LastPeer();
    assert.equal(p.is(new Uint8Array(v4)), false);
    const raw = new Uint8Array(mapped);
    const b = p.set(raw);
    assert.deepEqual(b, new Uint8Array(mapped));
    assert.notEqual(b, raw, 'a copy: the bytes of the caller are not kept');
    raw[15] = 9;
    assert.equal(p.text, '127.0.0.1');
    assert.equal(p.is(new Uint8Array(v4)), true);
    assert.equal(p.is(new Uint8Array(mapped)), true);
    assert.equal(p.is(new Uint8Array([127, 0, 0, 2])), false);
    assert.equal(p.is(new Uint8Array(v6)), false);
  });

  test('a 4-byte address is stored mapped; other addresses replace it', () => {
    const p = new LastPeer();
    assert.deepEqual(p.set(new Uint8Array([10, 1, 2, 3])), new Uint8Array([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 1, 2, 3]));
    assert.equal(p.text, '10.1.2.3');
    p.set(new Uint8Array(v6));
    assert.equal(p.text, '2001:db8::1');
    assert.equal(p.is(new Uint8Array(v6)), true);
    assert.equal(p.is(new Uint8Array([10, 1, 2, 3])), false);
    // An IPv6 address that only looks mapped in its last bytes is not the IPv4 one.
    const almost = [...v6.slice(0, 10), 0xff, 0xff, 10, 1, 2, 3];
    p.set(new Uint8Array(almost));
    assert.equal(p.is(new Uint8Array([10, 1, 2, 3])), false);
    assert.equal(p.set(new Uint8Array([1, 2])), null, 'no address');
  });
});

describe('hop-by-hop header names', () => {
  const request = ['connection', 'keep-alive', 'proxy-connection', 'te', 'transfer-encoding', 'upgrade', 'expect', 'trailer', 'http2-settings'];
  const response = ['connection', 'keep-alive', 'proxy-connection', 'te', 'transfer-encoding', 'upgrade', 'trailer', 'content-length', 'date'];
  // Names of the same lengths that must pass, and near misses.
  const others = ['ab', 'accept', 'x-twelv', 'x-custom-1', 'content-encoding', 'content-type', 'x-http2-settings', 'tE', 'Connection', 'dates', 'expects', 'host', 'via', ''];

  test('exactly the request list is dropped', () => {
    for (const n of request) assert.equal(isRequestHop(n), true, n);
    for (const n of [...others, 'content-length', 'date']) assert.equal(isRequestHop(n), false, n);
  });

  test('exactly the response list is dropped', () => {
    for (const n of response) assert.equal(isResponseHop(n), true, n);
    for (const n of [...others, 'expect', 'http2-settings']) assert.equal(isResponseHop(n), false, n);
  });

  test('the bytes twin (compactResponseHead, NativeHead) drops the same response names, in any case', () => {
    for (const n of [...response, ...others, 'expect', 'http2-settings']) {
      for (const v of [n, n.toUpperCase()]) {
        const b = Buffer.from(`x${v}`, 'latin1');
        assert.equal(isResponseHopBytes(b, 1, b.length), isResponseHop(n.toLowerCase()), v);
      }
    }
  });
});

describe('hostNameOf: the Host header without its port', () => {
  test('ports, IPv6 literals, case, and the remembered last host', () => {
    const cases: [string, string][] = [
      ['example.com', 'example.com'],
      ['Example.COM:8080', 'example.com'],
      ['127.0.0.1:18080', '127.0.0.1'],
      ['[::1]', '[::1]'],
      ['[::1]:80', '[::1]'],
      ['[2001:DB8::1]', '[2001:db8::1]'],
      ['host:', 'host'],
      ['', ''],
      ['Example.COM:8080', 'example.com'],
      ['example.com', 'example.com'],
    ];
    for (const [host, want] of cases) {
      assert.equal(hostNameOf(host), want, host);
      assert.equal(hostNameOf(host), want, `${host} (remembered)`);
    }
  });
});
