/**
 * Request events: the HTTP worker writes their fields in binary (EventsPhase.eventBinary,
 * src/shared/event-binary.ts) and the producer writes the JSON, natively
 * (sluice_core::event_json) or with the JavaScript twin. Both must give exactly
 * JSON.stringify's text of the event object, whatever the strings hold.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildConfig } from '../../src/shared/config';
import { sluiceError } from '../../src/shared/errors';
import { EVENT_NULL, EventWriter } from '../../src/shared/event-binary';
import { jsNative, loadNative } from '../../src/shared/native';
import type { Session } from '../../src/workers/http/session';
import { EventsPhase } from '../../src/workers/http/phases/events';
import type { KafkaLink } from '../../src/workers/http/kafka/link';
import { NASTY, makeSession } from '../helpers';

const native = loadNative();

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
    const bin = phase.eventBinary(s, err, seq);
    const js = jsNative.formatEventJson(bin);
    const nat = native.formatEventJson(bin);
    assert.ok(js !== null && nat !== null);
    assert.deepEqual(nat, js, `session ${i}: the native JSON equals the JavaScript twin's`);
    const got = js.toString('utf8');
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

test('malformed binary events: both formatters refuse every truncation and trailing bytes', () => {
  const w = new EventWriter(8);
  w.num(1);
  w.str('inst');
  for (const v of [2, 3]) w.num(v);
  for (let i = 0; i < 8; i++) w.str(`s${i}`);
  w.strOrNull(null);
  for (const v of [200, 1, 2, 1500]) w.num(v);
  w.u32(1);
  w.str('h');
  w.num(0);
  w.num(250);
  w.str('é');
  w.u32(0);
  w.strOrNull(null);
  w.u32(EVENT_NULL);
  const bin = Buffer.from(w.view());
  const whole = jsNative.formatEventJson(bin);
  assert.ok(whole !== null);
  assert.deepEqual(native.formatEventJson(bin), whole);
  assert.match(whole.toString(), /"attempts":\[\{"host":"h","at":0,"ms":0.25,"outcome":"é"\}\],"flags":\[\],"error":null\}$/);
  for (let cut = 0; cut < bin.length; cut++) {
    assert.equal(jsNative.formatEventJson(bin.subarray(0, cut)), null, `js, cut at ${cut}`);
    assert.equal(native.formatEventJson(bin.subarray(0, cut)), null, `native, cut at ${cut}`);
  }
  const longer = Buffer.concat([bin, Buffer.from([0])]);
  assert.equal(jsNative.formatEventJson(longer), null);
  assert.equal(native.formatEventJson(longer), null);
});

test('numbers: both formatters write what JSON.stringify writes', () => {
  const values = [0, -0, 7, -7, 1.5, 0.1, 123.456, 1e21, 1.5e-7, 2 ** 53, -(2 ** 60), Number.NaN, Number.POSITIVE_INFINITY, 1 / 3, 5e-324];
  for (const v of values) {
    const w = new EventWriter();
    w.num(v); // seq
    w.str('i');
    w.num(v); // worker
    w.num(v); // ts
    for (let i = 0; i < 9; i++) w.str('');
    for (const x of [v, v, v, v]) w.num(x); // status, bytesIn, bytesOut, latency (thousandths)
    w.u32(EVENT_NULL);
    w.u32(0);
    w.strOrNull(null);
    w.u32(EVENT_NULL);
    const bin = Buffer.from(w.view());
    const js = jsNative.formatEventJson(bin);
    assert.ok(js !== null);
    assert.equal(native.formatEventJson(bin)?.toString(), js.toString(), `v = ${v}`);
    const n = JSON.stringify(v);
    assert.ok(js.toString().includes(`"status":${n},"bytesIn":${n},"bytesOut":${n},"latencyMs":${JSON.stringify(v / 1000)}`), `${js.toString()} for ${v}`);
  }
});
