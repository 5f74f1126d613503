/**
 * The route table (src/workers/http/router.ts): first match wins, each condition kind, prefix
 * rewrites, header edits and weighted splits.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { HeaderEdits, RouteAction, RouteConfig, RouteMatch } from '../../src/shared/config';
import { Router, applyEdits, compileEdits, pickSplit, rewritePath, type CompiledEdits, type CompiledRoute } from '../../src/workers/http/router';

const PROXY: RouteAction = { type: 'proxy', upstream: 'app' };

function route(name: string, match: RouteMatch, extra: Partial<RouteConfig> = {}): RouteConfig {
  return { name, match, action: PROXY, ...extra };
}

/** Name of the matched route, or null. */
function matchName(r: Router, method: string, host: string, path: string, headers: readonly string[] = []): string | null {
  return r.match(method, host, path, headers)?.name ?? null;
}

describe('Router.match', () => {
  test('first match wins, in configuration order', () => {
    const r = new Router([
      route('exact', { path: { exact: '/api/health' } }),
      route('api', { path: { prefix: '/api' } }),
      route('api-v2', { path: { prefix: '/api/v2' } }),
      route('all', {}),
    ]);
    assert.equal(matchName(r, 'GET', 'h', '/api/health'), 'exact');
    assert.equal(matchName(r, 'GET', 'h', '/api/v2/x'), 'api', 'the earlier, broader route shadows the later one');
    assert.equal(matchName(r, 'GET', 'h', '/other'), 'all');
    const reversed = new Router([route('api-v2', { path: { prefix: '/api/v2' } }), route('api', { path: { prefix: '/api' } })]);
    assert.equal(matchName(reversed, 'GET', 'h', '/api/v2/x'), 'api-v2');
    assert.equal(matchName(reversed, 'GET', 'h', '/api/v1'), 'api');
  });

  test('no route: null', () => {
    const r = new Router([route('a', { path: { prefix: '/a' } })]);
    assert.equal(r.match('GET', 'h', '/b', []), null);
    assert.equal(new Router([]).match('GET', 'h', '/', []), null);
  });

  test('compiled routes carry index, name, action, config', () => {
    const cfgs = [route('a', { path: { prefix: '/a' } }), route('b', {}, { maxBodyBytes: 5, timeouts: { totalMs: 9 } })];
    const r = new Router(cfgs);
    assert.deepEqual(
      r.routes.map((x) => [x.index, x.name]),
      [
        [0, 'a'],
        [1, 'b'],
      ],
    );
    const b = r.match('GET', 'h', '/zz', []);
    assert.ok(b);
    assert.equal(b, r.routes[1]);
    assert.equal(b.config, cfgs[1]);
    assert.equal(b.action, PROXY);
    assert.equal(b.maxBodyBytes, 5);
    assert.deepEqual(b.timeouts, { totalMs: 9 });
    assert.equal(b.rewriteFrom, '');
    assert.equal(b.requestEdits, null);
    assert.equal(b.responseEdits, null);
  });

  test('host exact (pattern case-insensitive; request host arrives lower-case)', () => {
    const r = new Router([route('h', { host: 'API.Example.com' })]);
    assert.equal(matchName(r, 'GET', 'api.example.com', '/'), 'h');
    assert.equal(matchName(r, 'GET', 'example.com', '/'), null);
    assert.equal(matchName(r, 'GET', 'x.api.example.com', '/'), null);
    assert.equal(matchName(r, 'GET', 'api.example.com.evil', '/'), null);
  });

  test('host wildcard *.example.com', () => {
    const r = new Router([route('w', { host: '*.example.com' })]);
    assert.equal(matchName(r, 'GET', 'a.example.com', '/'), 'w');
    assert.equal(matchName(r, 'GET', 'b.a.example.com', '/'), 'w');
    assert.equal(matchName(r, 'GET', 'example.com', '/'), null);
    assert.equal(matchName(r, 'GET', '.example.com', '/'), null);
    assert.equal(matchName(r, 'GET', 'aexample.com', '/'), null);
    assert.equal(matchName(r, 'GET', 'a.example.com.org', '/'), null);
    assert.equal(matchName(r, 'GET', 'a.example.org', '/'), null);
  });

  test('path prefix is a string prefix', () => {
    const r = new Router([route('p', { path: { prefix: '/api' } })]);
    for (const p of ['/api', '/api/', '/api/x/y', '/apix']) assert.equal(matchName(r, 'GET', 'h', p), 'p', p);
    for (const p of ['/', '/ap', '/API', '/x/api']) assert.equal(matchName(r, 'GET', 'h', p), null, p);
  });

  test('path prefix "/" matches every path', () => {
    const r = new Router([route('root', { path: { prefix: '/' } })]);
    for (const p of ['/', '/a', '/a/b/c']) assert.equal(matchName(r, 'GET', 'h', p), 'root', p);
  });

  test('path exact', () => {
    const r = new Router([route('e', { path: { exact: '/healthz' } })]);
    assert.equal(matchName(r, 'GET', 'h', '/healthz'), 'e');
    for (const p of ['/healthz/', '/healthzz', '/health', '/Healthz']) assert.equal(matchName(r, 'GET', 'h', p), null, p);
  });

  test('path regex (unanchored unless the pattern anchors)', () => {
    const r = new Router([route('anch', { path: { regex: '^/users/\\d+$' } }), route('loose', { path: { regex: 'img' } })]);
    assert.equal(matchName(r, 'GET', 'h', '/users/42'), 'anch');
    assert.equal(matchName(r, 'GET', 'h', '/users/42/x'), null);
    assert.equal(matchName(r, 'GET', 'h', '/users/abc'), null);
    assert.equal(matchName(r, 'GET', 'h', '/static/img/a.png'), 'loose');
  });

  test('a global-flag-free regex gives the same answer on repeated calls', () => {
    const r = new Router([route('re', { path: { regex: '^/a' } })]);
    for (let i = 0; i < 3; i++) assert.equal(matchName(r, 'GET', 'h', '/a'), 're');
  });

  test('methods (case-sensitive, as sent)', () => {
    const r = new Router([route('rw', { methods: ['POST', 'PUT'] }), route('rest', {})]);
    assert.equal(matchName(r, 'POST', 'h', '/'), 'rw');
    assert.equal(matchName(r, 'PUT', 'h', '/'), 'rw');
    assert.equal(matchName(r, 'GET', 'h', '/'), 'rest');
    assert.equal(matchName(r, 'post', 'h', '/'), 'rest');
  });

  test('header exact: the first value of the lower-case name', () => {
    const r = new Router([route('beta', { headers: [{ name: 'X-Beta', exact: '1' }] })]);
    assert.equal(matchName(r, 'GET', 'h', '/', ['x-beta', '1']), 'beta');
    assert.equal(matchName(r, 'GET', 'h', '/', ['accept', '*/*', 'x-beta', '1']), 'beta');
    assert.equal(matchName(r, 'GET', 'h', '/', ['x-beta', '10']), null);
    assert.equal(matchName(r, 'GET', 'h', '/', ['x-beta', '']), null);
    assert.equal(matchName(r, 'GET', 'h', '/', ['x-other', '1']), null);
    assert.equal(matchName(r, 'GET', 'h', '/', []), null);
    assert.equal(matchName(r, 'GET', 'h', '/', ['x-beta', '0', 'x-beta', '1']), null, 'only the first value counts');
  });

  test('header regex', () => {
    const r = new Router([route('mob', { headers: [{ name: 'user-agent', regex: 'Mobile|Android' }] })]);
    assert.equal(matchName(r, 'GET', 'h', '/', ['user-agent', 'Mozilla (Android 14)']), 'mob');
    assert.equal(matchName(r, 'GET', 'h', '/', ['user-agent', 'curl/8']), null);
    assert.equal(matchName(r, 'GET', 'h', '/', []), null, 'absent header does not match even a regex matching ""');
    const empty = new Router([route('any', { headers: [{ name: 'x', regex: '.*' }] })]);
    assert.equal(matchName(empty, 'GET', 'h', '/', []), null);
    assert.equal(matchName(empty, 'GET', 'h', '/', ['x', '']), 'any');
  });

  test('header present true / false', () => {
    const r = new Router([
      route('has', { headers: [{ name: 'authorization', present: true }] }),
      route('hasnt', { headers: [{ name: 'cookie', present: false }] }),
    ]);
    assert.equal(matchName(r, 'GET', 'h', '/', ['authorization', '']), 'has', 'an empty value is present');
    assert.equal(matchName(r, 'GET', 'h', '/', ['authorization', 'Bearer x', 'cookie', 'a']), 'has');
    assert.equal(matchName(r, 'GET', 'h', '/', []), 'hasnt');
    assert.equal(matchName(r, 'GET', 'h', '/', ['cookie', 'a']), null);
  });

  test('all conditions of a route must hold', () => {
    const r = new Router([
      route('all', {
        host: '*.example.com',
        path: { prefix: '/api' },
        methods: ['GET'],
        headers: [
          { name: 'x-a', exact: '1' },
          { name: 'x-b', present: false },
        ],
      }),
    ]);
    const hs = ['x-a', '1'];
    assert.equal(matchName(r, 'GET', 'a.example.com', '/api/x', hs), 'all');
    assert.equal(matchName(r, 'POST', 'a.example.com', '/api/x', hs), null);
    assert.equal(matchName(r, 'GET', 'example.com', '/api/x', hs), null);
    assert.equal(matchName(r, 'GET', 'a.example.com', '/x', hs), null);
    assert.equal(matchName(r, 'GET', 'a.example.com', '/api/x', []), null);
    assert.equal(matchName(r, 'GET', 'a.example.com', '/api/x', ['x-a', '1', 'x-b', '']), null);
  });

  test('rewrite fields and compiled edits', () => {
    const r = new Router([
      route('rw', { path: { prefix: '/api/' } }, { rewrite: { prefix: '/' }, requestHeaders: { set: { A: '1' } }, responseHeaders: { remove: ['Server'] } }),
    ]);
    const c = r.routes[0];
    assert.ok(c);
    assert.equal(c.rewriteFrom, '/api/');
    assert.equal(c.rewriteTo, '/');
    assert.deepEqual(c.requestEdits, { drop: new Set(['a']), append: ['a', '1'] });
    assert.deepEqual(c.responseEdits, { drop: new Set(['server']), append: [] });
  });
});

describe('rewritePath', () => {
  const cases: [string, string, string, string][] = [
    // path, from, to, expected
    ['/api/v1/x', '/api', '/', '/v1/x'],
    ['/api/v1/x', '/api/', '/', '/v1/x'],
    ['/api/v1/x', '/api', '/backend', '/backend/v1/x'],
    ['/api/v1/x', '/api/', '/backend', '/backend/v1/x'],
    ['/api/v1/x', '/api', '/backend/', '/backend/v1/x'],
    ['/api/v1/x', '/api/', '/backend/', '/backend/v1/x'],
    ['/api', '/api', '/', '/'],
    ['/api', '/api', '/backend', '/backend'],
    ['/api', '/api', '/backend/', '/backend/'],
    ['/api/', '/api/', '/', '/'],
    ['/api/', '/api', '/', '/'],
    ['/api/', '/api', '/backend', '/backend/'],
    ['/api/', '/api/', '/backend', '/backend'],
    ['/x', '/', '/', '/x'],
    ['/x', '/', '/b', '/b/x'],
    ['/api//x', '/api', '/', '//x'],
  ];
  for (const [path, from, to, want] of cases) {
    test(`${JSON.stringify(path)} from ${JSON.stringify(from)} to ${JSON.stringify(to)} → ${JSON.stringify(want)}`, () => {
      assert.equal(rewritePath(path, from, to), want);
    });
  }
});

describe('compileEdits / applyEdits', () => {
  const edit = (e: HeaderEdits): CompiledEdits => {
    const c = compileEdits(e);
    assert.ok(c);
    return c;
  };

  test('undefined or empty edits compile to null', () => {
    assert.equal(compileEdits(undefined), null);
    assert.equal(compileEdits({}), null);
    assert.equal(compileEdits({ add: {}, set: {}, remove: [] }), null);
  });

  test('remove drops every value of the name, case-insensitively, keeping order', () => {
    const hs = ['Accept', 'a', 'X-Debug', '1', 'host', 'h', 'x-debug', '2', 'X-DEBUG', '3', 'cookie', 'c'];
    applyEdits(hs, edit({ remove: ['x-Debug'] }));
    assert.deepEqual(hs, ['Accept', 'a', 'host', 'h', 'cookie', 'c']);
  });

  test('set replaces all existing values with one', () => {
    const hs = ['x-proxy', 'old1', 'a', '1', 'X-Proxy', 'old2'];
    applyEdits(hs, edit({ set: { 'X-Proxy': 'sluice' } }));
    assert.deepEqual(hs, ['a', '1', 'x-proxy', 'sluice']);
  });

  test('set adds the header when absent', () => {
    const hs = ['a', '1'];
    applyEdits(hs, edit({ set: { b: '2' } }));
    assert.deepEqual(hs, ['a', '1', 'b', '2']);
  });

  test('add appends, keeping existing values', () => {
    const hs = ['Via', '1.0 a', 'x', 'y'];
    applyEdits(hs, edit({ add: { via: '1.1 sluice' } }));
    assert.deepEqual(hs, ['Via', '1.0 a', 'x', 'y', 'via', '1.1 sluice']);
  });

  test('order is remove, then set, then add', () => {
    const c = edit({ add: { 'X-A': 'added' }, set: { 'x-a': 'set', 'x-b': 'b' }, remove: ['x-a', 'x-c'] });
    assert.deepEqual(c.drop, new Set(['x-a', 'x-b', 'x-c']));
    assert.deepEqual(c.append, ['x-a', 'set', 'x-b', 'b', 'x-a', 'added']);
    const hs = ['x-a', 'orig', 'x-c', 'gone', 'keep', 'k', 'X-B', 'old'];
    applyEdits(hs, c);
    assert.deepEqual(hs, ['keep', 'k', 'x-a', 'set', 'x-b', 'b', 'x-a', 'added']);
  });

  test('remove then add of the same name replaces like set', () => {
    const hs = ['x', '1', 'x', '2'];
    applyEdits(hs, edit({ remove: ['X'], add: { x: '3' } }));
    assert.deepEqual(hs, ['x', '3']);
  });

  test('applying to an empty list', () => {
    const hs: string[] = [];
    applyEdits(hs, edit({ remove: ['a'], add: { b: '1' } }));
    assert.deepEqual(hs, ['b', '1']);
  });

  test('edits compiled once apply the same way to many lists', () => {
    const c = edit({ remove: ['a'], set: { b: 'B' } });
    for (let i = 0; i < 3; i++) {
      const hs = ['a', String(i), 'b', 'x', 'c', 'y'];
      applyEdits(hs, c);
      assert.deepEqual(hs, ['c', 'y', 'b', 'B']);
    }
    assert.deepEqual(c.append, ['b', 'B'], 'append list not consumed');
  });
});

describe('pickSplit', () => {
  function split(...targets: [string, number][]): CompiledRoute {
    const r = new Router([
      { name: 's', match: {}, action: { type: 'split', targets: targets.map(([upstream, weight]) => ({ upstream, weight })) } },
    ]);
    const c = r.routes[0];
    assert.ok(c);
    return c;
  }

  test('cumulative weights are compiled', () => {
    const c = split(['a', 90], ['b', 10]);
    assert.deepEqual(c.splitCumulative, [90, 100]);
    assert.equal(c.splitTotal, 100);
  });

  test('boundaries of 90/10', () => {
    const c = split(['a', 90], ['b', 10]);
    assert.equal(pickSplit(c, 0), 'a');
    assert.equal(pickSplit(c, 0.5), 'a');
    assert.equal(pickSplit(c, 0.8999), 'a');
    assert.equal(pickSplit(c, 0.9), 'b');
    assert.equal(pickSplit(c, 0.95), 'b');
    assert.equal(pickSplit(c, 0.9999999), 'b');
  });

  test('three targets, 1:2:1', () => {
    const c = split(['a', 1], ['b', 2], ['c', 1]);
    const got = [0, 0.2, 0.25, 0.5, 0.74, 0.75, 0.99].map((r) => pickSplit(c, r));
    assert.deepEqual(got, ['a', 'a', 'b', 'b', 'b', 'c', 'c']);
  });

  test('zero-weight targets are never picked', () => {
    const first = split(['off', 0], ['on', 3]);
    const last = split(['on', 3], ['off', 0]);
    const middle = split(['a', 1], ['off', 0], ['c', 1]);
    for (let i = 0; i < 100; i++) {
      const r = i / 100;
      assert.equal(pickSplit(first, r), 'on', `r=${r}`);
      assert.equal(pickSplit(last, r), 'on', `r=${r}`);
      assert.notEqual(pickSplit(middle, r), 'off', `r=${r}`);
    }
  });

  test('an even grid of r values lands exactly in proportion', () => {
    const c = split(['a', 3], ['b', 1], ['c', 6]);
    const counts = new Map<string, number>();
    const n = 1000;
    for (let i = 0; i < n; i++) {
      const u = pickSplit(c, (i + 0.5) / n);
      counts.set(u, (counts.get(u) ?? 0) + 1);
    }
    assert.deepEqual(Object.fromEntries(counts), { a: 300, b: 100, c: 600 });
  });

  test('a non-split route is refused', () => {
    const r = new Router([route('p', {})]);
    assert.throws(() => pickSplit(r.routes[0] as CompiledRoute, 0.5), { message: 'not a split route' });
  });
});
