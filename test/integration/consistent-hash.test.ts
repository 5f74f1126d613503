/**
 * Consistent-hash load balancing through the real Sluice process (2 workers): requests with
 * the same key reach the same upstream whichever worker takes them; keys spread over hosts.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { request, startSluice, startUpstream, type Running, type Upstream } from '../helpers';

describe('consistent-hash upstream groups', () => {
  const ups: Upstream[] = [];
  let s: Running;

  before(async () => {
    for (let i = 0; i < 3; i++) ups.push(await startUpstream());
    s = await startSluice({
      workers: 2,
      upstreams: {
        k: { balance: 'ketama', hashKey: 'header:x-user', hosts: ups.map((u) => ({ address: u.address })) },
        m: { balance: 'maglev', hashKey: 'cookie:sid', hashBalanceFactor: 0, hosts: ups.map((u) => ({ address: u.address })) },
      },
      routes: [
        { name: 'm', match: { path: { prefix: '/m' } }, action: { type: 'proxy', upstream: 'm' } },
        { name: 'k', action: { type: 'proxy', upstream: 'k' } },
      ],
    });
  });

  after(async () => {
    assert.equal(await s.stop(), 0);
    for (const u of ups) await u.close();
  });

  for (const [path, header] of [
    ['/k', (k: string): Record<string, string> => ({ 'x-user': k })],
    ['/m', (k: string): Record<string, string> => ({ cookie: `theme=dark; sid=${k}` })],
  ] as const) {
    test(`${path}: same key, same upstream; keys spread over all hosts`, async () => {
      const byKey = new Map<string, string>();
      for (let round = 0; round < 3; round++) {
        for (let k = 0; k < 30; k++) {
          const r = await request(s.port, { path, headers: header(`user-${k}`) });
          assert.equal(r.status, 200);
          const port = r.headers['x-upstream-port'] as string;
          const prev = byKey.get(`user-${k}`);
          if (prev !== undefined) assert.equal(port, prev, `user-${k} moved`);
          byKey.set(`user-${k}`, port);
        }
      }
      assert.equal(new Set(byKey.values()).size, 3);
    });
  }

  test('a request without the key is balanced round robin', async () => {
    const ports = new Set<string>();
    for (let i = 0; i < 6; i++) ports.add((await request(s.port, { path: '/k' })).headers['x-upstream-port'] as string);
    assert.ok(ports.size >= 2);
  });
});
