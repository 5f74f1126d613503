/**
 * Request events are written as JSON straight into bytes (src/workers/event-json.ts); the
 * bytes must be exactly JSON.stringify's text of the event object, whatever the strings hold.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildConfig } from '../../src/shared/config';
import { sluiceError } from '../../src/shared/errors';
import type { Session } from '../../src/shared/phases';
import { JsonBytes } from '../../src/workers/event-json';
import { EventsPhase } from '../../src/workers/events';
import type { KafkaLink } from '../../src/workers/kafka-link';
import { makeSession } from '../helpers';

const NASTY = [
  '',
  'plain /path?x=1',
  'quote " and backslash \\ and slash /',
  Array.from({ length: 32 }, (_, i) => String.fromCharCode(i)).join('') + '\u007f',
  'é, 日本, emoji 😀',
  'lone \ud800 high, lone \udc00 low, reversed \udc00\ud800',
  '\u2028\u2029 line separators',
];

test('JsonBytes.str writes what JSON.stringify writes, for ASCII, escapes, non-ASCII and lone surrogates', () => {
  const j = new JsonBytes(8); // small: the buffer has to grow
  for (const s of [...NASTY, 'x'.repeat(5000), '"'.repeat(3000)]) {
    j.reset();
    j.str(s);
    assert.equal(j.view().toString('utf8'), JSON.stringify(s), JSON.stringify(s).slice(0, 80));
  }
  j.reset();
  j.raw('[');
  j.num(0);
  j.raw(',');
  j.num(-1.5);
  j.raw(',');
  j.num(1e21);
  j.raw(',');
  j.num(Number.NaN);
  j.raw(',');
  j.strOrNull(null);
  j.raw(',');
  j.strArray(['a', 'b"']);
  j.raw(']');
  assert.equal(j.view().toString(), JSON.stringify([0, -1.5, 1e21, Number.NaN, null, ['a', 'b"']]));
});

test('JsonBytes.int and .milli write what JSON.stringify writes for integers and k / 1000', () => {
  const j = new JsonBytes(4);
  const ints = [0, 1, 9, 10, 99, 100, -1, -10, 2 ** 31, Date.now(), Number.MAX_SAFE_INTEGER, -Number.MAX_SAFE_INTEGER];
  const ks = [0, 1, 5, 10, 100, 999, 1000, 1001, 1010, 1100, 12345, -1, -5, -1000, -1234, 10 ** 14 + 7, 10 ** 15 + 3];
  for (let i = 0; i < 2000; i++) {
    ints.push(Math.floor(Math.random() * 2 ** (1 + (i % 53))) * (i % 3 === 0 ? -1 : 1));
    ks.push(Math.round(Math.random() * 10 ** (1 + (i % 12)) * (i % 5 === 0 ? -1 : 1)));
  }
  for (const v of ints) {
    j.reset();
    j.int(v);
    assert.equal(j.view().toString(), JSON.stringify(v));
    j.reset();
    j.num(v);
    assert.equal(j.view().toString(), JSON.stringify(v));
  }
  for (const k of ks) {
    j.reset();
    j.milli(k);
    assert.equal(j.view().toString(), JSON.stringify(k / 1000), `k = ${k}`);
  }
});

test('an event is JSON.stringify of its fields, byte for byte', () => {
  const cfg = buildConfig({
    kafka: { brokers: '127.0.0.1:1' },
    events: { enabled: true, topic: 't', headers: ['X-Tenant', 'user-agent', 'x-tenant', 'x-absent'] },
    routes: [{ name: 'r', action: { type: 'respond' } }],
  });
  const phase = new EventsPhase(cfg.events, {} as KafkaLink, new BigInt64Array(8), 'inst"1', 3, { produced: 0, dropped: 0, sampledOut: 0 });
  const sessions: [Session, ReturnType<typeof sluiceError> | null][] = NASTY.map((text, i) => [
    makeSession({
      method: i % 2 ? 'POST' : 'GET',
      path: `/p/${text}`,
      headers: ['host', `h${text}`, 'x-tenant', text, 'user-agent', 'ua'],
      clientAddress: '::1',
      requestId: `rid-${text}`,
      routeName: text,
      upstreamName: 'app',
      upstreamHost: '10.0.0.1:80',
      lbKey: i % 2 ? '' : `key ${text}`,
      status: 200 + i,
      bytesIn: i * 1000,
      bytesOut: 123456789,
      startedAt: performance.now() - 1.5,
      flags: i % 2 ? [] : ['RL', text],
      tries: i % 3 === 0 ? null : [{ host: '10.0.0.1:80', at: 0, ms: 1.25, outcome: text }, { host: 'b', at: 3, ms: -1, outcome: '' }],
    }),
    i === 2 ? sluiceError('SLUICE_ERR_UPSTREAM_RESET') : null,
  ]);
  sessions.forEach(([s, err], i) => {
    // Up to 2^53 - 1, the largest sequence number written exactly.
    const seq = i === 0 ? Number.MAX_SAFE_INTEGER : i * 1000000007;
    const got = phase.eventJson(s, err, seq).toString('utf8');
    const parsed = JSON.parse(got) as { ts: number; latencyMs: number };
    const want = JSON.stringify({
      seq: String(seq),
      instance: 'inst"1',
      worker: 3,
      ts: parsed.ts,
      requestId: s.requestId,
      client: s.clientAddress,
      method: s.method,
      host: `h${NASTY[i] as string}`,
      path: s.path,
      route: s.routeName,
      upstream: s.upstreamName,
      upstreamHost: s.upstreamHost,
      lbKey: s.lbKey === '' ? null : s.lbKey,
      status: s.status,
      bytesIn: s.bytesIn,
      bytesOut: s.bytesOut,
      latencyMs: parsed.latencyMs,
      attempts: s.tries,
      flags: s.flags,
      error: err === null ? null : err.code,
      // Duplicate names once, absent ones left out (what an object literal built by name gives).
      headers: NASTY[i] === '' ? { 'user-agent': 'ua' } : { 'x-tenant': NASTY[i], 'user-agent': 'ua' },
    });
    assert.equal(got, want, `session ${i}`);
    assert.ok(parsed.latencyMs >= 1.5 && parsed.latencyMs < 60000, String(parsed.latencyMs));
  });
});
