/**
 * Addresses, CIDR blocks and ACLs (src/shared/cidr.ts), and the X-Forwarded-For client
 * derivation (src/workers/http/phases/acl.ts): every textual IPv6 form, IPv4-mapped clients against IPv4
 * rules, prefix bounds, and the reasons given for bad input.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  cidrContains,
  compileAcl,
  compileAclRules,
  formatAddressBytes,
  isV4Mapped,
  parseAddress,
  parseCidr,
  toAddress16,
  type Cidr,
} from '../../src/shared/cidr';
import { forwardedClient, parseForwardedEntry } from '../../src/workers/http/phases/client-address';

function hex(b: Uint8Array | null): string {
  return b === null ? 'null' : Buffer.from(b).toString('hex');
}

function cidr(text: string): Cidr {
  const c = parseCidr(text);
  assert.ok(typeof c !== 'string', `${text}: ${String(c)}`);
  return c;
}

function inside(block: string, address: string): boolean {
  const a = parseAddress(address);
  assert.ok(a !== null, address);
  return cidrContains(cidr(block), a);
}

describe('parseAddress: IPv4', () => {
  test('dotted quads become IPv4-mapped IPv6', () => {
    assert.equal(hex(parseAddress('127.0.0.1')), '00000000000000000000ffff7f000001');
    assert.equal(hex(parseAddress('0.0.0.0')), '00000000000000000000ffff00000000');
    assert.equal(hex(parseAddress('255.255.255.255')), '00000000000000000000ffffffffffff');
  });

  test('refuses what is not a dotted quad', () => {
    for (const bad of ['', '1.2.3', '1.2.3.4.5', '256.1.1.1', '1.2.3.-1', '01.2.3.4', '1.2.3.04', '1..3.4', 'a.b.c.d', '1.2.3.4 ', ' 1.2.3.4', '1.2.3.4/8', '0x7f.0.0.1', '1234.1.1.1']) {
      assert.equal(parseAddress(bad), null, JSON.stringify(bad));
    }
  });
});

describe('parseAddress: IPv6', () => {
  const cases: [string, string][] = [
    ['::', '00000000000000000000000000000000'],
    ['::1', '00000000000000000000000000000001'],
    ['1::', '00010000000000000000000000000000'],
    ['2001:db8::1', '20010db8000000000000000000000001'],
    ['2001:DB8::A', '20010db800000000000000000000000a'],
    ['2001:0db8:0000:0000:0000:0000:0000:0001', '20010db8000000000000000000000001'],
    ['1:2:3:4:5:6:7:8', '00010002000300040005000600070008'],
    ['1:2:3:4:5:6:7::', '00010002000300040005000600070000'],
    ['::2:3:4:5:6:7:8', '00000002000300040005000600070008'],
    ['fe80::1%eth0', 'fe800000000000000000000000000001'],
    // embedded IPv4
    ['::ffff:1.2.3.4', '00000000000000000000ffff01020304'],
    ['::FFFF:127.0.0.1', '00000000000000000000ffff7f000001'],
    ['::1.2.3.4', '00000000000000000000000001020304'],
    ['64:ff9b::192.0.2.33', '0064ff9b0000000000000000c0000221'],
    ['1:2:3:4:5:6:1.2.3.4', '00010002000300040005000601020304'],
    // uWS's own text form of an IPv4 client on a dual-stack listener
    ['0000:0000:0000:0000:0000:ffff:7f00:0001', '00000000000000000000ffff7f000001'],
  ];
  for (const [text, want] of cases) {
    test(text, () => assert.equal(hex(parseAddress(text)), want));
  }

  test('refuses malformed forms', () => {
    for (const bad of [
      ':',
      ':::',
      '1::2::3',
      '1:2:3:4:5:6:7:8:9',
      '1:2:3:4:5:6:7',
      '1:2:3:4:5:6:7:8::',
      '::1:2:3:4:5:6:7:8',
      // more groups than fit around '::' once counted (must not throw)
      '1:2:3:4:5:6:7:8:9::1',
      '1:2:3:4:5:6:7:8:9:10::',
      ':1:2:3:4:5:6:7',
      '1:2:3:4:5:6:7:',
      '12345::',
      'g::1',
      '::ffff:1.2.3',
      '::ffff:256.0.0.1',
      '1.2.3.4::',
      '1:2:3:4:5:6:7:1.2.3.4',
      '::1.2.3.4:5',
      '[::1]',
    ]) {
      assert.equal(parseAddress(bad), null, JSON.stringify(bad));
    }
  });

  test('round trip through formatAddressBytes (RFC 5952 text)', () => {
    for (const [text, canon] of [
      ['2001:0DB8:0:0:0:0:0:1', '2001:db8::1'],
      ['::ffff:10.1.2.3', '10.1.2.3'],
      ['10.1.2.3', '10.1.2.3'],
      ['::', '::'],
      ['::1.2.3.4', '::102:304'],
      ['1:0:0:2:0:0:0:3', '1:0:0:2::3'],
    ] as const) {
      const b = parseAddress(text);
      assert.ok(b !== null);
      assert.equal(formatAddressBytes(b), canon, text);
    }
  });
});

describe('parseCidr', () => {
  test('prefix bounds: 0, 32 and 128 are valid; over is refused with the reason', () => {
    assert.equal(cidr('0.0.0.0/0').bits, 96);
    assert.equal(cidr('10.0.0.1/32').bits, 128);
    assert.equal(cidr('10.0.0.1').bits, 128);
    assert.equal(cidr('::/0').bits, 0);
    assert.equal(cidr('::1/128').bits, 128);
    assert.equal(cidr('::1').bits, 128);
    assert.equal(parseCidr('10.0.0.0/33'), 'must be an IPv4 or IPv6 address with an optional /prefix (got "10.0.0.0/33": prefix over 32)');
    assert.equal(parseCidr('::/129'), 'must be an IPv4 or IPv6 address with an optional /prefix (got "::/129": prefix over 128)');
  });

  test('bad inputs name the reason', () => {
    const reason = (t: string): string => {
      const r = parseCidr(t);
      assert.equal(typeof r, 'string', t);
      return r as string;
    };
    assert.match(reason('10.0.0.0/'), /: bad prefix\)$/);
    assert.match(reason('10.0.0.0/-1'), /: bad prefix\)$/);
    assert.match(reason('10.0.0.0/8/8'), /: bad prefix\)$/);
    assert.match(reason('10.0.0.0/1000'), /: bad prefix\)$/);
    assert.match(reason('10.0.0.0/ 8'), /: bad prefix\)$/);
    assert.match(reason('10.0.0/8'), /: not an address\)$/);
    assert.match(reason('/8'), /: not an address\)$/);
    assert.match(reason(''), /: not an address\)$/);
    assert.match(reason('1::2::3/64'), /: not an address\)$/);
    assert.match(reason('fe80::1%eth0/64'), /: zone ids are not supported\)$/);
    assert.match(reason('localhost'), /^must be an IPv4 or IPv6 address with an optional \/prefix \(got "localhost": not an address\)$/);
  });

  test('IPv4 rules are IPv4 blocks, also when written inside ::ffff:0:0/96', () => {
    assert.equal(cidr('10.0.0.0/8').v4, true);
    assert.equal(cidr('::ffff:10.0.0.0/104').v4, true);
    assert.equal(cidr('::ffff:0:0/96').v4, true);
    assert.equal(cidr('::/0').v4, false);
    assert.equal(cidr('::/95').v4, false);
    assert.equal(cidr('2001:db8::/32').v4, false);
  });
});

describe('cidrContains', () => {
  test('IPv4 prefixes, including ones that end inside a byte', () => {
    assert.equal(inside('10.0.0.0/8', '10.255.1.2'), true);
    assert.equal(inside('10.0.0.0/8', '11.0.0.0'), false);
    assert.equal(inside('192.168.0.0/23', '192.168.1.255'), true);
    assert.equal(inside('192.168.0.0/23', '192.168.2.0'), false);
    assert.equal(inside('172.16.0.0/12', '172.31.255.255'), true);
    assert.equal(inside('172.16.0.0/12', '172.32.0.0'), false);
    assert.equal(inside('10.1.2.3/32', '10.1.2.3'), true);
    assert.equal(inside('10.1.2.3/32', '10.1.2.4'), false);
    assert.equal(inside('0.0.0.0/0', '203.0.113.9'), true);
    // host bits under the prefix are ignored (nginx does the same)
    assert.equal(inside('10.1.2.3/8', '10.200.0.1'), true);
  });

  test('IPv6 prefixes', () => {
    assert.equal(inside('2001:db8::/32', '2001:db8:ffff::1'), true);
    assert.equal(inside('2001:db8::/32', '2001:db9::1'), false);
    assert.equal(inside('fe80::/10', 'febf::1'), true);
    assert.equal(inside('fe80::/10', 'fec0::1'), false);
    assert.equal(inside('::1/128', '::1'), true);
    assert.equal(inside('::1', '::2'), false);
    assert.equal(inside('::/0', '2001:db8::1'), true);
  });

  test('an IPv4-mapped client matches IPv4 rules', () => {
    assert.equal(inside('127.0.0.0/8', '::ffff:127.0.0.1'), true);
    assert.equal(inside('127.0.0.1', '0000:0000:0000:0000:0000:ffff:7f00:0001'), true);
    assert.equal(inside('10.0.0.0/8', '::ffff:11.0.0.1'), false);
    assert.equal(inside('::ffff:10.0.0.0/104', '10.9.9.9'), true);
  });

  test('families stay apart: IPv6 rules never match IPv4 clients, IPv4 rules never IPv6 ones', () => {
    assert.equal(inside('::/0', '127.0.0.1'), false);
    assert.equal(inside('::/0', '::ffff:127.0.0.1'), false);
    assert.equal(inside('::/8', '10.0.0.1'), false);
    assert.equal(inside('0.0.0.0/0', '::1'), false);
    assert.equal(inside('0.0.0.0/0', '2001:db8::1'), false);
    // ::1.2.3.4 (IPv4-compatible, deprecated) is an IPv6 address
    assert.equal(inside('1.2.3.4', '::1.2.3.4'), false);
  });
});

describe('compileAcl: first match wins, no match = allowed', () => {
  test('order decides', () => {
    const acl = compileAcl([{ allow: '10.1.0.0/16' }, { deny: '10.0.0.0/8' }]);
    assert.equal(acl('10.1.2.3'), true);
    assert.equal(acl('10.2.0.1'), false);
    assert.equal(acl('192.0.2.1'), true);
    const reversed = compileAcl([{ deny: '10.0.0.0/8' }, { allow: '10.1.0.0/16' }]);
    assert.equal(reversed('10.1.2.3'), false);
  });

  test('allow-list ending in deny-all for both families', () => {
    const acl = compileAcl([{ allow: '127.0.0.1' }, { allow: '::1' }, { deny: '0.0.0.0/0' }, { deny: '::/0' }]);
    assert.equal(acl('127.0.0.1'), true);
    assert.equal(acl('::ffff:127.0.0.1'), true);
    assert.equal(acl('::1'), true);
    assert.equal(acl('127.0.0.2'), false);
    assert.equal(acl('::2'), false);
  });

  test('deny ::/0 alone leaves IPv4 clients alone', () => {
    const acl = compileAcl([{ deny: '::/0' }]);
    assert.equal(acl('::1'), false);
    assert.equal(acl('127.0.0.1'), true);
  });

  test('an unparseable address is denied only when some rule denies', () => {
    assert.equal(compileAcl([{ deny: '10.0.0.0/8' }])('not-an-ip'), false);
    assert.equal(compileAcl([{ allow: '10.0.0.0/8' }])('not-an-ip'), true);
    assert.equal(compileAclRules([{ deny: '10.0.0.0/8' }]).allows(null), false);
    assert.equal(compileAclRules([]).allows(null), true);
  });

  test('an empty list allows everyone', () => {
    assert.equal(compileAcl([])('203.0.113.1'), true);
  });

  test('an invalid rule throws at compile time (the config check normally refused it earlier)', () => {
    assert.throws(() => compileAcl([{ deny: '10.0.0.0/33' }]), /invalid ACL rule: .*prefix over 32/);
  });
});

describe('toAddress16 and isV4Mapped', () => {
  test('4 uWS bytes become mapped; 16 pass through; anything else is null', () => {
    const four = toAddress16(new Uint8Array([192, 0, 2, 7]));
    assert.equal(hex(four), '00000000000000000000ffffc0000207');
    assert.ok(four !== null && isV4Mapped(four));
    const sixteen = new Uint8Array(16);
    sixteen[15] = 1;
    assert.equal(toAddress16(sixteen), sixteen);
    assert.equal(isV4Mapped(sixteen), false);
    assert.equal(toAddress16(new Uint8Array(0)), null);
    assert.equal(toAddress16(new Uint8Array(6)), null);
  });
});

describe('forwardedClient: the entry N from the right of X-Forwarded-For', () => {
  const at = (xff: string, hops: number): string => {
    const b = forwardedClient(xff, hops);
    return b === null ? 'peer' : formatAddressBytes(b);
  };

  test('0 hops: never the header', () => {
    assert.equal(at('198.51.100.1', 0), 'peer');
  });

  test('N hops pick the Nth entry from the right', () => {
    const chain = '203.0.113.9, 198.51.100.7, 10.0.0.1';
    assert.equal(at(chain, 1), '10.0.0.1');
    assert.equal(at(chain, 2), '198.51.100.7');
    assert.equal(at(chain, 3), '203.0.113.9');
  });

  test('a shorter chain gives its leftmost entry', () => {
    assert.equal(at('203.0.113.9, 10.0.0.1', 3), '203.0.113.9');
    assert.equal(at('203.0.113.9', 16), '203.0.113.9');
  });

  test('no header, an empty or invalid entry: the peer', () => {
    assert.equal(at('', 1), 'peer');
    assert.equal(at('unknown', 1), 'peer');
    assert.equal(at('203.0.113.9, , 10.0.0.1', 2), 'peer');
    assert.equal(at('203.0.113.9,', 1), 'peer');
    assert.equal(at(',10.0.0.1', 2), 'peer');
    assert.equal(at('203.0.113.9, _hidden', 1), 'peer');
    // only the chosen entry matters: garbage further left is the client's own business
    assert.equal(at('garbage, 198.51.100.7, 10.0.0.1', 2), '198.51.100.7');
  });

  test('IPv6 entries, ports and brackets; several header lines joined', () => {
    assert.equal(at('2001:db8::7', 1), '2001:db8::7');
    assert.equal(at('[2001:db8::7]:4711, 10.0.0.1', 2), '2001:db8::7');
    assert.equal(at('[2001:db8::7]', 1), '2001:db8::7');
    assert.equal(at('198.51.100.7:4711', 1), '198.51.100.7');
    assert.equal(at('::ffff:198.51.100.7', 1), '198.51.100.7');
    assert.equal(at('203.0.113.9,198.51.100.7', 1), '198.51.100.7');
    assert.equal(at('\t203.0.113.9 ,\t198.51.100.7 ', 2), '203.0.113.9');
  });

  test('parseForwardedEntry refuses look-alikes', () => {
    for (const bad of ['[10.0.0.1]', '[::1', '[::1]x', '[::1]:', '1.2.3.4:', '1.2.3.4:x', '1.2.3.4:123456', 'fe80::1%eth0', 'x'.repeat(100), '']) {
      assert.equal(parseForwardedEntry(bad), null, JSON.stringify(bad));
    }
  });
});
