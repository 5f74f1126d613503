/**
 * Request events end to end (docs/kafka.md, "Request events"): the real Sluice process (primary,
 * two HTTP workers, the producer child process) proxies real requests to a real upstream and
 * produces one JSON event per request to a real broker (the test broker of
 * test/kafka-helpers.ts); a KafkaConsumer reads the topic back. Checked: exactly one event per
 * request with the right fields (status, route, request id as answered, upstream, the
 * load-balancing key, attempts, error code), keys as configured, gap-free unique sequence numbers across both workers,
 * sensitive headers kept out (and refused by the config check), and the `sample` policy.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type AddressInfo } from 'node:net';
import type { Message } from '@confluentinc/kafka-javascript';

import { tempFile, type Reply, request, runLimited, type Running, runSluice, startSluice, startUpstream, type Upstream } from '../helpers';
import { IT_BROKERS, createTopic, readTopic, startBroker, uniqueTopic } from '../kafka-helpers';

const T = { timeout: 120000 };

interface Event {
  seq: string;
  instance: string;
  worker: number;
  ts: number;
  requestId: string;
  client: string;
  method: string;
  host: string;
  path: string;
  route: string;
  upstream: string;
  upstreamHost: string;
  lbKey: string | null;
  status: number;
  bytesIn: number;
  bytesOut: number;
  latencyMs: number;
  attempts: { host: string; at: number; ms: number; outcome: string }[] | null;
  flags: string[];
  error: string | null;
  headers?: Record<string, string>;
}

/** A 127.0.0.1 port nothing listens on (bound, then closed). */
async function deadPort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as AddressInfo).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}


/** Reads `topic` until `n` records arrived, then keeps reading `quietMs` more to catch extras. */
async function readExactly(topic: string, n: number, quietMs = 2000): Promise<Message[]> {
  let reachedAt = 0;
  return readTopic(topic, {
    partitions: 3,
    timeoutMs: 40000,
    until: (msgs) => {
      if (msgs.length < n) return false;
      if (reachedAt === 0) reachedAt = Date.now();
      return Date.now() - reachedAt >= quietMs;
    },
  });
}

function headerOf(m: Message, name: string): string | undefined {
  for (const h of m.headers ?? []) {
    const v = h[name];
    if (v !== undefined) return v.toString();
  }
  return undefined;
}

function eventOf(m: Message): Event {
  assert.ok(m.value !== null, 'an event has a value');
  return JSON.parse(m.value.toString('utf8')) as Event;
}

function header(r: Reply, name: string): string {
  const v = r.headers[name];
  assert.equal(typeof v, 'string', `response header ${name}`);
  return v as string;
}

describe('request events (real Sluice, real broker)', () => {
  let upstream: Upstream;
  let dead: number;
  const running: Running[] = [];

  before(async () => {
    await startBroker();
    upstream = await startUpstream();
    dead = await deadPort();
  });

  after(async () => {
    for (const r of running) await r.stop();
    await upstream?.close();
  });

  function config(topic: string, events: Record<string, unknown>, kafka: Record<string, unknown> = {}): Record<string, unknown> {
    return {
      kafka: { brokers: IT_BROKERS, profile: 'latency', statisticsIntervalMs: 0, ...kafka },
      events: { enabled: true, topic, ...events },
      upstreams: {
        // Hashed on x-user, so that events carry the key the pick used (lbKey).
        app: { balance: 'ketama', hashKey: 'header:x-user', hosts: [{ address: upstream.address }] },
        gone: { hosts: [{ address: `127.0.0.1:${dead}` }] },
      },
      routes: [
        { name: 'ok', match: { path: { prefix: '/ok' } }, action: { type: 'proxy', upstream: 'app' } },
        { name: 'dead', match: { path: { prefix: '/dead' } }, action: { type: 'proxy', upstream: 'gone' } },
      ],
    };
  }

  // Both fire-and-forget paths of the producer: the native client and the JavaScript ones.
  for (const native of [true, false]) {
    test(`one event per request: fields, keys, request ids, gap-free sequence across workers, no sensitive headers (${native ? 'native' : 'JavaScript'} fire-and-forget path)`, T, async () => {
      const topic = uniqueTopic('events');
      await createTopic(topic, 3);
      const sluice = await startSluice(config(topic, { key: 'route+client', headers: ['x-user'] }, { nativeFireAndForget: native }));
      running.push(sluice);

      type Kind = 'ok' | 'none' | 'dead';
      const kinds: Kind[] = [];
      for (let i = 0; i < 90; i++) kinds.push((['ok', 'ok', 'none', 'dead', 'ok', 'none'] as const)[i % 6] as Kind);
      const sent = await runLimited(
        kinds.map((kind, i) => async () => {
          const path = kind === 'ok' ? `/ok/${i}` : kind === 'dead' ? `/dead/${i}` : `/nowhere/${i}`;
          const reply = await request(sluice.port, {
            path,
            headers: { 'x-user': `user-${i % 7}`, authorization: `Bearer secret-${i}`, cookie: `session=secret-${i}` },
          });
          return { kind, path, i, reply };
        }),
        10,
      );
      for (const s of sent) {
        const want = s.kind === 'ok' ? 200 : s.kind === 'none' ? 404 : 502;
        assert.equal(s.reply.status, want, `${s.path}: ${s.reply.body.toString()}`);
      }
      // The upstream got the Authorization header (proxied), the events below must not.
      assert.ok(upstream.seen.some((r) => r.headers.authorization !== undefined));

      const msgs = await readExactly(topic, sent.length);
      assert.equal(msgs.length, sent.length, 'exactly one event per request');

      const byId = new Map<string, { ev: Event; msg: Message }>();
      for (const msg of msgs) {
        const ev = eventOf(msg);
        assert.ok(!byId.has(ev.requestId), `duplicate event for request ${ev.requestId}`);
        byId.set(ev.requestId, { ev, msg });
      }

      const workers = new Set<number>();
      const instances = new Set<string>();
      for (const s of sent) {
        const rid = header(s.reply, 'x-request-id');
        const got = byId.get(rid);
        assert.ok(got !== undefined, `no event for ${s.path} (request id ${rid})`);
        const { ev, msg } = got;
        workers.add(ev.worker);
        instances.add(ev.instance);
        assert.equal(ev.method, 'GET');
        assert.equal(ev.path, s.path);
        assert.equal(ev.status, s.reply.status);
        assert.equal(ev.client, '127.0.0.1');
        assert.match(ev.host, /^127\.0\.0\.1:\d+$/);
        assert.equal(typeof ev.latencyMs, 'number');
        assert.ok(ev.latencyMs >= 0);
        assert.ok(Array.isArray(ev.flags));
        // Every attempt lies inside the request (regression: an attempt's start was rounded to
        // the millisecond before its duration was taken from it, so a fast connect refusal
        // could come out negative). Each figure is rounded to the microsecond.
        for (const a of ev.attempts ?? []) {
          assert.ok(a.at >= 0 && a.ms >= 0 && a.at + a.ms <= ev.latencyMs + 0.002, `attempt outside the request: ${JSON.stringify(ev)}`);
        }
        // Only the configured header, and never Authorization or Cookie.
        assert.deepEqual(ev.headers, { 'x-user': `user-${s.i % 7}` });
        const raw = msg.value?.toString('utf8') ?? '';
        assert.ok(!raw.includes('secret-'), `sensitive header value leaked into the event: ${raw}`);
        assert.ok(!/authorization|cookie/i.test(raw), `sensitive header name in the event: ${raw}`);
        // Kafka header: the request id; key: route|client.
        assert.equal(headerOf(msg, 'x-request-id'), rid);
        assert.equal(msg.key?.toString(), `${ev.route}|127.0.0.1`);

        switch (s.kind) {
          case 'ok':
            assert.equal(ev.route, 'ok');
            assert.equal(ev.upstream, 'app');
            assert.equal(ev.upstreamHost, upstream.address);
            assert.equal(ev.lbKey, `user-${s.i % 7}`);
            assert.equal(ev.error, null);
            assert.ok(ev.bytesOut > 0, 'bytesOut counts the proxied response');
            assert.ok(Array.isArray(ev.attempts) && ev.attempts.length === 1, `attempts: ${JSON.stringify(ev.attempts)}`);
            assert.equal(ev.attempts[0]?.host, upstream.address);
            assert.equal(ev.attempts[0]?.outcome, '');
            assert.ok((ev.attempts[0]?.ms ?? -1) >= 0);
            break;
          case 'dead':
            assert.equal(ev.route, 'dead');
            assert.equal(ev.upstream, 'gone');
            assert.equal(ev.upstreamHost, `127.0.0.1:${dead}`);
            assert.equal(ev.lbKey, null, 'round robin hashes no key');
            assert.equal(ev.error, 'SLUICE_ERR_UPSTREAM_CONNECT');
            assert.equal(header(s.reply, 'x-sluice-error'), 'SLUICE_ERR_UPSTREAM_CONNECT');
            assert.ok(ev.flags.includes('UF'), `flags: ${JSON.stringify(ev.flags)}`);
            assert.ok(Array.isArray(ev.attempts) && ev.attempts.length >= 1, `attempts: ${JSON.stringify(ev.attempts)}`);
            for (const a of ev.attempts) {
              assert.equal(a.host, `127.0.0.1:${dead}`);
              assert.equal(a.outcome, 'SLUICE_ERR_UPSTREAM_CONNECT');
              assert.ok(a.ms >= 0);
            }
            break;
          case 'none':
            assert.equal(ev.route, '');
            assert.equal(ev.upstream, '');
            assert.equal(ev.lbKey, null);
            assert.equal(ev.error, 'SLUICE_ERR_NO_ROUTE');
            assert.equal(header(s.reply, 'x-sluice-error'), 'SLUICE_ERR_NO_ROUTE');
            assert.ok(ev.attempts === null || ev.attempts.length === 0, `attempts: ${JSON.stringify(ev.attempts)}`);
            break;
        }
      }
      assert.equal(instances.size, 1, 'one instance name');
      assert.deepEqual([...workers].sort(), [0, 1], 'both workers produced events');

      // Sequence numbers: strings of integers, unique, exactly 1..N (nothing was dropped).
      const seqs = msgs.map((m) => eventOf(m).seq);
      for (const q of seqs) assert.match(q, /^[1-9][0-9]*$/);
      const sorted = seqs.map(Number).sort((a, b) => a - b);
      assert.deepEqual(
        sorted,
        Array.from({ length: sent.length }, (_, i) => i + 1),
      );
      // Same key → same partition (keys go through the producer's partitioner).
      const partOfKey = new Map<string, number>();
      for (const m of msgs) {
        const k = m.key?.toString() ?? '';
        const p = partOfKey.get(k);
        if (p === undefined) partOfKey.set(k, m.partition);
        else assert.equal(m.partition, p, `key ${k} on two partitions`);
      }

      assert.equal(await sluice.stop(), 0);
    });
  }

  test('key header:x-user keys each event by that header; Authorization only when explicitly allowed', T, async () => {
    const topic = uniqueTopic('events-key');
    await createTopic(topic, 3);
    const sluice = await startSluice(config(topic, { key: 'header:x-user', headers: ['Authorization'], allowSensitiveHeaders: true }));
    running.push(sluice);
    const sent = await runLimited(
      Array.from(
        { length: 24 },
        (_, i) => () =>
          request(sluice.port, {
            path: `/ok/${i}`,
            headers: { 'x-user': `u${i % 4}`, cookie: 'sid=never', ...(i % 2 === 0 ? { authorization: `Basic allowed-${i}` } : {}) },
          }),
      ),
      8,
    );
    for (const r of sent) assert.equal(r.status, 200);
    const msgs = await readExactly(topic, sent.length, 1000);
    assert.equal(msgs.length, sent.length);
    const want = new Map(sent.map((r, i) => [header(r, 'x-request-id'), i]));
    for (const m of msgs) {
      const ev = eventOf(m);
      const i = want.get(ev.requestId);
      assert.ok(i !== undefined, `unexpected event ${ev.requestId}`);
      assert.equal(m.key?.toString(), `u${i % 4}`, `key of ${ev.requestId}`);
      // Listed and allowed: copied when present; Cookie (not listed) never.
      assert.deepEqual(ev.headers, i % 2 === 0 ? { authorization: `Basic allowed-${i}` } : {});
      assert.ok(!(m.value?.toString() ?? '').includes('sid=never'));
    }
    assert.equal(await sluice.stop(), 0);
  });

  test('policy sample with sampleRate 0 keeps every 5xx and no 2xx/4xx', T, async () => {
    const topic = uniqueTopic('events-sample');
    await createTopic(topic, 3);
    const sluice = await startSluice(config(topic, { policy: 'sample', sampleRate: 0, key: 'none' }));
    running.push(sluice);
    const paths: string[] = [];
    for (let i = 0; i < 45; i++) paths.push(i % 3 === 0 ? `/dead/${i}` : i % 3 === 1 ? `/ok/${i}` : `/nowhere/${i}`);
    const replies = await runLimited(
      paths.map((path) => () => request(sluice.port, { path })),
      8,
    );
    const fivexx = new Set<string>();
    replies.forEach((r, i) => {
      const p = paths[i] as string;
      assert.equal(r.status, p.startsWith('/dead') ? 502 : p.startsWith('/ok') ? 200 : 404);
      if (r.status >= 500) fivexx.add(header(r, 'x-request-id'));
    });
    assert.equal(fivexx.size, 15);
    const msgs = await readExactly(topic, fivexx.size);
    assert.equal(msgs.length, fivexx.size, 'exactly the 5xx events');
    const seen = new Set<string>();
    for (const m of msgs) {
      const ev = eventOf(m);
      assert.equal(ev.status, 502);
      assert.ok(fivexx.has(ev.requestId), `unexpected event ${ev.requestId}`);
      seen.add(ev.requestId);
      assert.equal(m.key, null, 'key none → null key');
    }
    assert.equal(seen.size, fivexx.size);
    // Sampled-out events take no sequence number: the kept ones are still 1..n.
    assert.deepEqual(
      msgs.map((m) => Number(eventOf(m).seq)).sort((a, b) => a - b),
      Array.from({ length: fivexx.size }, (_, i) => i + 1),
    );
    assert.equal(await sluice.stop(), 0);
  });

  test('events.headers listing Authorization or Cookie without allowSensitiveHeaders is a config error (exit 2)', T, async () => {
    const base = {
      listen: { host: '127.0.0.1', port: 0 },
      kafka: { brokers: IT_BROKERS },
      upstreams: { app: { hosts: [{ address: '127.0.0.1:9' }] } },
      routes: [{ name: 'all', action: { type: 'proxy', upstream: 'app' } }],
    };
    for (const name of ['authorization', 'Cookie']) {
      const bad = tempFile('bad.json', JSON.stringify({ ...base, events: { enabled: true, topic: 'x', headers: ['x-user', name] } }));
      const r = await runSluice(['--check', '--config', bad]);
      assert.equal(r.code, 2, `${name}: ${r.stderr}`);
      assert.match(r.stderr, /events\.headers\[1\]/);
      assert.match(r.stderr, /allowSensitiveHeaders/);
    }
    const ok = tempFile('ok.json', JSON.stringify({ ...base, events: { enabled: true, topic: 'x', headers: ['x-user', 'authorization'], allowSensitiveHeaders: true } }));
    const r = await runSluice(['--check', '--config', ok]);
    assert.equal(r.code, 0, r.stderr);
  });
});
