/**
 * The consistent-hash balancing policy: key extraction, stickiness, minimal disruption when
 * membership changes, bounded load against a hot key, and the fallback walk.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { jsNative } from '../../src/shared/native';
import type { Session } from '../../src/workers/http/session';
import { buildSelector, ConsistentHash, type BalancedHost } from '../../src/workers/http/upstream/balancer';
import { buildConfig } from '../../src/shared/config';
import { compileHashKey, hashKeyIsSensitive, Upstreams } from '../../src/workers/http/upstream/upstreams';

const hostsOf = (n: number): BalancedHost[] => Array.from({ length: n }, () => ({ weight: 1, active: 0 }));
const idsOf = (n: number, skip = -1): string[] => Array.from({ length: n + (skip === -1 ? 0 : 1) }, (_, i) => `10.0.0.${i + 1}:80`).filter((_, i) => i !== skip);
const h = (k: string): number => jsNative.hashKey(k) >>> 0;

function session(headers: string[], clientAddress = '127.0.0.1', path = '/'): Session {
  return { headers, clientAddress, path } as unknown as Session;
}

describe('consistent hashing', () => {
  for (const kind of ['ketama', 'maglev'] as const) {
    test(`${kind}: a key always maps to the same host`, () => {
      const sel = buildSelector(kind, hostsOf(5), { ids: idsOf(5), factor: 0 }) as ConsistentHash;
      for (let k = 0; k < 200; k++) {
        const first = sel.pickHash(h(`user-${k}`), null);
        assert.ok(first >= 0 && first < 5);
        for (let r = 0; r < 3; r++) assert.equal(sel.pickHash(h(`user-${k}`), null), first);
      }
    });

    test(`${kind}: removing one of 10 hosts moves about 1/10 of the keys`, () => {
      const n = 10;
      const all = idsOf(n);
      const full = buildSelector(kind, hostsOf(n), { ids: all, factor: 0 }) as ConsistentHash;
      const removed = 3;
      const lessIds = all.filter((_, i) => i !== removed);
      const less = buildSelector(kind, hostsOf(n - 1), { ids: lessIds, factor: 0 }) as ConsistentHash;
      let moved = 0;
      const keys = 20000;
      for (let k = 0; k < keys; k++) {
        const a = all[full.pickHash(h(`k${k}`), null)];
        const b = lessIds[less.pickHash(h(`k${k}`), null)];
        if (a !== b) moved++;
      }
      // Only the removed host's keys should move: 1/10 of them, give or take the ring's spread.
      assert.ok(moved > keys * 0.05 && moved < keys * 0.16, `${moved} of ${keys} keys moved`);
    });

    test(`${kind}: the fallback walk skips refused hosts and is bounded`, () => {
      const sel = buildSelector(kind, hostsOf(4), { ids: idsOf(4), factor: 0 }) as ConsistentHash;
      const first = sel.pickHash(h('x'), null);
      const next = sel.pickHash(h('x'), (i) => i !== first);
      assert.notEqual(next, first);
      assert.ok(next >= 0);
      assert.equal(sel.pickHash(h('x'), () => false), -1);
    });
  }

  for (const kind of ['ketama', 'maglev'] as const) {
    test(`${kind}: a membership rebuild without a host equals a table built without it, in host indices`, () => {
      const n = 6;
      const down = 2;
      const sel = buildSelector(kind, hostsOf(n), { ids: idsOf(n), factor: 0 }) as ConsistentHash;
      const members = Array.from({ length: n }, (_, i) => i).filter((i) => i !== down);
      sel.setMembership(members);
      const fresh = buildSelector(kind, hostsOf(n - 1), { ids: idsOf(n - 1, down), factor: 0 }) as ConsistentHash;
      for (let k = 0; k < 2000; k++) {
        const got = sel.pickHash(h(`user-${k}`), null);
        assert.notEqual(got, down, 'the host out of the table is never picked');
        assert.equal(got, members[fresh.pickHash(h(`user-${k}`), null)], 'same placement as a table built over the members');
      }
      // Bounded load and the accept predicate see host indices, not table indices.
      const bounded = buildSelector(kind, hostsOf(n), { ids: idsOf(n), factor: 1.25 }) as ConsistentHash;
      bounded.setMembership(members);
      const seen: number[] = [];
      const pick = bounded.pickHash(h('user-1'), (i) => (seen.push(i), i !== members[0]));
      assert.ok(seen.every((i) => i !== down), 'accept is asked about member hosts only');
      assert.ok(pick !== down && pick !== members[0]);
      sel.setMembership(null);
      const whole = buildSelector(kind, hostsOf(n), { ids: idsOf(n), factor: 0 }) as ConsistentHash;
      for (let k = 0; k < 500; k++) assert.equal(sel.pickHash(h(`user-${k}`), null), whole.pickHash(h(`user-${k}`), null), 'back to all hosts');
    });
  }

  test('bounded load: a hot key spills over instead of piling onto one host', () => {
    const hosts = hostsOf(4);
    const sel = buildSelector('ketama', hosts, { ids: idsOf(4), factor: 1.25 }) as ConsistentHash;
    // 100 concurrent requests for one hot key (in flight at once): none above ⌈1.25 × avg⌉.
    for (let i = 0; i < 100; i++) {
      const j = sel.pickHash(h('hot'), null);
      (hosts[j] as BalancedHost).active++;
    }
    const max = Math.max(...hosts.map((x) => x.active));
    assert.ok(max <= Math.ceil((1.25 * 100) / 4), `busiest host has ${max} of 100`);
    const unbounded = hostsOf(4);
    const sel2 = buildSelector('ketama', unbounded, { ids: idsOf(4), factor: 0 }) as ConsistentHash;
    for (let i = 0; i < 100; i++) (unbounded[sel2.pickHash(h('hot'), null)] as BalancedHost).active++;
    assert.equal(Math.max(...unbounded.map((x) => x.active)), 100, 'without the bound one host takes all');
  });

  test('requests without a key fall back to round robin', () => {
    const sel = buildSelector('maglev', hostsOf(3), { ids: idsOf(3), factor: 0 });
    const seen = new Set<number>();
    for (let i = 0; i < 3; i++) seen.add(sel.pick(null));
    assert.equal(seen.size, 3);
  });
});

describe('hash key expressions', () => {
  test('header, cookie, client_ip, path and combinations', () => {
    const s = session(['x-user', 'u1', 'cookie', 'a=1; sid=abc; b=2'], '192.0.2.9', '/cart');
    assert.equal(compileHashKey('header:X-User')(s), 'u1');
    assert.equal(compileHashKey('cookie:sid')(s), 'abc');
    assert.equal(compileHashKey('client_ip')(s), '192.0.2.9');
    assert.equal(compileHashKey('path')(s), '/cart');
    assert.equal(compileHashKey('header:x-user+path')(s), 'u1\n/cart\n');
    assert.equal(compileHashKey('header:x-missing')(s), '');
    assert.equal(compileHashKey('header:x-missing+cookie:nope')(s), '');
  });
});

describe('the key a pick hashed (events carry it as lbKey)', () => {
  function groupWith(hashKey: string | undefined): { up: Upstreams; pick: (s: Session) => void } {
    const cfg = buildConfig({
      upstreams: {
        g: hashKey === undefined
          ? { hosts: [{ address: '127.0.0.1:1' }, { address: '127.0.0.1:2' }] }
          : { balance: 'ketama', hashKey, hosts: [{ address: '127.0.0.1:1' }, { address: '127.0.0.1:2' }] },
      },
      routes: [{ name: 'r', action: { type: 'proxy', upstream: 'g' } }],
    });
    const up = Upstreams.build(cfg, null);
    const g = up.groups.get('g');
    assert.ok(g !== undefined);
    return { up, pick: (s) => void g.pick([], s, { breakerProbe: false, holdsActive: false }) };
  }

  test('the key as read; a cookie or Authorization key only as its hash; none without a key', () => {
    const s = { ...session(['x-user', 'u1', 'cookie', 'sid=secret-1', 'authorization', 'Bearer secret-2']), lbKey: 'stale' } as Session;
    const cases: [string | undefined, string][] = [
      ['header:x-user', 'u1'],
      ['header:x-user+path', 'u1\n/\n'],
      ['cookie:sid', `xxh3:${jsNative.hashKey('secret-1').toString(16)}`],
      ['header:Authorization', `xxh3:${jsNative.hashKey('Bearer secret-2').toString(16)}`],
      ['header:x-absent', ''],
      [undefined, ''],
    ];
    for (const [expr, want] of cases) {
      const { up, pick } = groupWith(expr);
      s.lbKey = 'stale';
      pick(s);
      assert.equal(s.lbKey, want, String(expr));
      up.closeAll();
    }
    assert.equal(hashKeyIsSensitive('header:x-user+client_ip'), false);
    assert.equal(hashKeyIsSensitive('client_ip+header:COOKIE'), true);
  });
});
