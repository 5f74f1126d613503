/**
 * Kafka delivery end to end, against a real broker (scripts/kafka.sh, test instance on
 * 29092): KafkaLink → Unix socket → producer process (forked by ProducerSupervisor) → broker,
 * read back with a KafkaConsumer. Round trips (bytes, keys, headers, partition/offset as
 * reported), consistent-hash partitioning, ordering, fire-and-forget accounting, queue-full
 * backpressure, a broker that goes down and comes back (and a producer started while it is
 * down), kill -9 of the producer, graceful shutdown without loss, and transactions (all or
 * nothing under read_committed). Nothing is mocked and nothing is skipped: if the broker does
 * not start, the suite fails with the script's output.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import type { Message } from '@confluentinc/kafka-javascript';

import { ProducerSupervisor } from '../../src/main/producer-supervisor';
import { buildKafkaConfig, type KafkaConfig } from '../../src/shared/kafka-config';
import type { KafkaRecord } from '../../src/shared/kafka-frames';
import { jumpConsistentHash } from '../../src/workers/producer/partitions';
import { createLogger } from '../../src/shared/log';
import { jsNative } from '../../src/shared/native';
import { KafkaDeliveryError, KafkaLink } from '../../src/workers/http/kafka/link';
import { IT_BROKERS, createTopic, readTopic, startBroker, stopBroker, uniqueTopic, waitUntil } from '../kafka-helpers';

const VERBOSE = process.env.KAFKA_IT_VERBOSE === '1';
const T = { timeout: 180000 };

interface Harness {
  readonly sup: ProducerSupervisor;
  readonly link: KafkaLink;
  readonly logs: string[];
  readonly config: KafkaConfig;
}

const running: Harness[] = [];

function config(over: Record<string, unknown>): KafkaConfig {
  const r = buildKafkaConfig({ brokers: IT_BROKERS, profile: 'latency', statisticsIntervalMs: 1000, ...over });
  assert.deepEqual(r.issues, []);
  return r.config as KafkaConfig;
}

/** A producer process and one link to it; waits until the link is up (not for Kafka). */
async function harness(over: Record<string, unknown> = {}, linkOver: { socketBufferBytes?: number; ffDelayMs?: number } = {}): Promise<Harness> {
  const cfg = config(over);
  const logs: string[] = [];
  const logger = createLogger(VERBOSE ? 'debug' : 'warn', { test: 'kafka-producer' }, (line) => {
    logs.push(line);
    if (VERBOSE) process.stderr.write(line);
  });
  const sup = new ProducerSupervisor({
    config: cfg,
    logger,
    logLevel: 'debug',
    statusIntervalMs: 100,
    logSink: (line) => {
      logs.push(line);
      if (VERBOSE) process.stderr.write(`${line}\n`);
    },
  });
  await sup.start();
  const link = new KafkaLink({
    socketPath: sup.socketPath,
    workerId: running.length + 1,
    socketBufferBytes: linkOver.socketBufferBytes ?? cfg.socketBufferBytes,
    ffDelayMs: linkOver.ffDelayMs ?? cfg.linkLingerMs,
    logger,
  });
  await link.whenReady(10000);
  const h = { sup, link, logs, config: cfg };
  running.push(h);
  return h;
}

async function dispose(h: Harness): Promise<void> {
  h.link.destroy();
  const r = await h.sup.shutdown({ deadlineMs: 20000 });
  assert.equal(r.killed, false, 'the producer exited by itself');
  assert.equal(existsSync(h.sup.socketPath), false, 'the socket file is gone');
}

interface Outcome {
  readonly err: KafkaDeliveryError | null;
  readonly partition: number;
  readonly offset: number;
}

/** produce() with a callback, as a promise (asserts produce() accepted it). */
function produceSync(link: KafkaLink, rec: KafkaRecord): Promise<Outcome> {
  return new Promise((resolve) => {
    const ok = link.produce(rec, (err, partition, offset) => resolve({ err, partition, offset }));
    assert.equal(ok, true, `produce() refused: ${link.refusal()}`);
  });
}

async function kafkaConnected(h: Harness): Promise<void> {
  await waitUntil(() => h.link.status().producer?.kafkaConnected === true && h.link.brokerUp, 60000, () => `the producer to reach Kafka; logs:\n${h.logs.slice(-20).join('\n')}`);
}

/**
 * The producer's fire-and-forget clients are connected (unordered records take them from now
 * on): the native one (kafka.nativeFireAndForget, the default) or the two JavaScript ones.
 */
async function ffClientsUp(h: Harness): Promise<void> {
  const up = h.config.nativeFireAndForget ? 'native fire-and-forget client started' : 'fire-and-forget clients connected';
  await waitUntil(() => h.logs.some((l) => l.includes(up)), 60000, () => `the fire-and-forget clients; logs:\n${h.logs.slice(-20).join('\n')}`);
}

const hex = (b: Buffer | null | undefined): string | null => (b == null ? null : b.toString('hex'));
const bytes = (v: Uint8Array | string | null | undefined): string | null => (v == null ? null : Buffer.from(typeof v === 'string' ? Buffer.from(v) : v).toString('hex'));

function headersOf(m: Message): [string, string][] {
  return (m.headers ?? []).map((h) => {
    const k = Object.keys(h)[0] as string;
    const v = h[k] as Buffer | string;
    return [k, Buffer.from(v).toString('hex')];
  });
}

function valueText(m: Message): string {
  return m.value === null ? '<null>' : m.value.toString();
}

describe('Kafka delivery through KafkaLink and the producer process (real broker)', () => {
  before(async () => {
    await startBroker();
  });

  after(async () => {
    for (const h of running.splice(0)) await dispose(h).catch(() => undefined);
    await stopBroker();
  });

  test('records round-trip: same bytes, keys, headers; partition and offset as reported', T, async () => {
    const topic = uniqueTopic('roundtrip');
    await createTopic(topic, 3);
    const h = await harness();
    await kafkaConnected(h);
    const big = randomBytes(900 * 1024);
    const recs: KafkaRecord[] = [
      { topic, key: 'user-1', value: 'hello', headers: [['a', '1'], ['bin', Buffer.from([0, 255, 1])]] },
      { topic, key: Buffer.from([0, 1, 2, 255]), value: Buffer.from('binary key') },
      { topic, key: null, value: 'no key' },
      { topic, key: '', value: 'empty key' },
      { topic, key: 'empty value', value: '' },
      { topic, key: 'tombstone', value: null },
      { topic, key: 'ü', value: '日本語 ✓', headers: [['ключ', 'значение'], ['empty', '']] },
      { topic, key: 'big', value: big, headers: [['x-request-id', 'r-1']] },
      { topic, key: 'explicit', value: 'to partition 2', partition: 2 },
      { topic, key: 'ts', value: 'timestamped', timestamp: 1_700_000_000_123 },
    ];
    const outcomes = await Promise.all(recs.map((r) => produceSync(h.link, r)));
    outcomes.forEach((o, i) => assert.equal(o.err, null, `record ${i}: ${o.err?.message}`));
    assert.equal(outcomes[8]?.partition, 2);

    const msgs = await readTopic(topic, { partitions: 3, until: (m) => m.length >= recs.length });
    assert.equal(msgs.length, recs.length);
    recs.forEach((r, i) => {
      const o = outcomes[i] as Outcome;
      const m = msgs.find((x) => x.partition === o.partition && x.offset === o.offset);
      assert.ok(m, `record ${i} at ${o.partition}/${o.offset} read back`);
      assert.equal(hex(m.value), bytes(r.value), `value of ${i}`);
      assert.equal(hex(m.key as Buffer | null | undefined), bytes(r.key), `key of ${i}`);
      assert.deepEqual(headersOf(m), (r.headers ?? []).map(([k, v]) => [k, bytes(v)]), `headers of ${i}`);
      if (r.timestamp !== undefined) assert.equal(m.timestamp, r.timestamp);
    });
    const s = h.link.status();
    assert.equal(s.enqueued, recs.length);
    assert.equal(s.delivered, recs.length);
    assert.equal(s.failed + s.unknown + s.dropped, 0);
    await dispose(h);
  });

  test('consistent-hash partitioning: stable per key, jump(xxh3(key)) over the partition count', T, async () => {
    const topic = uniqueTopic('hash');
    await createTopic(topic, 6);
    const h = await harness();
    const keys = Array.from({ length: 60 }, (_, i) => `customer-${i}`);
    const first = await Promise.all(keys.map((key) => produceSync(h.link, { topic, key, value: 'a', partitioner: 'hash' })));
    const second = await Promise.all(keys.map((key) => produceSync(h.link, { topic, key: Buffer.from(key), value: 'b', partitioner: 'hash' })));
    keys.forEach((key, i) => {
      assert.equal(first[i]?.err, null);
      assert.equal(second[i]?.err, null);
      assert.equal(first[i]?.partition, second[i]?.partition, `key ${key} stays on its partition`);
      assert.equal(first[i]?.partition, jumpConsistentHash(jsNative.hashKey(key), 6), `key ${key}`);
    });
    assert.ok(new Set(first.map((o) => o.partition)).size >= 4, 'keys spread over the partitions');
    // The librdkafka partitioner is used when asked for (or when the key is null).
    const dflt = await produceSync(h.link, { topic, key: null, value: 'c', partitioner: 'hash' });
    assert.equal(dflt.err, null);
    assert.ok(dflt.partition >= 0 && dflt.partition < 6);
    await dispose(h);
  });

  test('order is kept within a partition (sync and fire-and-forget records mixed)', T, async () => {
    const topic = uniqueTopic('order');
    await createTopic(topic, 3);
    const h = await harness();
    const n = 3000;
    const syncs: Promise<Outcome>[] = [];
    for (let i = 0; i < n; i++) {
      const rec: KafkaRecord = { topic, key: 'one-key', value: String(i), partitioner: 'hash' };
      if (i % 100 === 0) syncs.push(produceSync(h.link, rec));
      else assert.equal(h.link.produce(rec), true);
      if (i % 500 === 499) await new Promise((r) => setImmediate(r));
    }
    for (const o of await Promise.all(syncs)) assert.equal(o.err, null);
    await waitUntil(() => h.link.status().delivered === n, 60000, () => `all delivered: ${JSON.stringify(h.link.status())}`);
    const part = jumpConsistentHash(jsNative.hashKey('one-key'), 3);
    const msgs = (await readTopic(topic, { partitions: 3, until: (m) => m.length >= n })).filter((m) => m.partition === part);
    assert.equal(msgs.length, n);
    msgs.sort((a, b) => a.offset - b.offset);
    msgs.forEach((m, i) => assert.equal(valueText(m), String(i), `position ${i}`));
    await dispose(h);
  });

  test('fire-and-forget records all arrive, and the link counts them as delivered', T, async () => {
    const topic = uniqueTopic('ff');
    await createTopic(topic, 3);
    const h = await harness();
    const n = 5000;
    for (let i = 0; i < n; i++) assert.equal(h.link.produce({ topic, value: `ff-${i}` }), true);
    await waitUntil(() => h.link.status().delivered === n, 60000, () => `delivered == ${n}: ${JSON.stringify(h.link.status())}`);
    const msgs = await readTopic(topic, { partitions: 3, until: (m) => m.length >= n });
    assert.equal(msgs.length, n);
    assert.equal(new Set(msgs.map(valueText)).size, n);
    const s = h.link.status();
    assert.deepEqual([s.enqueued, s.delivered, s.failed, s.unknown, s.dropped, s.inFlight], [n, n, 0, 0, 0, 0]);
    await dispose(h);
  });

  test('fire-and-forget records wait in the link (linkLingerMs) until the linger ends, a record with a callback, or the eager size', T, async () => {
    const topic = uniqueTopic('linger');
    await createTopic(topic, 1);
    const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
    // 1. A linger longer than the test: they wait, then a record with a callback takes them along.
    const held = await harness({}, { ffDelayMs: 600000 });
    for (let i = 0; i < 10; i++) assert.equal(held.link.produce({ topic, value: `held-${i}` }), true);
    await sleep(300);
    assert.ok(held.link.bufferedBytes() > 0, 'the records still wait in the link');
    assert.equal(held.link.status().delivered, 0);
    const report = await new Promise<Outcome>((resolve) => held.link.produce({ topic, value: 'sync' }, (err, partition, offset) => resolve({ err, partition, offset })));
    assert.equal(report.err, null);
    await waitUntil(() => held.link.status().delivered === 11, 30000, () => `delivered == 11: ${JSON.stringify(held.link.status())}`);
    // 2. Past the eager size (half of a 64 KiB socketBufferBytes) they go at the end of the turn.
    const eager = await harness({}, { ffDelayMs: 600000, socketBufferBytes: 65536 });
    const big = 'x'.repeat(4000);
    for (let i = 0; i < 9; i++) assert.equal(eager.link.produce({ topic, value: big }), true);
    await new Promise((r) => setImmediate(r));
    await waitUntil(() => eager.link.status().delivered === 9, 30000, () => `delivered == 9: ${JSON.stringify(eager.link.status())}`);
    // 3. A short linger: written when it ends, with nothing else to take them.
    const short = await harness({}, { ffDelayMs: 200 });
    for (let i = 0; i < 5; i++) assert.equal(short.link.produce({ topic, value: `short-${i}` }), true);
    assert.ok(short.link.bufferedBytes() > 0);
    await waitUntil(() => short.link.status().delivered === 5, 30000, () => `delivered == 5: ${JSON.stringify(short.link.status())}`);
    const msgs = await readTopic(topic, { partitions: 1, until: (m) => m.length >= 25 });
    assert.equal(msgs.length, 25);
    // One partition, one link each: the held records came before the record that took them along.
    const texts = msgs.map(valueText).filter((t) => t.startsWith('held-') || t === 'sync');
    assert.deepEqual(texts, [...Array.from({ length: 10 }, (_, i) => `held-${i}`), 'sync']);
    for (const h of [held, eager, short]) await dispose(h);
  });

  for (const native of [true, false]) {
    test(`unordered fire-and-forget records take the ${native ? 'native client' : 'report-on-error clients'}: exact delivered counts, live and after shutdown`, T, async () => {
      const topic = uniqueTopic('unordered');
      await createTopic(topic, 3);
      const h = await harness({ lingerMs: 50, nativeFireAndForget: native });
      await kafkaConnected(h);
      await ffClientsUp(h);
      const n = 3000;
      // Several bursts, so that the records span several epochs (they turn every STATUS interval, 100 ms here).
      for (let burst = 0; burst < 3; burst++) {
        for (let i = 0; i < n / 3; i++) assert.equal(h.link.produce({ topic, key: `k${i % 7}`, value: `u-${burst}-${i}`, unordered: true }), true);
        await new Promise((r) => setTimeout(r, 250));
      }
      // With a callback, `unordered` is ignored: the record gets its own report.
      const sync = await produceSync(h.link, { topic, value: 'sync', unordered: true });
      assert.equal(sync.err, null);
      assert.ok(sync.offset >= 0);
      await waitUntil(() => h.link.status().delivered === n + 1, 60000, () => `delivered == ${n + 1}: ${JSON.stringify(h.link.status())}`);
      let s = h.link.status();
      assert.deepEqual([s.enqueued, s.delivered, s.failed, s.unknown, s.inFlight], [n + 1, n + 1, 0, 0, 0]);
      // Records still in an epoch when the producer shuts down: its flush settles them exactly.
      const late = 500;
      for (let i = 0; i < late; i++) assert.equal(h.link.produce({ topic, value: `late-${i}`, unordered: true }), true);
      await waitUntil(() => h.link.status().producer?.connReceived === n + 1 + late, 20000, 'the producer to take the late records');
      const result = await h.sup.shutdown({ reason: 'test' });
      assert.equal(result.exitCode, 0);
      assert.ok(result.report);
      assert.equal(result.report.undelivered, 0);
      assert.equal(result.report.delivered, n + 1 + late);
      assert.deepEqual(result.report.connections.map((c) => [c.received, c.delivered, c.failed, c.undelivered]), [[n + 1 + late, n + 1 + late, 0, 0]]);
      s = h.link.status();
      assert.deepEqual([s.enqueued, s.delivered, s.failed, s.unknown, s.inFlight], [n + 1 + late, n + 1 + late, 0, 0, 0], JSON.stringify(s));
      assert.equal(s.producer?.final, true);
      // Every unordered record went through the fire-and-forget clients (the sync one did not).
      assert.ok(
        h.logs.some((l) => new RegExp(`"ffSettled":${n + late}\\b`).test(l)),
        `ffSettled ${n + late} in the shutdown log:\n${h.logs.filter((l) => l.includes('producer flushed')).join('\n')}`,
      );
      h.link.destroy();
      const msgs = await readTopic(topic, { partitions: 3, until: (m) => m.length >= n + 1 + late });
      assert.equal(msgs.length, n + 1 + late);
      assert.equal(new Set(msgs.map(valueText)).size, n + 1 + late);
    });
  }

  test('a full queue is backpressure: coded errors, counted, never a crash', T, async () => {
    const topic = uniqueTopic('full');
    await createTopic(topic, 1);
    // A tiny librdkafka queue that stays full while records linger.
    const h = await harness({ queueMaxMessages: 20, lingerMs: 300 });
    await kafkaConnected(h);
    const pid = h.sup.pid;
    const outcomes = await Promise.all(Array.from({ length: 300 }, (_, i) => produceSync(h.link, { topic, value: `v${i}` })));
    const full = outcomes.filter((o) => o.err !== null);
    assert.ok(full.length > 0, 'some records met a full queue');
    for (const o of full) {
      assert.ok(o.err instanceof KafkaDeliveryError);
      assert.equal(o.err.code, 'SLUICE_ERR_KAFKA_QUEUE_FULL');
      assert.equal(o.err.kafkaCode, -184);
      assert.equal(o.err.status, 503);
    }
    assert.ok(outcomes.length - full.length >= 20, 'the queue took what fitted');
    // Fire-and-forget records refused the same way show in the link's failed counter.
    const before = h.link.status().failed;
    for (let i = 0; i < 300; i++) h.link.produce({ topic, value: `ff${i}` });
    await waitUntil(() => h.link.status().inFlight === 0, 30000, 'fire-and-forget outcomes');
    assert.ok(h.link.status().failed > before, 'fire-and-forget queue-full failures are counted');
    // Unordered ones meet the fire-and-forget client's own queue: the same.
    await ffClientsUp(h);
    const beforeUnordered = h.link.status().failed;
    for (let i = 0; i < 300; i++) h.link.produce({ topic, value: `u${i}`, unordered: true });
    await waitUntil(() => h.link.status().inFlight === 0, 30000, 'unordered outcomes');
    assert.ok(h.link.status().failed > beforeUnordered, 'unordered queue-full failures are counted');
    await waitUntil(() => (h.sup.stats()?.queueFull ?? 0) > 0, 5000, 'queueFull in the producer stats');
    // Still the same process, still delivering.
    assert.equal(h.sup.pid, pid);
    assert.equal(h.sup.restarts, 0);
    assert.equal((await produceSync(h.link, { topic, value: 'after' })).err, null);
    const s = h.link.status();
    assert.equal(s.enqueued, s.delivered + s.failed + s.unknown + s.inFlight);
    await dispose(h);
  });

  test('the link buffer is bounded: produce() refuses with a code when it is full', T, async () => {
    const topic = uniqueTopic('linkfull');
    await createTopic(topic, 1);
    const h = await harness({}, { socketBufferBytes: 65536 });
    const value = Buffer.alloc(1024, 7);
    let accepted = 0;
    let refused = 0;
    // One event-loop turn: nothing is written until it ends, so the buffer fills.
    for (let i = 0; i < 200; i++) {
      if (h.link.produce({ topic, value })) accepted++;
      else {
        refused++;
        assert.equal(h.link.refusal(), 'SLUICE_ERR_KAFKA_QUEUE_FULL');
      }
    }
    assert.ok(accepted > 0 && refused > 0, `accepted ${accepted}, refused ${refused}`);
    assert.equal(h.link.status().dropped, refused);
    assert.equal(h.link.produce({ topic, value: Buffer.alloc(70000) }), false);
    assert.equal(h.link.refusal(), 'SLUICE_ERR_KAFKA_RECORD_TOO_LARGE');
    await waitUntil(() => h.link.status().delivered === accepted, 30000, 'accepted records delivered');
    await dispose(h);
  });

  test('broker down: reports fail within message.timeout.ms, STATUS says down, the producer survives; delivery resumes', T, async () => {
    const topic = uniqueTopic('down');
    await createTopic(topic, 2);
    const messageTimeoutMs = 4000;
    const a = await harness({ messageTimeoutMs });
    assert.equal((await produceSync(a.link, { topic, value: 'before' })).err, null);
    const pid = a.sup.pid;
    await ffClientsUp(a);

    await stopBroker();
    await waitUntil(() => !a.link.brokerUp, 30000, 'STATUS to report the broker down');
    assert.equal(a.link.retryAfterSeconds(), 5);
    const t0 = Date.now();
    const failedBefore = a.link.status().failed;
    // Unordered fire-and-forget records fail on the report-on-error clients: counted failed, exactly.
    for (let i = 0; i < 30; i++) assert.equal(a.link.produce({ topic, key: `u${i}`, value: 'unordered while down', unordered: true }), true);
    const failed = await Promise.all(Array.from({ length: 20 }, (_, i) => produceSync(a.link, { topic, key: `k${i}`, value: 'while down' })));
    const took = Date.now() - t0;
    for (const o of failed) {
      assert.ok(o.err instanceof KafkaDeliveryError, 'failed');
      assert.equal(o.err.code, 'SLUICE_ERR_KAFKA_UNAVAILABLE');
    }
    await waitUntil(() => a.link.status().inFlight === 0, 30000, () => `every outcome while down: ${JSON.stringify(a.link.status())}`);
    const sd = a.link.status();
    assert.deepEqual([sd.failed - failedBefore, sd.unknown], [20 + 30, 0], JSON.stringify(sd));
    assert.ok(took < messageTimeoutMs + 20000, `failed within message.timeout.ms plus a generous margin (${took} ms)`);
    assert.equal(a.sup.pid, pid, 'the producer process survived');
    assert.equal(a.sup.restarts, 0);
    assert.ok(a.logs.some((l) => l.includes('Kafka broker unreachable')));

    // A producer started while the broker is down comes up, holds records, says so.
    const b = await harness({ messageTimeoutMs: 120000 });
    const bStatus = b.link.status().producer;
    assert.equal(bStatus?.kafkaConnected, false);
    assert.equal(b.link.brokerUp, false);
    const held = produceSync(b.link, { topic, key: 'held', value: 'produced while the broker was down' });

    await startBroker();
    await waitUntil(() => a.link.brokerUp, 60000, 'STATUS to report the broker up again');
    // The first records after the restart may still meet a stale connection: retry, bounded.
    const deadline = Date.now() + 60000;
    let resumed = await produceSync(a.link, { topic, value: 'after' });
    while (resumed.err !== null && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 500));
      resumed = await produceSync(a.link, { topic, value: 'after' });
    }
    assert.equal(resumed.err, null, `delivery resumed after the restart: ${resumed.err?.message}`);
    const heldOutcome = await held;
    assert.equal(heldOutcome.err, null, `the held record was delivered: ${heldOutcome.err?.message}`);
    await kafkaConnected(b);
    await dispose(a);
    await dispose(b);
  });

  test('kill -9 of the producer: respawned, the link reconnects, pending reports are "unknown outcome"', T, async () => {
    const topic = uniqueTopic('kill');
    await createTopic(topic, 1);
    // Records linger in librdkafka long enough to be in flight when the process dies.
    const h = await harness({ lingerMs: 4000 });
    await kafkaConnected(h);
    const pending = Array.from({ length: 10 }, (_, i) => produceSync(h.link, { topic, value: `sync-${i}` }));
    for (let i = 0; i < 10; i++) assert.equal(h.link.produce({ topic, value: `ff-${i}` }), true);
    await waitUntil(() => h.link.status().producer?.connReceived === 20, 10000, 'the producer to take all 20');
    const pid = h.sup.pid as number;
    const respawned = new Promise<number>((resolve) => h.sup.once('ready', resolve));
    process.kill(pid, 'SIGKILL');
    for (const o of await Promise.all(pending)) {
      assert.ok(o.err instanceof KafkaDeliveryError);
      assert.equal(o.err.code, 'SLUICE_ERR_KAFKA_UNKNOWN_OUTCOME');
    }
    assert.equal(h.link.status().unknown, 20, 'sync and fire-and-forget records are unknown');
    const newPid = await respawned;
    assert.notEqual(newPid, pid);
    assert.equal(h.sup.restarts, 1);
    await waitUntil(() => h.link.ready && h.link.status().reconnects === 1, 20000, 'the link to reconnect');
    assert.equal((await produceSync(h.link, { topic, value: 'after respawn' })).err, null);
    await dispose(h);
  });

  test('graceful shutdown flushes everything taken: read back == acknowledged', T, async () => {
    const topic = uniqueTopic('flush');
    await createTopic(topic, 3);
    // Records linger longer than the flush deadline: only the shutdown's flush gets them out.
    const h = await harness({ lingerMs: 8000, flushTimeoutMs: 4000 });
    await kafkaConnected(h);
    const n = 2500;
    const syncs: Promise<Outcome>[] = [];
    for (let i = 0; i < n; i++) {
      const rec: KafkaRecord = { topic, key: `k${i % 50}`, value: `rec-${i}` };
      if (i % 5 === 0) syncs.push(produceSync(h.link, rec));
      else assert.equal(h.link.produce(rec), true);
    }
    await waitUntil(() => h.link.status().producer?.connReceived === n, 20000, 'the producer to take everything');
    const result = await h.sup.shutdown({ reason: 'test' });
    assert.equal(result.exitCode, 0);
    assert.equal(result.killed, false);
    assert.ok(result.report);
    assert.equal(result.report.undelivered, 0);
    assert.equal(result.report.delivered, n);
    assert.deepEqual(result.report.connections.map((c) => [c.received, c.delivered, c.failed, c.undelivered]), [[n, n, 0, 0]]);
    for (const o of await Promise.all(syncs)) assert.equal(o.err, null);
    const s = h.link.status();
    assert.deepEqual([s.delivered, s.failed, s.unknown], [n, 0, 0], JSON.stringify(s));
    assert.equal(s.producer?.final, true);
    h.link.destroy();
    const msgs = await readTopic(topic, { partitions: 3, until: (m) => m.length >= n });
    assert.equal(msgs.length, s.delivered);
    assert.equal(new Set(msgs.map(valueText)).size, n);
  });

  test('link.close() waits for every outcome, then the producer ends the link', T, async () => {
    const topic = uniqueTopic('close');
    await createTopic(topic, 1);
    const h = await harness({ lingerMs: 200 });
    const n = 500;
    for (let i = 0; i < n; i++) h.link.produce({ topic, value: `c${i}` });
    const last = produceSync(h.link, { topic, value: 'last' });
    await h.link.close(20000);
    assert.equal((await last).err, null);
    const s = h.link.status();
    assert.deepEqual([s.enqueued, s.delivered, s.failed, s.unknown, s.inFlight, s.closed], [n + 1, n + 1, 0, 0, 0, true]);
    assert.equal(h.link.produce({ topic, value: 'late' }), false);
    assert.equal(h.link.refusal(), 'SLUICE_ERR_SHUTTING_DOWN');
    await h.link.close();
    h.link.destroy();
    await dispose(h);
  });

  test('transactions: a committed batch is seen whole, an aborted one not at all (read_committed)', T, async () => {
    const topic = uniqueTopic('txn');
    await createTopic(topic, 3);
    const h = await harness({ transactions: true, instanceId: `it-${process.pid}-${Date.now()}` });
    await waitUntil(() => h.link.status().producer?.txnReady === true, 60000, () => `the transactional producer; logs:\n${h.logs.slice(-10).join('\n')}`);
    const txn = (recs: KafkaRecord[]): Promise<{ err: KafkaDeliveryError | null; partitions: Int32Array; offsets: Float64Array }> =>
      new Promise((resolve) => {
        assert.equal(h.link.produceTransaction(recs, (err, partitions, offsets) => resolve({ err, partitions, offsets })), true);
      });
    const committed = Array.from({ length: 5 }, (_, i): KafkaRecord => ({ topic, key: `a${i}`, value: `A${i}`, partitioner: 'hash' }));
    const a = await txn(committed);
    assert.equal(a.err, null, a.err?.message);
    assert.equal(a.partitions.length, 5);
    committed.forEach((r, i) => assert.equal(a.partitions[i], jumpConsistentHash(jsNative.hashKey(r.key as string), 3)));

    // The last record cannot be produced (no partition 99): the whole batch is aborted.
    const aborted: KafkaRecord[] = [...Array.from({ length: 4 }, (_, i): KafkaRecord => ({ topic, key: `b${i}`, value: `B${i}` })), { topic, value: 'B-bad', partition: 99 }];
    const b = await txn(aborted);
    assert.ok(b.err instanceof KafkaDeliveryError, 'aborted');
    assert.equal(b.err.code, 'SLUICE_ERR_KAFKA_REJECTED');
    assert.equal(b.partitions.length, 0);

    const sentinel = await txn([{ topic, key: 'c', value: 'C-sentinel' }]);
    assert.equal(sentinel.err, null);

    const seen = await readTopic(topic, {
      partitions: 3,
      isolation: 'read_committed',
      until: (m) => m.some((x) => valueText(x) === 'C-sentinel') && m.filter((x) => valueText(x).startsWith('A')).length >= 5,
    });
    const values = seen.map(valueText).sort();
    assert.deepEqual(values, ['A0', 'A1', 'A2', 'A3', 'A4', 'C-sentinel']);
    committed.forEach((_, i) => {
      const m = seen.find((x) => valueText(x) === `A${i}`) as Message;
      assert.equal(m.partition, a.partitions[i]);
      assert.equal(m.offset, a.offsets[i]);
    });
    const s = h.link.status();
    assert.deepEqual([s.enqueued, s.delivered, s.failed], [11, 6, 5]);
    await dispose(h);
  });

  test('a configuration librdkafka refuses fails the start, leaving nothing behind', T, async () => {
    const cfg = config({ extra: { 'no.such.property': 'x' } });
    const sup = new ProducerSupervisor({ config: cfg, logger: createLogger('error', {}, () => undefined), logSink: () => undefined });
    await assert.rejects(sup.start(), /librdkafka refused the configuration: .*no\.such\.property/);
    await waitUntil(() => sup.pid === null, 10000, 'the producer process to exit');
    assert.equal(existsSync(sup.socketPath), false);
    assert.equal((await sup.shutdown()).killed, false);
  });

  test('PRODUCE_TXN without kafka.transactions is refused with a code', T, async () => {
    const topic = uniqueTopic('notxn');
    const h = await harness();
    const r = await new Promise<KafkaDeliveryError | null>((resolve) => h.link.produceTransaction([{ topic, value: 'x' }], (err) => resolve(err)));
    assert.ok(r instanceof KafkaDeliveryError);
    assert.equal(r.kafkaCode, -1002);
    assert.equal(r.code, 'SLUICE_ERR_KAFKA_REJECTED');
    await dispose(h);
  });
});
