/**
 * Configuration loading (src/shared/config/): defaults, messages naming the option path,
 * semantic checks, SLUICE_* overrides, deep freezing, and reading YAML/JSON files. Also the
 * error registry (src/shared/errors.ts), whose SLUICE_ERR_CONFIG code ConfigError carries.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { CONFIG_SCHEMA, ConfigError, ENV_VARS, buildConfig, loadConfig, readConfigFile } from '../../src/shared/config';
import { ERRORS, SluiceError, sluiceError, statusLine, toSluiceError, type ErrorCode } from '../../src/shared/errors';

type Raw = Record<string, unknown>;

/** The smallest valid config: one upstream, one route. */
function minimal(): Raw {
  return {
    upstreams: { app: { hosts: [{ address: '127.0.0.1:9001' }] } },
    routes: [{ name: 'default', action: { type: 'proxy', upstream: 'app' } }],
  };
}

function withRoutes(...routes: unknown[]): Raw {
  return { ...minimal(), routes };
}

/** The issues a config is refused with, as "path message" lines. */
function issuesOf(raw: unknown, env: NodeJS.ProcessEnv = {}): string[] {
  try {
    buildConfig(raw, 'test.yaml', env);
  } catch (e) {
    assert.ok(e instanceof ConfigError, `expected ConfigError, got ${String(e)}`);
    return e.issues.map((i) => `${i.path} ${i.message}`);
  }
  assert.fail('config was accepted');
}

const proxyTo = (upstream: string) => ({ type: 'proxy', upstream });

describe('buildConfig: defaults', () => {
  const cfg = buildConfig(minimal());

  test('workers 0 resolves to the CPU count', () => {
    assert.equal(cfg.workers, Math.max(1, cpus().length));
    assert.equal(buildConfig({ ...minimal(), workers: 0 }).workers, Math.max(1, cpus().length));
    assert.equal(buildConfig({ ...minimal(), workers: 3 }).workers, 3);
  });

  test('listen', () => {
    assert.deepEqual(cfg.listen, { host: '0.0.0.0', port: 8080, proxyProtocol: 'off' });
  });

  test('admin listener on loopback; no HTTPS listener unless configured', () => {
    assert.deepEqual(cfg.admin, { enabled: true, host: '127.0.0.1', port: 9901 });
    assert.equal(cfg.tls, undefined);
  });

  test('limits', () => {
    assert.deepEqual(cfg.limits, { maxUrlLength: 8192, maxHeaderBytes: 8192, maxHeaderCount: 40, maxBodyBytes: 10 * 1024 * 1024 });
  });

  test('timeouts', () => {
    assert.deepEqual(cfg.timeouts, { connectMs: 5000, headerMs: 60000, idleMs: 60000, totalMs: 0 });
  });

  test('pool', () => {
    assert.deepEqual(cfg.pool, { maxIdlePerHost: 1024, idleTimeoutMs: 4000, maxConnectionsPerHost: 0 });
  });

  test('proxy, log, shutdown', () => {
    assert.deepEqual(cfg.proxy, { via: 'sluice', requestIdHeader: 'x-request-id', retryBufferBytes: 65536, trustedHops: 0 });
    assert.deepEqual(cfg.log, { level: 'info', access: false, accessFile: '' });
    assert.deepEqual(cfg.shutdown, { drainTimeoutMs: 30000 });
  });

  test('upstream defaults: balance round_robin, weight 1, no pool/timeout overrides, no limits, panic at 50 %', () => {
    assert.deepEqual(cfg.upstreams, {
      app: {
        balance: 'round_robin',
        hashBalanceFactor: 1.25,
        hosts: [{ address: '127.0.0.1:9001', weight: 1 }],
        maxActivePerHost: 0,
        maxPendingPerHost: 0,
        panicThresholdPercent: 50,
      },
    });
  });

  test('route defaults: empty match; redirect and respond defaults', () => {
    assert.deepEqual(cfg.routes, [{ name: 'default', match: {}, action: { type: 'proxy', upstream: 'app' } }]);
    const c = buildConfig(
      withRoutes(
        { name: 'r', action: { type: 'redirect', location: 'https://x.example' } },
        { name: 's', action: { type: 'respond' } },
      ),
    );
    assert.deepEqual(c.routes[0]?.action, { type: 'redirect', location: 'https://x.example', status: 302, appendPath: false });
    assert.deepEqual(c.routes[1]?.action, { type: 'respond', status: 200, body: '', contentType: 'text/plain; charset=utf-8' });
  });

  test('given values are kept over defaults', () => {
    const c = buildConfig({
      ...minimal(),
      listen: { port: 0 },
      limits: { maxHeaderCount: 47 },
      pool: { idleTimeoutMs: 1 },
      log: { level: 'debug' },
    });
    assert.deepEqual(c.listen, { host: '0.0.0.0', port: 0, proxyProtocol: 'off' });
    assert.equal(c.limits.maxHeaderCount, 47);
    assert.equal(c.limits.maxUrlLength, 8192);
    assert.deepEqual(c.pool, { maxIdlePerHost: 1024, idleTimeoutMs: 1, maxConnectionsPerHost: 0 });
    assert.equal(c.log.level, 'debug');
  });

  test('a full config round-trips', () => {
    const raw = {
      workers: 2,
      upstreams: {
        app: {
          balance: 'least_request',
          hosts: [{ address: '[::1]:80', weight: 3 }, { address: 'backend.internal:8443' }],
          pool: { maxIdlePerHost: 4 },
          timeouts: { connectMs: 100 },
        },
      },
      routes: [
        {
          name: 'api',
          match: { host: '*.example.com', path: { prefix: '/api' }, methods: ['GET'], headers: [{ name: 'x-a', present: false }] },
          rewrite: { prefix: '/' },
          requestHeaders: { add: { 'x-b': '1' }, set: { 'x-c': '2' }, remove: ['x-d'] },
          responseHeaders: { remove: ['server'] },
          action: { type: 'split', targets: [{ upstream: 'app', weight: 1 }] },
          timeouts: { totalMs: 500, headerMs: 200 },
          maxBodyBytes: 10,
        },
      ],
    };
    const c = buildConfig(raw);
    assert.deepEqual(c.upstreams.app, { ...raw.upstreams.app, hashBalanceFactor: 1.25, maxActivePerHost: 0, maxPendingPerHost: 0, panicThresholdPercent: 50, hosts: [{ address: '[::1]:80', weight: 3 }, { address: 'backend.internal:8443', weight: 1 }] });
    assert.deepEqual(c.routes[0], raw.routes[0]);
  });
});

describe('buildConfig: schema errors name the option path', () => {
  const cases: [string, (c: Raw) => void, string[]][] = [
    ['unknown top-level key', (c) => (c.wrokers = 1), [
      'wrokers is not a known option (known here: workers, listen, tls, admin, limits, timeouts, pool, proxy, log, shutdown, rateLimit, kafka, events, upstreams, routes)',
    ]],
    ['unknown nested key', (c) => (c.listen = { prot: 1 }), ['listen.prot is not a known option (known here: host, port, proxyProtocol, acl)']],
    // proxyProtocol was a boolean before v1 came through the listener front
    ['not one of an enum', (c) => (c.listen = { proxyProtocol: true }), ['listen.proxyProtocol must be one of off, v2, v1, any, got true']],
    ['unknown key in a route', (c) => ((c.routes as Raw[])[0] = { name: 'd', action: proxyTo('app'), math: {} }), [
      'routes[0].math is not a known option (known here: name, match, rewrite, requestHeaders, responseHeaders, action, timeouts, maxBodyBytes, acl, retry, rateLimit)',
    ]],
    ['unknown key in an action', (c) => ((c.routes as Raw[])[0] = { name: 'd', action: { ...proxyTo('app'), weight: 1 } }), [
      'routes[0].action.weight is not a known option (known here: upstream)',
    ]],
    ['wrong type', (c) => (c.workers = 'four'), ['workers must be a number, got "four"']],
    ['fraction', (c) => (c.workers = 1.5), ['workers must be an integer, got 1.5']],
    ['max', (c) => (c.workers = 257), ['workers must be <= 256, got 257']],
    ['min', (c) => (c.listen = { port: -1 }), ['listen.port must be >= 0, got -1']],
    ['acl rule needs one of allow/deny', (c) => (c.listen = { acl: [{}] }), ['listen.acl[0] must set exactly one of allow, deny']],
    ['acl address', (c) => (c.listen = { acl: [{ deny: 'localhost' }] }), [
      'listen.acl[0].deny must be an IPv4 or IPv6 address or CIDR (10.0.0.0/8, ::1, fd00::/8), got "localhost"',
    ]],
    ['port max', (c) => (c.listen = { port: 65536 }), ['listen.port must be <= 65535, got 65536']],
    ['limits min', (c) => (c.limits = { maxHeaderBytes: 255 }), ['limits.maxHeaderBytes must be >= 256, got 255']],
    ['header count max', (c) => (c.limits = { maxHeaderCount: 48 }), ['limits.maxHeaderCount must be <= 47, got 48']],
    ['timeout min 1', (c) => (c.timeouts = { connectMs: 0 }), ['timeouts.connectMs must be >= 1, got 0']],
    ['enum', (c) => (c.log = { level: 'verbose' }), ['log.level must be one of debug, info, warn, error, got "verbose"']],
    ['boolean', (c) => (c.log = { access: 'yes' }), ['log.access must be true or false, got "yes"']],
    ['balance enum', (c) => ((c.upstreams as Raw).app = { balance: 'ip_hash', hosts: [{ address: 'a:1' }] }), [
      'upstreams.app.balance must be one of round_robin, least_request, random, ketama, maglev, got "ip_hash"',
    ]],
    ['weight 0', (c) => ((c.upstreams as Raw).app = { hosts: [{ address: 'a:1', weight: 0 }] }), ['upstreams.app.hosts[0].weight must be >= 1, got 0']],
    ['no hosts', (c) => ((c.upstreams as Raw).app = { hosts: [] }), ['upstreams.app.hosts must have at least 1 item(s)']],
    ['hosts missing', (c) => ((c.upstreams as Raw).app = {}), ['upstreams.app.hosts is required']],
    ['bad upstream name', (c) => ((c.upstreams as Raw)['a b'] = { hosts: [{ address: 'a:1' }] }), [
      'upstreams.a b is not a valid name (letters, digits, _ . -, up to 64)',
    ]],
    ['no routes', (c) => (c.routes = []), ['routes must have at least 1 item(s)']],
    ['route name missing', (c) => (c.routes = [{ action: proxyTo('app') }]), ['routes[0].name is required']],
    ['route name pattern', (c) => (c.routes = [{ name: 'has space', action: proxyTo('app') }]), [
      'routes[0].name must be letters, digits, _ . -, up to 64, got "has space"',
    ]],
    ['action missing', (c) => (c.routes = [{ name: 'r' }]), ['routes[0].action is required']],
    ['action type', (c) => (c.routes = [{ name: 'r', action: { type: 'forward' } }]), [
      'routes[0].action.type must be one of proxy, split, redirect, kafka, respond, got "forward"',
    ]],
    ['path none of', (c) => (c.routes = [{ name: 'r', match: { path: {} }, action: proxyTo('app') }]), [
      'routes[0].match.path must set exactly one of prefix, exact, regex',
    ]],
    ['path two of', (c) => (c.routes = [{ name: 'r', match: { path: { prefix: '/a', exact: '/a' } }, action: proxyTo('app') }]), [
      'routes[0].match.path must set exactly one of prefix, exact, regex (got prefix, exact)',
    ]],
    ['prefix without slash', (c) => (c.routes = [{ name: 'r', match: { path: { prefix: 'api' } }, action: proxyTo('app') }]), [
      'routes[0].match.path.prefix must be a path starting with /, got "api"',
    ]],
    ['host pattern', (c) => (c.routes = [{ name: 'r', match: { host: 'a_b.com' }, action: proxyTo('app') }]), [
      'routes[0].match.host must be a host name or *.suffix, got "a_b.com"',
    ]],
    ['lower-case method', (c) => (c.routes = [{ name: 'r', match: { methods: ['get'] }, action: proxyTo('app') }]), [
      'routes[0].match.methods[0] must be an upper-case method name, got "get"',
    ]],
    ['header condition none of', (c) => (c.routes = [{ name: 'r', match: { headers: [{ name: 'x' }] }, action: proxyTo('app') }]), [
      'routes[0].match.headers[0] must set exactly one of exact, regex, present',
    ]],
    ['header name', (c) => (c.routes = [{ name: 'r', match: { headers: [{ name: 'x y', present: true }] }, action: proxyTo('app') }]), [
      'routes[0].match.headers[0].name must be an HTTP header name, got "x y"',
    ]],
    ['header edit value with CRLF', (c) => (c.routes = [{ name: 'r', requestHeaders: { set: { x: 'a\r\nb' } }, action: proxyTo('app') }]), [
      'routes[0].requestHeaders.set.x must be a header value without CR, LF or NUL, got "a\\r\\nb"',
    ]],
    ['header edit name', (c) => (c.routes = [{ name: 'r', responseHeaders: { add: { 'a:b': '1' } }, action: proxyTo('app') }]), [
      'routes[0].responseHeaders.add.a:b is not a valid name (an HTTP header name)',
    ]],
    ['split weight max', (c) => (c.routes = [{ name: 'r', action: { type: 'split', targets: [{ upstream: 'app', weight: 10001 }] } }]), [
      'routes[0].action.targets[0].weight must be <= 10000, got 10001',
    ]],
    ['split target weight missing', (c) => (c.routes = [{ name: 'r', action: { type: 'split', targets: [{ upstream: 'app' }] } }]), [
      'routes[0].action.targets[0].weight is required',
    ]],
    ['redirect status range', (c) => (c.routes = [{ name: 'r', action: { type: 'redirect', location: '/x', status: 300 } }]), [
      'routes[0].action.status must be >= 301, got 300',
    ]],
    ['redirect empty location', (c) => (c.routes = [{ name: 'r', action: { type: 'redirect', location: '' } }]), [
      'routes[0].action.location must be at least 1 characters long',
    ]],
    ['respond status', (c) => (c.routes = [{ name: 'r', action: { type: 'respond', status: 600 } }]), ['routes[0].action.status must be <= 599, got 600']],
    ['rewrite prefix required', (c) => (c.routes = [{ name: 'r', match: { path: { prefix: '/a' } }, rewrite: {}, action: proxyTo('app') }]), [
      'routes[0].rewrite.prefix is required',
    ]],
    ['via token', (c) => (c.proxy = { via: 'my proxy' }), [
      'proxy.via must be a pseudonym token (letters, digits, . _ -), empty to send no Via, got "my proxy"',
    ]],
  ];
  for (const [name, mutate, want] of cases) {
    test(name, () => {
      const c = minimal();
      mutate(c);
      assert.deepEqual(issuesOf(c), want);
    });
  }

  test('bad address patterns', () => {
    for (const address of ['127.0.0.1', 'host:', ':80', 'http://a:80', '::1:80', 'a:123456', 'a b:80', '[::1]', '[zz]:80']) {
      const c = minimal();
      c.upstreams = { app: { hosts: [{ address }] } };
      assert.deepEqual(issuesOf(c), [`upstreams.app.hosts[0].address must be host:port (IPv6 as [addr]:port), got ${JSON.stringify(address)}`], address);
    }
  });

  test('good address patterns', () => {
    for (const address of ['127.0.0.1:1', 'a:65535', '[::1]:8080', '[2001:db8::1]:443', 'my-host.internal:80']) {
      const c = minimal();
      c.upstreams = { app: { hosts: [{ address }] } };
      assert.equal(buildConfig(c).upstreams.app?.hosts[0]?.address, address);
    }
  });

  test('non-object roots', () => {
    assert.deepEqual(issuesOf(null), ['(root) is required']);
    assert.deepEqual(issuesOf([]), ['(root) must be an object, got an array']);
    assert.deepEqual(issuesOf('workers: 1'), ['(root) must be an object, got "workers: 1"']);
  });

  test('all schema issues are reported in one error, with the source in the message', () => {
    const c = minimal();
    c.workers = -1;
    c.listen = { port: 'x', hots: 'a' };
    c.routes = [{ name: 'r', match: { path: {} }, action: { type: 'proxy' } }];
    let err: unknown;
    try {
      buildConfig(c, 'cfg.yaml');
    } catch (e) {
      err = e;
    }
    assert.ok(err instanceof ConfigError);
    assert.ok(err instanceof SluiceError);
    assert.equal(err.code, 'SLUICE_ERR_CONFIG');
    const want = [
      'workers must be >= 0, got -1',
      'listen.hots is not a known option (known here: host, port, proxyProtocol, acl)',
      'listen.port must be a number, got "x"',
      'routes[0].match.path must set exactly one of prefix, exact, regex',
      'routes[0].action.upstream is required',
    ];
    assert.deepEqual(
      err.issues.map((i) => `${i.path} ${i.message}`),
      want,
    );
    assert.equal(err.message, `invalid configuration: cfg.yaml:\n${want.map((l) => `  ${l}`).join('\n')}`);
  });

  test(
    'a config without routes is refused with a ConfigError naming routes',
    () => {
      const c = minimal();
      delete c.routes;
      assert.deepEqual(issuesOf(c), ['routes is required']);
      assert.deepEqual(issuesOf({}), ['routes is required']);
    },
  );

  test(
    'a config without upstreams is refused with a ConfigError, or accepted when no route needs one',
    () => {
      const c = minimal();
      delete c.upstreams;
      const issues = issuesOf(c);
      assert.ok(
        issues.includes('upstreams is required') || issues.includes('routes[0].action.upstream names an unknown upstream "app" (defined: none)'),
        issues.join('\n'),
      );
      const respondOnly = { routes: [{ name: 'r', action: { type: 'respond' } }] };
      try {
        buildConfig(respondOnly);
      } catch (e) {
        assert.ok(e instanceof ConfigError, `expected a ConfigError (or acceptance), got ${String(e)}`);
      }
    },
  );

  test(
    'an action type naming an Object.prototype member is a ConfigError, not a TypeError',
    () => {
      assert.deepEqual(issuesOf(withRoutes({ name: 'r', action: { type: 'constructor' } })), [
        'routes[0].action.type must be one of proxy, split, redirect, kafka, respond, got "constructor"',
      ]);
    },
  );

  test(
    'an unknown key named like an Object.prototype member is reported',
    () => {
      assert.deepEqual(issuesOf({ ...minimal(), toString: 1 }), [
        'toString is not a known option (known here: workers, listen, tls, admin, limits, timeouts, pool, proxy, log, shutdown, rateLimit, kafka, events, upstreams, routes)',
      ]);
    },
  );
});

describe('buildConfig: semantic checks', () => {
  test('unknown upstream in proxy action lists the defined ones', () => {
    const c = withRoutes({ name: 'a', action: proxyTo('app') }, { name: 'b', action: proxyTo('x') });
    (c.upstreams as Raw).zeta = { hosts: [{ address: 'z:1' }] };
    assert.deepEqual(issuesOf(c), ['routes[1].action.upstream names an unknown upstream "x" (defined: app, zeta)']);
  });

  test('unknown upstream with none defined', () => {
    const c = withRoutes({ name: 'a', action: proxyTo('app') });
    c.upstreams = {};
    assert.deepEqual(issuesOf(c), ['routes[0].action.upstream names an unknown upstream "app" (defined: none)']);
  });

  test('upstream names are looked up as own properties only', () => {
    assert.deepEqual(issuesOf(withRoutes({ name: 'a', action: proxyTo('toString') })), [
      'routes[0].action.upstream names an unknown upstream "toString" (defined: app)',
    ]);
  });

  test('unknown upstream in split targets', () => {
    const c = withRoutes({
      name: 's',
      action: { type: 'split', targets: [{ upstream: 'app', weight: 1 }, { upstream: 'nope', weight: 1 }] },
    });
    assert.deepEqual(issuesOf(c), ['routes[0].action.targets[1].upstream names an unknown upstream "nope" (defined: app)']);
  });

  test('split with all weights zero', () => {
    const c = withRoutes({ name: 's', action: { type: 'split', targets: [{ upstream: 'app', weight: 0 }, { upstream: 'app', weight: 0 }] } });
    assert.deepEqual(issuesOf(c), ['routes[0].action.targets must have a target with weight > 0']);
    const ok = withRoutes({ name: 's', action: { type: 'split', targets: [{ upstream: 'app', weight: 0 }, { upstream: 'app', weight: 1 }] } });
    assert.equal(buildConfig(ok).routes[0]?.action.type, 'split');
  });

  test('duplicate route names', () => {
    const c = withRoutes({ name: 'a', action: proxyTo('app') }, { name: 'b', action: proxyTo('app') }, { name: 'a', action: proxyTo('app') });
    assert.deepEqual(issuesOf(c), ['routes[2].name duplicates the route name "a"']);
  });

  test('bad path regex', () => {
    const issues = issuesOf(withRoutes({ name: 'r', match: { path: { regex: '^/(a' } }, action: proxyTo('app') }));
    assert.equal(issues.length, 1);
    assert.match(issues[0] ?? '', /^routes\[0\]\.match\.path\.regex is not a valid regular expression: .*Unterminated group/);
  });

  test('bad header regex', () => {
    const issues = issuesOf(
      withRoutes({ name: 'r', match: { headers: [{ name: 'a', exact: 'x' }, { name: 'b', regex: '[' }] }, action: proxyTo('app') }),
    );
    assert.equal(issues.length, 1);
    assert.match(issues[0] ?? '', /^routes\[0\]\.match\.headers\[1\]\.regex is not a valid regular expression: /);
  });

  test('rewrite needs a path prefix', () => {
    assert.deepEqual(issuesOf(withRoutes({ name: 'r', rewrite: { prefix: '/' }, action: proxyTo('app') })), [
      'routes[0].rewrite needs match.path.prefix (the prefix it replaces)',
    ]);
    assert.deepEqual(issuesOf(withRoutes({ name: 'r', match: { path: { exact: '/a' } }, rewrite: { prefix: '/' }, action: proxyTo('app') })), [
      'routes[0].rewrite needs match.path.prefix (the prefix it replaces)',
    ]);
  });

  test('redirect status 304 (and 305, 306) refused; 301, 302, 303, 307, 308 accepted', () => {
    for (const status of [304, 305, 306]) {
      assert.deepEqual(issuesOf(withRoutes({ name: 'r', action: { type: 'redirect', location: '/x', status } })), [
        `routes[0].action.status must be one of 301, 302, 303, 307, 308, got ${status}`,
      ]);
    }
    for (const status of [301, 302, 303, 307, 308]) {
      const a = buildConfig(withRoutes({ name: 'r', action: { type: 'redirect', location: '/x', status } })).routes[0]?.action;
      assert.equal(a?.type === 'redirect' ? a.status : -1, status);
    }
  });

  test('host port outside 1..65535', () => {
    const c = minimal();
    c.upstreams = { app: { hosts: [{ address: 'a:1' }, { address: 'b:0' }, { address: '[::1]:65536' }] } };
    assert.deepEqual(issuesOf(c), [
      'upstreams.app.hosts[1].address has port 0 outside 1..65535',
      'upstreams.app.hosts[2].address has port 65536 outside 1..65535',
    ]);
  });

  test('all semantic issues are reported in one error', () => {
    const c = withRoutes(
      { name: 'a', action: proxyTo('x') },
      { name: 'a', rewrite: { prefix: '/' }, action: { type: 'redirect', location: '/', status: 304 } },
    );
    assert.deepEqual(issuesOf(c), [
      'routes[0].action.upstream names an unknown upstream "x" (defined: app)',
      'routes[1].name duplicates the route name "a"',
      'routes[1].rewrite needs match.path.prefix (the prefix it replaces)',
      'routes[1].action.status must be one of 301, 302, 303, 307, 308, got 304',
    ]);
  });
});

describe('buildConfig: environment overrides', () => {
  test('SLUICE_WORKERS, SLUICE_LISTEN_PORT, SLUICE_ACCESS_LOG', () => {
    const c = buildConfig(minimal(), 'x', { SLUICE_WORKERS: '3', SLUICE_LISTEN_PORT: '9090', SLUICE_ACCESS_LOG: 'true' });
    assert.equal(c.workers, 3);
    assert.deepEqual(c.listen, { host: '0.0.0.0', port: 9090, proxyProtocol: 'off' });
    assert.deepEqual(c.log, { level: 'info', access: true, accessFile: '' });
  });

  test('environment wins over the file', () => {
    const raw = { ...minimal(), workers: 8, listen: { host: '127.0.0.1', port: 1 }, log: { access: true } };
    const c = buildConfig(raw, 'x', { SLUICE_WORKERS: '2', SLUICE_LISTEN_PORT: '2', SLUICE_ACCESS_LOG: 'off', SLUICE_LOG_LEVEL: 'warn' });
    assert.equal(c.workers, 2);
    assert.deepEqual(c.listen, { host: '127.0.0.1', port: 2, proxyProtocol: 'off' });
    assert.deepEqual(c.log, { level: 'warn', access: false, accessFile: '' });
  });

  test('nested env leaves', () => {
    const c = buildConfig(minimal(), 'x', {
      SLUICE_CONNECT_TIMEOUT_MS: '250',
      SLUICE_POOL_MAX_IDLE: '7',
      SLUICE_MAX_HEADER_COUNT: '20',
      SLUICE_VIA: 'edge',
    });
    assert.equal(c.timeouts.connectMs, 250);
    assert.equal(c.pool.maxIdlePerHost, 7);
    assert.equal(c.limits.maxHeaderCount, 20);
    assert.equal(c.proxy.via, 'edge');
  });

  test('empty and unrelated variables are ignored', () => {
    const c = buildConfig(minimal(), 'x', { SLUICE_WORKERS: '', SLUICE_NOPE: '1', PATH: '/bin' });
    assert.equal(c.workers, Math.max(1, cpus().length));
  });

  test('unparseable values name the path and the variable', () => {
    assert.deepEqual(issuesOf(minimal(), { SLUICE_WORKERS: 'abc' }), ['workers (from SLUICE_WORKERS) SLUICE_WORKERS must be a number, got "abc"']);
    assert.deepEqual(issuesOf(minimal(), { SLUICE_ACCESS_LOG: 'maybe' }), [
      'log.access (from SLUICE_ACCESS_LOG) SLUICE_ACCESS_LOG must be true or false, got "maybe"',
    ]);
  });

  test('parsed env values are still validated by the schema', () => {
    assert.deepEqual(issuesOf(minimal(), { SLUICE_WORKERS: '1.5' }), ['workers must be an integer, got 1.5']);
    assert.deepEqual(issuesOf(minimal(), { SLUICE_LISTEN_PORT: '70000' }), ['listen.port must be <= 65535, got 70000']);
    assert.deepEqual(issuesOf(minimal(), { SLUICE_LOG_LEVEL: 'loud' }), ['log.level must be one of debug, info, warn, error, got "loud"']);
  });

  test('the caller’s raw object is not modified', () => {
    const raw = minimal();
    const before = structuredClone(raw);
    buildConfig(raw, 'x', { SLUICE_WORKERS: '3', SLUICE_LISTEN_PORT: '1' });
    assert.deepEqual(raw, before);
  });

  test('ENV_VARS: names unique, all SLUICE_, each a leaf settable from text', () => {
    assert.ok(ENV_VARS.length >= 20, `only ${ENV_VARS.length} variables`);
    const names = ENV_VARS.map((v) => v.name);
    assert.equal(new Set(names).size, names.length, `duplicates in ${names.join(', ')}`);
    for (const v of ENV_VARS) {
      assert.match(v.name, /^SLUICE_[A-Z0-9_]+$/);
      assert.ok(['integer', 'number', 'string', 'boolean'].includes(v.schema.kind), `${v.name} is a ${v.schema.kind}`);
      assert.ok(v.path.length >= 1);
    }
    const byName = new Map(ENV_VARS.map((v) => [v.name, v.path.join('.')]));
    assert.equal(byName.get('SLUICE_WORKERS'), 'workers');
    assert.equal(byName.get('SLUICE_LISTEN_PORT'), 'listen.port');
    assert.equal(byName.get('SLUICE_ACCESS_LOG'), 'log.access');
    assert.equal(byName.get('SLUICE_TOTAL_TIMEOUT_MS'), 'timeouts.totalMs');
  });

  test('ENV_VARS: every variable applies to the path it names', () => {
    // SLUICE_KAFKA_* have cross-field rules of their own (test/unit/kafka-config.test.ts).
    const samples: Record<string, string> = { SLUICE_LISTEN_HOST: '127.0.0.1', SLUICE_EVENTS_KEY: 'client+header:x-user' };
    for (const v of ENV_VARS) {
      if (v.path[0] === 'kafka') continue;
      const s = v.schema;
      let text: string;
      let want: unknown;
      if (s.kind === 'boolean') [text, want] = [String(!s.default), !s.default];
      else if (s.kind === 'integer' || s.kind === 'number') {
        const n = s.max !== undefined && s.max < 2 ? s.max : Math.max(s.min ?? 0, 2);
        [text, want] = [String(n), n];
      } else if (s.kind === 'string') {
        const t = s.enum?.find((e) => e !== s.default) ?? samples[v.name] ?? 'x-env-test';
        [text, want] = [t, t];
      } else assert.fail(`${v.name} is not a leaf`);
      const c = buildConfig(minimal(), 'x', { [v.name]: text }) as unknown as Raw;
      let node: unknown = c;
      for (const k of v.path) node = (node as Raw)[k];
      assert.equal(node, want, v.name);
    }
  });

  test('the schema root declares no env of its own', () => {
    assert.equal(CONFIG_SCHEMA.env, undefined);
  });
});

describe('buildConfig: result is deep-frozen', () => {
  const c = buildConfig(
    withRoutes({ name: 'r', match: { path: { prefix: '/a' }, methods: ['GET'], headers: [{ name: 'h', exact: 'v' }] }, rewrite: { prefix: '/' }, action: proxyTo('app') }),
  );

  test('every level is frozen', () => {
    const seen: unknown[] = [];
    const walk = (v: unknown, path: string): void => {
      if (typeof v !== 'object' || v === null) return;
      assert.ok(Object.isFrozen(v), `${path} is not frozen`);
      seen.push(v);
      for (const [k, x] of Object.entries(v)) walk(x, `${path}.${k}`);
    };
    walk(c, 'config');
    assert.ok(seen.length > 20, `only ${seen.length} objects walked`);
  });

  test('writes throw in strict mode', () => {
    assert.throws(() => {
      (c as unknown as Raw).workers = 9;
    }, TypeError);
    assert.throws(() => {
      (c.routes[0]?.match.methods as string[]).push('POST');
    }, TypeError);
    assert.throws(() => {
      (c.upstreams.app?.hosts[0] as unknown as Raw).weight = 2;
    }, TypeError);
    assert.throws(() => {
      (c.routes[0]?.match.path as Raw).prefix = '/b';
    }, TypeError);
  });
});

describe('readConfigFile / loadConfig', () => {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-config-test-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const file = (name: string, text: string): string => {
    const p = join(dir, name);
    writeFileSync(p, text);
    return p;
  };

  test('YAML', () => {
    const p = file(
      'a.yaml',
      ['workers: 2', 'upstreams:', '  app:', '    hosts:', '      - { address: "127.0.0.1:9001", weight: 2 }', 'routes:', '  - name: d', '    action: { type: proxy, upstream: app }', ''].join('\n'),
    );
    assert.deepEqual(readConfigFile(p), {
      workers: 2,
      upstreams: { app: { hosts: [{ address: '127.0.0.1:9001', weight: 2 }] } },
      routes: [{ name: 'd', action: { type: 'proxy', upstream: 'app' } }],
    });
    const c = loadConfig(p, { SLUICE_LISTEN_PORT: '1234' });
    assert.equal(c.workers, 2);
    assert.equal(c.listen.port, 1234);
    assert.equal(c.upstreams.app?.hosts[0]?.weight, 2);
  });

  test('JSON', () => {
    const p = file('a.json', JSON.stringify(minimal()));
    assert.deepEqual(readConfigFile(p), minimal());
    assert.equal(loadConfig(p, {}).routes[0]?.name, 'default');
  });

  test('missing file', () => {
    const p = join(dir, 'missing.yaml');
    assert.throws(
      () => readConfigFile(p),
      (e: unknown) => {
        assert.ok(e instanceof ConfigError);
        assert.equal(e.issues.length, 1);
        assert.equal(e.issues[0]?.path, '(file)');
        assert.match(e.issues[0]?.message ?? '', /^cannot be read: ENOENT/);
        assert.ok(e.message.includes(p));
        return true;
      },
    );
  });

  test('invalid JSON', () => {
    const p = file('bad.json', '{"workers": 1,');
    assert.throws(
      () => readConfigFile(p),
      (e: unknown) => e instanceof ConfigError && e.issues.length === 1 && e.issues[0]?.path === '(file)' && /^is not valid JSON: /.test(e.issues[0].message),
    );
  });

  test('invalid YAML', () => {
    const p = file('bad.yaml', 'workers: [1, 2\nroutes: {');
    assert.throws(
      () => readConfigFile(p),
      (e: unknown) => e instanceof ConfigError && e.issues.length === 1 && e.issues[0]?.path === '(file)' && /^is not valid YAML: /.test(e.issues[0].message),
    );
  });

  test('a valid file with a bad config names the file and the path', () => {
    const p = file('semantic.yaml', 'upstreams: {}\nroutes: [ { name: d, action: { type: proxy, upstream: app } } ]\n');
    assert.throws(
      () => loadConfig(p, {}),
      (e: unknown) =>
        e instanceof ConfigError &&
        e.message.startsWith(`invalid configuration: ${p}:\n`) &&
        e.message.includes('routes[0].action.upstream names an unknown upstream "app" (defined: none)'),
    );
  });

  test('an empty YAML file is refused as a missing root', () => {
    const p = file('empty.yaml', '');
    assert.throws(() => loadConfig(p, {}), (e: unknown) => e instanceof ConfigError && e.issues.map((i) => `${i.path} ${i.message}`).join() === '(root) is required');
  });

  test('the shipped example loads', () => {
    const c = loadConfig(resolve(__dirname, '../../../examples/sluice.yaml'), {});
    assert.ok(c.routes.length > 0);
    assert.ok(Object.isFrozen(c));
  });
});

describe('shared/errors registry', () => {
  const codes = Object.keys(ERRORS) as ErrorCode[];

  test('every code has a status, a source, a message and a retryable flag', () => {
    assert.ok(codes.length >= 10);
    for (const code of codes) {
      const s = ERRORS[code];
      assert.match(code, /^SLUICE_ERR_[A-Z0-9_]+$/);
      assert.ok(['upstream', 'downstream', 'internal', 'config'].includes(s.source), `${code} source ${s.source}`);
      assert.equal(typeof s.retryable, 'boolean', code);
      assert.ok(s.message.length > 0, code);
      if (s.source === 'config') assert.equal(s.status, 0, code);
      else assert.ok(Number.isInteger(s.status) && s.status >= 400 && s.status <= 599, `${code} status ${s.status}`);
    }
  });

  test('retryable means nothing reached the upstream: connect failures yes, failures after sending no', () => {
    for (const c of codes) if (ERRORS[c].retryable) assert.equal(ERRORS[c].source, 'upstream', c);
    assert.equal(ERRORS.SLUICE_ERR_UPSTREAM_CONNECT.retryable, true);
    assert.equal(ERRORS.SLUICE_ERR_UPSTREAM_CONNECT_TIMEOUT.retryable, true);
    for (const c of ['SLUICE_ERR_UPSTREAM_HEAD_TIMEOUT', 'SLUICE_ERR_UPSTREAM_READ_TIMEOUT', 'SLUICE_ERR_UPSTREAM_CLOSED', 'SLUICE_ERR_UPSTREAM_RESET'] as const) {
      assert.equal(ERRORS[c].retryable, false, c);
    }
  });

  test('SluiceError carries the registry entry and a plain record', () => {
    const e = sluiceError('SLUICE_ERR_UPSTREAM_CONNECT_TIMEOUT', 'after 5000 ms');
    assert.ok(e instanceof Error);
    assert.equal(e.name, 'SluiceError');
    assert.equal(e.status, 504);
    assert.equal(e.source, 'upstream');
    assert.equal(e.retryable, true);
    assert.equal(e.message, 'connecting to the upstream timed out: after 5000 ms');
    assert.equal(new SluiceError('SLUICE_ERR_NO_ROUTE').message, 'no route matches the request');
    const rec = e.toRecord();
    assert.deepEqual(rec, { code: 'SLUICE_ERR_UPSTREAM_CONNECT_TIMEOUT', message: 'connecting to the upstream timed out: after 5000 ms', source: 'upstream' });
    assert.deepEqual(structuredClone(rec), rec);
  });

  test('toSluiceError keeps SluiceErrors and wraps anything else as internal', () => {
    const e = sluiceError('SLUICE_ERR_NO_ROUTE');
    assert.equal(toSluiceError(e), e);
    const w = toSluiceError(new RangeError('boom'));
    assert.equal(w.code, 'SLUICE_ERR_INTERNAL');
    assert.equal(w.status, 500);
    assert.equal(w.message, 'internal proxy error: boom');
    assert.equal(toSluiceError('str').message, 'internal proxy error: str');
  });

  test('statusLine for known and unknown statuses', () => {
    assert.equal(statusLine(200), '200 OK');
    assert.equal(statusLine(404), '404 Not Found');
    assert.equal(statusLine(431), '431 Request Header Fields Too Large');
    assert.equal(statusLine(499), '499 Client Closed Request');
    assert.equal(statusLine(504), '504 Gateway Timeout');
    assert.equal(statusLine(418), '418');
    assert.equal(statusLine(299), '299');
    // Made once per status: the second call gives the same lines.
    for (const st of [200, 418, 504]) assert.equal(statusLine(st), statusLine(st));
    assert.equal(statusLine(200), '200 OK');
    assert.equal(statusLine(418), '418');
  });

  test('every registry status has a reason phrase', () => {
    for (const code of codes) {
      const st = ERRORS[code].status;
      if (st === 0) continue;
      assert.match(statusLine(st), new RegExp(`^${st} [A-Z]`), code);
    }
  });
});

describe('buildConfig: resilience options', () => {
  const withRoute = (extra: Raw): Raw => {
    const c = minimal();
    c.routes = [{ name: 'r', action: proxyTo('app'), ...extra }];
    return c;
  };
  const withUpstream = (extra: Raw): Raw => {
    const c = minimal();
    c.upstreams = { app: { hosts: [{ address: 'a:1' }], ...extra } };
    return c;
  };

  test('defaults of present sections (retry, rateLimit, breaker, outlierDetection, healthCheck)', () => {
    const r = buildConfig(withRoute({ retry: {}, rateLimit: { rate: 5 } })).routes[0];
    assert.deepEqual(r?.retry, {
      attempts: 2,
      on: ['connect', 'reset', '502', '503', '504'],
      idempotencyKey: false,
      backoffBaseMs: 25,
      backoffMaxMs: 250,
      maxRetryAfterMs: 1000,
      budgetPercent: 20,
      budgetMin: 3,
    });
    assert.deepEqual(r?.rateLimit, { key: 'client_ip', rate: 5, headers: 'rejected' });
    const u = buildConfig(withUpstream({ breaker: {}, outlierDetection: {}, healthCheck: {} })).upstreams.app;
    assert.deepEqual(u?.breaker, {
      consecutiveFailures: 5,
      failureRatio: 0.5,
      windowMs: 10000,
      minRequests: 20,
      openMs: 5000,
      halfOpenProbes: 3,
      closeAfter: 3,
      failOn: ['connect', 'timeout', 'reset', '5xx'],
    });
    assert.deepEqual(u?.outlierDetection, { consecutiveErrors: 5, baseEjectionMs: 30000, maxEjectionMs: 300000, maxEjectionPercent: 10 });
    assert.deepEqual(u?.healthCheck, { type: 'http', path: '/', expectStatuses: ['200-399'], intervalMs: 2000, timeoutMs: 1000, jitter: 0.1, rise: 2, fall: 3 });
    assert.deepEqual(buildConfig(minimal()).rateLimit, { tableSize: 65536, idleMs: 60000 });
  });

  test('absent sections stay absent (features off)', () => {
    const c = buildConfig(minimal());
    assert.equal(c.routes[0]?.retry, undefined);
    assert.equal(c.routes[0]?.rateLimit, undefined);
    assert.equal(c.upstreams.app?.breaker, undefined);
    assert.equal(c.upstreams.app?.healthCheck, undefined);
    assert.equal(c.upstreams.app?.outlierDetection, undefined);
  });

  const cases: [string, Raw, string[]][] = [
    ['rate key', withRoute({ rateLimit: { rate: 1, key: 'ip' } }), ['routes[0].rateLimit.key must be parts joined by +: client_ip, route, header:NAME, got "ip"']],
    ['rate required', withRoute({ rateLimit: { burst: 3 } }), ['routes[0].rateLimit.rate is required']],
    ['rate too small for the burst', withRoute({ rateLimit: { rate: 0.001, burst: 10000 } }), []],
    ['retry on', withRoute({ retry: { on: ['500'] } }), ['routes[0].retry.on[0] must be one of connect, timeout, reset, 502, 503, 504, 5xx, got "500"']],
    ['backoff cap below base', withRoute({ retry: { backoffBaseMs: 100, backoffMaxMs: 50 } }), ['routes[0].retry.backoffMaxMs must be >= backoffBaseMs (100), got 50']],
    ['breaker failOn', withUpstream({ breaker: { failOn: ['4xx'] } }), ['upstreams.app.breaker.failOn[0] must be one of connect, timeout, reset, 5xx, got "4xx"']],
    ['status range', withUpstream({ healthCheck: { expectStatuses: ['399-200'] } }), ['upstreams.app.healthCheck.expectStatuses[0] is an empty range 399-200']],
    ['tcp with a path', withUpstream({ healthCheck: { type: 'tcp', path: '/x' } }), ['upstreams.app.healthCheck.type is tcp: path and host only apply to http checks']],
    ['ejection cap', withUpstream({ outlierDetection: { baseEjectionMs: 10000, maxEjectionMs: 5000 } }), [
      'upstreams.app.outlierDetection.maxEjectionMs must be >= baseEjectionMs (10000), got 5000',
    ]],
    ['table size', { ...minimal(), rateLimit: { tableSize: 1000 } }, ['rateLimit.tableSize must be a power of two, got 1000']],
  ];
  for (const [name, c, want] of cases) {
    test(name, () => {
      if (name === 'rate too small for the burst') {
        const issues = issuesOf(c);
        assert.equal(issues.length, 1);
        assert.match(issues[0] as string, /^routes\[0\]\.rateLimit /);
        return;
      }
      assert.deepEqual(issuesOf(c), want);
    });
  }

  test('routes sharing a zone must share the policy', () => {
    const c = minimal();
    c.routes = [
      { name: 'a', match: { path: { prefix: '/a' } }, action: proxyTo('app'), rateLimit: { rate: 5, zone: 'z' } },
      { name: 'b', action: proxyTo('app'), rateLimit: { rate: 6, zone: 'z' } },
    ];
    assert.deepEqual(issuesOf(c), ['routes[1].rateLimit.zone z is shared with routes[0].rateLimit, which sets another rate or burst (a zone has one policy)']);
  });

  test('ACL prefixes and addresses are checked; port collisions between listeners are refused', () => {
    const c = minimal();
    c.listen = { acl: [{ allow: '10.0.0.0/33' }, { deny: '::1/129' }, { allow: '::ffff:10.0.0.1' }, { deny: '0.0.0.0/0' }] };
    assert.deepEqual(issuesOf(c), [
      'listen.acl[0].allow must be an IPv4 or IPv6 address with an optional /prefix (got "10.0.0.0/33": prefix over 32)',
      'listen.acl[1].deny must be an IPv4 or IPv6 address with an optional /prefix (got "::1/129": prefix over 128)',
    ]);
    const d = minimal();
    d.listen = { port: 9000 };
    d.admin = { port: 9000 };
    assert.deepEqual(issuesOf(d), ['admin.port 9000 is also listen.port']);
  });

  test('upstream client certificate needs its key', () => {
    const c = minimal();
    c.upstreams = { app: { hosts: [{ address: 'a:1' }], tls: { certFile: '/x.pem' } } };
    assert.deepEqual(issuesOf(c), ['upstreams.app.tls.keyFile is needed too: a client certificate takes certFile and keyFile']);
  });

  test('retry only on proxy and split routes', () => {
    const c = minimal();
    c.routes = [{ name: 'r', action: { type: 'respond', body: 'x' }, retry: {} }];
    assert.deepEqual(issuesOf(c), ['routes[0].retry only applies to proxy and split routes (this one is respond)']);
  });
});
