/**
 * Kafka delivery when things go wrong, end to end (docs/kafka.md): the real Sluice process (two
 * HTTP workers, the producer child process) against the test broker of test/kafka-helpers.ts,
 * which these tests stop and start. Checked: with the broker down a sync Kafka route answers
 * 503 (with Retry-After) or 504 within the delivery bounds while proxied traffic is unaffected,
 * and delivery resumes when the broker is back; a producer process killed with SIGKILL is
 * respawned and the workers reconnect; SIGTERM under produce load loses no acknowledged record
 * (every 2xx record is in Kafka at the partition/offset Sluice reported) and no request event
 * of an answered request. Nothing is mocked.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { type Reply, request, runLimited, type Running, sleep, startSluice, startUpstream, type Upstream } from '../helpers';
import { IT_BROKERS, createTopic, readTopic, startBroker, stopBroker, uniqueTopic } from '../kafka-helpers';

const T = { timeout: 150000 };
const PARTITIONS = 3;
const MESSAGE_TIMEOUT_MS = 3000;
const DELIVERY_TIMEOUT_MS = 2000;
/** librdkafka's idempotence and broker-state lines, for withKafkaLog's post-mortem. */
const LIBRDKAFKA_DEBUG = { debug: 'eos,broker' };

interface Placed {
  topic: string;
  partition: number;
  offset: number;
}


const post = (port: number, path: string, body: string, headers: Record<string, string> = {}, timeoutMs = 15000): Promise<Reply> =>
  request(port, { method: 'POST', path, body, headers: { 'content-type': 'text/plain', ...headers }, timeoutMs });

/**
 * Runs `body`; when it fails, the Kafka-related part of Sluice's log (librdkafka's own lines
 * included) goes to the test's output and, shortened, into the error's message: a rare
 * failure in CI is then readable without a rerun.
 */
async function withKafkaLog(s: Running, body: () => Promise<void>): Promise<void> {
  try {
    await body();
  } catch (e) {
    const kafka = s.logs.filter((r) => /kafka|producer|broker/i.test(`${String(r.msg)} ${String(r.role ?? '')} ${String(r.component ?? '')}`));
    console.error(`Sluice's Kafka log, last ${Math.min(200, kafka.length)} of ${kafka.length} records:\n${kafka.slice(-200).map((r) => JSON.stringify(r)).join('\n')}`);
    const digest = kafka
      .slice(-40)
      .map((r) => `${String(r.ts).slice(11, 23)} ${String(r.level)} ${String(r.msg)} ${[r.client, r.fac, r.code, r.reason].filter((x) => x !== undefined).join(' ')}`.slice(0, 240))
      .join('\n');
    if (e instanceof Error) e.message += `\nSluice's Kafka log, last 40 lines:\n${digest}`;
    throw e;
  }
}

/** Sync produce until `n` answers in a row are 200 on fresh connections (both workers), within `ms`. */
async function until200s(port: number, path: string, n: number, ms: number): Promise<void> {
  let streak = 0;
  let last = '';
  const end = Date.now() + ms;
  while (streak < n) {
    if (Date.now() > end) throw new Error(`${path}: no ${n} sync 200s in a row within ${ms} ms (last: ${last})`);
    let r: Reply;
    try {
      r = await post(port, path, `probe-${Date.now()}`, {}, 15000);
    } catch (e) {
      last = (e as Error).message;
      streak = 0;
      await sleep(200);
      continue;
    }
    last = `${r.status} ${r.headers['x-sluice-error'] ?? ''} ${r.body.toString().slice(0, 200)}`;
    if (r.status === 200) streak++;
    else {
      streak = 0;
      await sleep(200);
    }
  }
}

/** Sync produce until an answer is 503 (or `ms` passed); returns the 503 or the last answer. */
async function first503(port: number, ms: number): Promise<Reply> {
  const end = Date.now() + ms;
  for (let i = 0; ; i++) {
    const r = await post(port, '/produce', `probe-down-${i}`, {}, 15000);
    if (r.status === 503 || Date.now() > end) return r;
    await sleep(100);
  }
}

describe('Kafka resilience (real Sluice, real broker stopped, producer killed, SIGTERM under load)', () => {
  let upstream: Upstream;
  const running: Running[] = [];

  before(async () => {
    await startBroker();
    upstream = await startUpstream();
  });

  after(async () => {
    for (const r of running) await r.stop();
    await upstream?.close();
    // Leave the test broker running for whoever comes next.
    await startBroker();
  });

  function config(topic: string, eventsTopic: string | null, kafka: Record<string, unknown> = {}): Record<string, unknown> {
    return {
      kafka: { brokers: IT_BROKERS, profile: 'latency', statisticsIntervalMs: 0, messageTimeoutMs: MESSAGE_TIMEOUT_MS, ...kafka },
      events: eventsTopic === null ? { enabled: false } : { enabled: true, topic: eventsTopic, key: 'request_id' },
      upstreams: { app: { hosts: [{ address: upstream.address }] } },
      routes: [
        { name: 'produce', match: { path: { exact: '/produce' }, methods: ['POST'] }, action: { type: 'kafka', topic, format: 'raw', key: { header: 'x-key' }, deliveryTimeoutMs: DELIVERY_TIMEOUT_MS } },
        { name: 'app', match: { path: { prefix: '/app' } }, action: { type: 'proxy', upstream: 'app' } },
      ],
    };
  }

  test('broker down: sync route 503/504 within the delivery bounds, proxying unaffected; broker back: 200 again', T, async () => {
    const topic = uniqueTopic('down');
    const eventsTopic = uniqueTopic('down-events');
    await createTopic(topic, PARTITIONS);
    await createTopic(eventsTopic, PARTITIONS);
    // librdkafka statistics every second: the producer also learns the broker state from them.
    const sluice = await startSluice(config(topic, eventsTopic, { statisticsIntervalMs: 1000, extra: LIBRDKAFKA_DEBUG }));
    running.push(sluice);
    await withKafkaLog(sluice, async () => {
      await until200s(sluice.port, '/produce', 8, 60000);

      await stopBroker();
      try {
        const bound = MESSAGE_TIMEOUT_MS + 5000;
        const codes = new Set<string>();
        for (let i = 0; i < 8; i++) {
          const t0 = Date.now();
          const r = await post(sluice.port, '/produce', `while-down-${i}`, { 'x-key': `k${i}` }, bound + 5000);
          const took = Date.now() - t0;
          assert.ok(took < bound, `answer ${i} took ${took} ms (bound ${bound} ms)`);
          const code = r.headers['x-sluice-error'];
          assert.ok(r.status === 503 || r.status === 504, `answer ${i}: ${r.status} ${r.body.toString()}`);
          if (r.status === 503) {
            assert.equal(code, 'SLUICE_ERR_KAFKA_UNAVAILABLE', r.body.toString());
            const retry = Number(r.headers['retry-after']);
            assert.ok(Number.isInteger(retry) && retry >= 1 && retry <= 60, `Retry-After ${String(r.headers['retry-after'])}`);
          } else {
            assert.equal(code, 'SLUICE_ERR_KAFKA_TIMEOUT', r.body.toString());
          }
          codes.add(String(code));
          // Proxied traffic (which also produces request events) is unaffected.
          const p = await request(sluice.port, { path: `/app/${i}`, timeoutMs: 5000 });
          assert.equal(p.status, 200, p.body.toString());
        }
        // Once the workers know the broker is down they fail fast: 503 with Retry-After.
        const fast = await first503(sluice.port, 30000);
        assert.equal(fast.status, 503, `no 503 while the broker is down (last: ${fast.status} ${fast.body.toString()}; codes so far: ${[...codes].join(', ')})`);
        assert.equal(fast.headers['x-sluice-error'], 'SLUICE_ERR_KAFKA_UNAVAILABLE');
        assert.ok(Number(fast.headers['retry-after']) >= 1);
        const proxied = await runLimited(
          Array.from({ length: 40 }, (_, i) => () => request(sluice.port, { path: `/app/burst-${i}`, timeoutMs: 5000 })),
          8,
        );
        for (const p of proxied) assert.equal(p.status, 200);
      } finally {
        await startBroker();
      }
      await until200s(sluice.port, '/produce', 8, 90000);
      const r = await post(sluice.port, '/produce', 'after-recovery', { 'x-key': 'back' });
      assert.equal(r.status, 200, r.body.toString());
      const placed = (JSON.parse(r.body.toString()) as { results: Placed[] }).results[0];
      assert.ok(placed !== undefined);
      const msgs = await readTopic(topic, { partitions: PARTITIONS, until: (ms) => ms.some((m) => m.partition === placed.partition && m.offset === placed.offset) });
      const m = msgs.find((x) => x.partition === placed.partition && x.offset === placed.offset);
      assert.equal(m?.value?.toString(), 'after-recovery');
      assert.equal(await sluice.stop(), 0);
    });
  });

  test(
    // Regression: the all-brokers-down event arrives with code -1; it used to go unnoticed.
    'broker down with librdkafka statistics off: the producer still notices and sync routes fail fast with 503',
    T,
    async () => {
      const topic = uniqueTopic('down-nostats');
      await createTopic(topic, PARTITIONS);
      const sluice = await startSluice(config(topic, null, { statisticsIntervalMs: 0, extra: LIBRDKAFKA_DEBUG }));
      running.push(sluice);
      await withKafkaLog(sluice, async () => {
        await until200s(sluice.port, '/produce', 8, 60000);
        await stopBroker();
        try {
          const fast = await first503(sluice.port, 15000);
          assert.equal(fast.status, 503, `no 503 within 15 s of the broker stopping (last: ${fast.status} ${fast.body.toString()})`);
          assert.equal(fast.headers['x-sluice-error'], 'SLUICE_ERR_KAFKA_UNAVAILABLE');
          assert.ok(Number(fast.headers['retry-after']) >= 1);
        } finally {
          await startBroker();
        }
        await until200s(sluice.port, '/produce', 8, 90000);
        assert.equal(await sluice.stop(), 0);
      });
    },
  );

  test('producer process killed with SIGKILL: respawned, workers reconnect, sync route 200 again', T, async () => {
    const topic = uniqueTopic('kill');
    await createTopic(topic, PARTITIONS);
    const sluice = await startSluice(config(topic, null));
    running.push(sluice);
    const started = await sluice.waitForLog((r) => r.msg === 'kafka producer started');
    const pid = started.pid as number;
    assert.ok(Number.isInteger(pid) && pid > 0, JSON.stringify(started));
    await until200s(sluice.port, '/produce', 8, 60000);

    process.kill(pid, 'SIGKILL');
    const ready = await sluice.waitForLog((r) => r.msg === 'Kafka producer ready' && typeof r.restarts === 'number' && r.restarts >= 1, 30000);
    assert.notEqual(ready.pid, pid, 'a new producer process');
    await sluice.waitForLog((r) => r.msg === 'Kafka producer exited; respawning' && r.signal === 'SIGKILL');
    await until200s(sluice.port, '/produce', 8, 60000);

    // Records produced after the respawn reach Kafka where Sluice says they are.
    const replies = await runLimited(
      Array.from({ length: 20 }, (_, i) => () => post(sluice.port, '/produce', `after-kill-${i}`, { 'x-key': `k${i % 5}` })),
      5,
    );
    const placed = replies.map((r, i) => {
      assert.equal(r.status, 200, `${i}: ${r.body.toString()}`);
      return (JSON.parse(r.body.toString()) as { results: Placed[] }).results[0] as Placed;
    });
    const msgs = await readTopic(topic, {
      partitions: PARTITIONS,
      until: (ms) => placed.every((p) => ms.some((m) => m.partition === p.partition && m.offset === p.offset)),
    });
    placed.forEach((p, i) => {
      const m = msgs.find((x) => x.partition === p.partition && x.offset === p.offset);
      assert.equal(m?.value?.toString(), `after-kill-${i}`);
    });
    assert.equal(await sluice.stop(), 0);
  });

  test('SIGTERM under produce load: every acknowledged record is in Kafka at its reported offset, exit 0', T, async (t) => {
    const topic = uniqueTopic('sigterm');
    const eventsTopic = uniqueTopic('sigterm-events');
    await createTopic(topic, PARTITIONS);
    await createTopic(eventsTopic, PARTITIONS);
    const sluice = await startSluice(config(topic, eventsTopic, { profile: 'throughput' }));
    running.push(sluice);
    // Both workers' links up (the warm-up records and their events are in the topics too).
    await until200s(sluice.port, '/produce', 4, 60000);

    type Outcome = { i: number; kind: 'kafka' | 'proxy'; reply: Reply | null; error: string | null };
    const N = 200;
    let completed = 0;
    let termSent = false;
    const jobs = Array.from({ length: N }, (_, i) => async (): Promise<Outcome> => {
      const kind = i % 5 === 4 ? 'proxy' : 'kafka';
      if (!termSent && completed >= 60) {
        termSent = true;
        sluice.proc.kill('SIGTERM');
      }
      try {
        const reply =
          kind === 'kafka'
            ? await post(sluice.port, '/produce', `record-${i}-${'v'.repeat(i % 50)}`, { 'x-key': `key-${i % 11}` }, 30000)
            : await request(sluice.port, { path: `/app/${i}`, timeoutMs: 30000 });
        return { i, kind, reply, error: null };
      } catch (e) {
        return { i, kind, reply: null, error: (e as NodeJS.ErrnoException).code ?? (e as Error).message };
      } finally {
        completed++;
      }
    });
    const outcomes = await runLimited(jobs, 20);
    assert.ok(termSent, 'SIGTERM was sent mid-way');
    const code = await sluice.exited;
    assert.equal(code, 0, sluice.logs.slice(-20).map((l) => JSON.stringify(l)).join('\n'));
    // The shutdown report: nothing accepted was left undelivered.
    const loss = sluice.logs.filter((l) => l.msg === 'kafka records left undelivered at shutdown' || l.msg === 'worker could not hand Kafka records to the producer before exiting');
    assert.deepEqual(loss, []);
    const stopped = sluice.logs.find((l) => l.msg === 'kafka producer stopped');
    assert.ok(stopped !== undefined, 'the producer reported its shutdown');
    assert.equal(stopped.killed, false);

    const acked = outcomes.filter((o) => o.kind === 'kafka' && o.reply !== null && o.reply.status >= 200 && o.reply.status < 300);
    const refused = outcomes.filter((o) => o.reply === null || o.reply.status >= 300);
    for (const o of refused) {
      if (o.reply === null) assert.match(String(o.error), /ECONNREFUSED|ECONNRESET|EPIPE|socket hang up/, `request ${o.i}`);
      else assert.ok([503].includes(o.reply.status), `request ${o.i}: ${o.reply.status} ${o.reply.body.toString()}`);
    }
    assert.ok(acked.length >= 40, `at least the requests before SIGTERM were acknowledged (got ${acked.length})`);
    const errors = new Map<string, number>();
    for (const o of refused) {
      const k = o.reply === null ? String(o.error) : String(o.reply.status);
      errors.set(k, (errors.get(k) ?? 0) + 1);
    }
    t.diagnostic(`${N} requests: ${acked.length} Kafka records acknowledged, ${outcomes.filter((o) => o.kind === 'proxy' && o.reply?.status === 200).length} proxied 200, refused ${JSON.stringify(Object.fromEntries(errors))}`);

    const placed = acked.map((o) => {
      assert.equal(o.reply?.status, 200, o.reply?.body.toString());
      const p = (JSON.parse((o.reply as Reply).body.toString()) as { results: Placed[] }).results[0] as Placed;
      return { ...p, value: `record-${o.i}-${'v'.repeat(o.i % 50)}` };
    });
    const msgs = await readTopic(topic, {
      partitions: PARTITIONS,
      timeoutMs: 30000,
      until: (ms) => placed.every((p) => ms.some((m) => m.partition === p.partition && m.offset === p.offset)),
    });
    const missing = placed.filter((p) => !msgs.some((m) => m.partition === p.partition && m.offset === p.offset && m.value?.toString() === p.value));
    assert.deepEqual(missing, [], `acknowledged records lost or misplaced (read ${msgs.length} records)`);

    // Request events: every answered request (Kafka route or proxied) has its event, and the
    // sequence numbers are gap-free (nothing accepted was lost at shutdown).
    const answered = outcomes.filter((o) => o.reply !== null).map((o) => (o.reply as Reply).headers['x-request-id'] as string);
    let allSeenAt = 0;
    const events = await readTopic(eventsTopic, {
      partitions: PARTITIONS,
      timeoutMs: 30000,
      until: (ms) => {
        if (allSeenAt === 0) {
          const ids = new Set(ms.map((m) => (JSON.parse(m.value?.toString() ?? '{}') as { requestId: string }).requestId));
          if (answered.every((id) => ids.has(id))) allSeenAt = Date.now();
        }
        // Keep reading a little longer: events of requests whose client saw no answer may follow.
        return allSeenAt !== 0 && Date.now() - allSeenAt > 1500;
      },
    });
    const evs = events.map((m) => JSON.parse(m.value?.toString() ?? '{}') as { requestId: string; seq: string });
    const ids = new Set(evs.map((e) => e.requestId));
    const noEvent = answered.filter((id) => !ids.has(id));
    assert.deepEqual(noEvent, [], 'answered requests without an event');
    const seqs = evs.map((e) => Number(e.seq)).sort((a, b) => a - b);
    assert.deepEqual(
      seqs,
      Array.from({ length: seqs.length }, (_, i) => i + 1),
      'event sequence numbers gap-free and unique',
    );
  });
});
