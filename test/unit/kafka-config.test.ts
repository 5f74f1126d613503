/**
 * The `kafka` config section (src/shared/kafka-config.ts): defaults, profiles and their
 * overrides, the librdkafka properties produced (and that librdkafka itself accepts them),
 * the semantic checks (idempotence vs acks, SASL/TLS coherence, reserved properties),
 * SLUICE_KAFKA_* variables (prefix, no clash with scripts/kafka.sh, parsing), and the module
 * boundary that keeps the Kafka client out of worker threads.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { Producer, type ProducerGlobalConfig } from '@confluentinc/kafka-javascript';

import {
  KAFKA_ENV_VARS,
  KAFKA_PROFILES,
  KAFKA_SCHEMA,
  buildKafkaConfig,
  librdkafkaConfig,
  redactedLibrdkafkaConfig,
  transactionalId,
  wedgedAfterMs,
  type KafkaConfig,
} from '../../src/shared/kafka-config';
import { describeLeaf, envVars } from '../../src/shared/schema';

const ROOT = join(__dirname, '..', '..', '..');

function build(raw: unknown, env: NodeJS.ProcessEnv = {}): KafkaConfig {
  const r = buildKafkaConfig(raw, env);
  assert.deepEqual(r.issues, [], 'no issues');
  assert.ok(r.config);
  return r.config;
}

function issues(raw: unknown, env: NodeJS.ProcessEnv = {}): string[] {
  const r = buildKafkaConfig(raw, env);
  assert.equal(r.config, undefined, 'refused');
  return r.issues.map((i) => `${i.path} ${i.message}`);
}

/** librdkafka's own verdict on a property set (the constructor validates, nothing connects). */
function librdkafkaAccepts(conf: Record<string, string | number | boolean>): void {
  new Producer({ ...conf, dr_cb: true } as ProducerGlobalConfig);
}

describe('defaults and profiles', () => {
  test('an absent section gets every default', () => {
    const c = build(undefined);
    assert.equal(c.brokers, '127.0.0.1:19092');
    assert.equal(c.profile, 'throughput');
    assert.equal(c.acks, 'all');
    assert.equal(c.idempotence, true);
    assert.equal(c.messageTimeoutMs, 30000);
    assert.equal(c.socketBufferBytes, 8 * 1024 * 1024);
    assert.equal(c.flushTimeoutMs, 10000);
    assert.equal(c.socketDir, '');
    assert.equal(c.transactions, false);
    assert.equal(c.fireAndForgetLingerMs, 100);
    assert.equal(c.linkLingerMs, 100);
    assert.equal(c.security.protocol, 'plaintext');
    assert.deepEqual(c.extra, {});
    assert.ok(Object.isFrozen(c) && Object.isFrozen(c.security));
  });

  test('the default (throughput) properties, exactly', () => {
    assert.deepEqual(librdkafkaConfig(build({})), {
      'bootstrap.servers': '127.0.0.1:19092',
      'client.id': 'sluice',
      'linger.ms': 20,
      'batch.num.messages': 10000,
      'batch.size': 1048576,
      'compression.type': 'zstd',
      acks: 'all',
      'enable.idempotence': true,
      'max.in.flight.requests.per.connection': 5,
      'queue.buffering.max.messages': 100000,
      'queue.buffering.max.kbytes': 65536,
      'message.timeout.ms': 30000,
      'statistics.interval.ms': 5000,
      'socket.keepalive.enable': true,
      'security.protocol': 'plaintext',
    });
  });

  test('the latency profile, and explicit settings win over a profile', () => {
    const lat = librdkafkaConfig(build({ profile: 'latency' }));
    for (const [k, v] of Object.entries(KAFKA_PROFILES.latency)) assert.equal(lat[k], v, k);
    assert.equal(lat['linger.ms'], 1);
    assert.equal(lat['compression.type'], 'lz4');
    const o = librdkafkaConfig(build({ profile: 'latency', compression: 'none', lingerMs: 0, batchBytes: 4096, batchMessages: 10 }));
    assert.equal(o['compression.type'], 'none');
    assert.equal(o['linger.ms'], 0);
    assert.equal(o['batch.size'], 4096);
    assert.equal(o['batch.num.messages'], 10);
  });

  test('acks 1 and 0 need idempotence off; then max.in.flight is left to librdkafka', () => {
    for (const acks of ['1', '0']) {
      const c = librdkafkaConfig(build({ acks, idempotence: false }));
      assert.equal(c['acks'], acks);
      assert.equal(c['enable.idempotence'], false);
      assert.equal(c['max.in.flight.requests.per.connection'], undefined);
    }
  });

  test('extra properties are applied last', () => {
    const c = librdkafkaConfig(build({ extra: { 'linger.ms': '7', 'partitioner': 'murmur2_random', 'compression.level': '3' } }));
    assert.equal(c['linger.ms'], '7');
    assert.equal(c['partitioner'], 'murmur2_random');
    assert.equal(c['compression.level'], '3');
  });

  test('librdkafka accepts the properties of both profiles, acks variants, SASL and TLS', () => {
    librdkafkaAccepts(librdkafkaConfig(build({})));
    librdkafkaAccepts(librdkafkaConfig(build({ profile: 'latency' })));
    librdkafkaAccepts(librdkafkaConfig(build({ acks: '0', idempotence: false, compression: 'gzip' })));
    librdkafkaAccepts(librdkafkaConfig(build({ acks: '1', idempotence: false, compression: 'snappy' })));
    librdkafkaAccepts(
      librdkafkaConfig(build({ security: { protocol: 'sasl_plaintext', saslMechanism: 'SCRAM-SHA-512', username: 'u', password: 'p' } })),
    );
    librdkafkaAccepts(librdkafkaConfig(build({ security: { protocol: 'ssl', verifyHostname: false } })));
  });
});

describe('security pass-through', () => {
  test('SASL over TLS with SCRAM and a CA file', () => {
    const c = librdkafkaConfig(
      build({
        security: { protocol: 'sasl_ssl', saslMechanism: 'SCRAM-SHA-256', username: 'svc', password: 's3cret', caFile: '/etc/kafka/ca.pem' },
      }),
    );
    assert.equal(c['security.protocol'], 'sasl_ssl');
    assert.equal(c['sasl.mechanisms'], 'SCRAM-SHA-256');
    assert.equal(c['sasl.username'], 'svc');
    assert.equal(c['sasl.password'], 's3cret');
    assert.equal(c['ssl.ca.location'], '/etc/kafka/ca.pem');
    assert.equal(c['ssl.endpoint.identification.algorithm'], 'https');
    assert.equal(redactedLibrdkafkaConfig(c)['sasl.password'], '***');
  });

  test('mutual TLS', () => {
    const c = librdkafkaConfig(
      build({ security: { protocol: 'ssl', caFile: '/ca.pem', certFile: '/c.pem', keyFile: '/k.pem', keyPassword: 'kp', verifyHostname: false } }),
    );
    assert.equal(c['ssl.certificate.location'], '/c.pem');
    assert.equal(c['ssl.key.location'], '/k.pem');
    assert.equal(c['ssl.key.password'], 'kp');
    assert.equal(c['ssl.endpoint.identification.algorithm'], 'none');
    assert.equal(c['sasl.mechanisms'], undefined);
    assert.equal(redactedLibrdkafkaConfig(c)['ssl.key.password'], '***');
  });

  test('incoherent security settings are refused with their paths', () => {
    assert.deepEqual(issues({ security: { protocol: 'sasl_ssl' } }), [
      'kafka.security.username is required with protocol sasl_ssl',
      'kafka.security.password is required with protocol sasl_ssl',
    ]);
    assert.deepEqual(issues({ security: { caFile: '/ca.pem' } }), ['kafka.security.caFile is only used with protocol ssl or sasl_ssl (got plaintext)']);
    assert.deepEqual(issues({ security: { protocol: 'ssl', certFile: '/c.pem' } }), ['kafka.security.keyFile certFile and keyFile go together (mutual TLS)']);
    assert.deepEqual(issues({ security: { username: 'u', password: 'p' } }), [
      'kafka.security.username is only used with protocol sasl_plaintext or sasl_ssl (got plaintext)',
    ]);
    assert.match(issues({ security: { saslMechanism: 'GSSAPI' } })[0] as string, /^kafka\.security\.saslMechanism must be one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512/);
  });
});

describe('semantic checks', () => {
  test('acks other than all with idempotence is a contradiction', () => {
    assert.deepEqual(issues({ acks: '1' }), ['kafka.acks must be all when idempotence is on (got 1); set idempotence: false to use acks 1']);
    assert.deepEqual(issues({ extra: { acks: '0' } }), ['kafka.extra.acks must be all when idempotence is on (got 0); set idempotence: false to use acks 0']);
    assert.deepEqual(issues({ acks: '1', idempotence: false, extra: { 'enable.idempotence': 'true' } }), [
      'kafka.extra.enable.idempotence turns idempotence on, which needs acks all (got 1)',
    ]);
    assert.deepEqual(issues({ extra: { 'max.in.flight.requests.per.connection': '10' } }), [
      'kafka.extra.max.in.flight.requests.per.connection must be <= 5 when idempotence is on',
    ]);
  });

  test('reserved and malformed extra properties', () => {
    assert.deepEqual(issues({ extra: { 'transactional.id': 'x' } }), ['kafka.extra.transactional.id is managed by Sluice and cannot be set here']);
    assert.match(issues({ extra: { 'Bad Key': 'x' } })[0] as string, /^kafka\.extra\.Bad Key is not a valid name/);
    assert.match(issues({ extra: { 'linger.ms': 5 } })[0] as string, /^kafka\.extra\.linger\.ms must be a string/);
  });

  test('timeouts librdkafka would refuse', () => {
    assert.deepEqual(issues({ lingerMs: 1000, messageTimeoutMs: 1000 }), ['kafka.messageTimeoutMs must be greater than linger.ms (1000)']);
    assert.deepEqual(issues({ messageTimeoutMs: 100 }), ['kafka.fireAndForgetLingerMs must be less than messageTimeoutMs (100)']);
    assert.equal(build({ messageTimeoutMs: 100, fireAndForgetLingerMs: 99, lingerMs: 5 }).fireAndForgetLingerMs, 99);
    assert.deepEqual(issues({ transactions: true, messageTimeoutMs: 90000, transactionTimeoutMs: 60000 }), [
      'kafka.messageTimeoutMs must not exceed transactionTimeoutMs (60000) when transactions are on',
    ]);
  });

  test('schema errors name the path', () => {
    assert.deepEqual(issues({ brokers: 'nohost' }), ['kafka.brokers must be a comma-separated list of host:port, got "nohost"']);
    assert.deepEqual(issues({ acks: 1 }), ['kafka.acks must be one of all, 1, 0, got 1']);
    assert.match(issues({ lingerz: 5 })[0] as string, /^kafka\.lingerz is not a known option/);
    assert.match(issues({ socketDir: 'relative' })[0] as string, /^kafka\.socketDir must be an absolute path/);
    assert.match(issues({ socketBufferBytes: 10 })[0] as string, /^kafka\.socketBufferBytes must be >= 65536/);
    assert.deepEqual(issues('nope'), ['kafka must be an object, got "nope"']);
  });

  test('several brokers, with spaces, become one bootstrap list', () => {
    assert.equal(librdkafkaConfig(build({ brokers: 'k1:9092, k2:9092 ,[::1]:9093' }))['bootstrap.servers'], 'k1:9092,k2:9092,[::1]:9093');
  });

  test('transactional.id names the instance', () => {
    assert.equal(transactionalId(build({ instanceId: 'edge-7' }), 'host'), 'sluice-edge-7-txn');
    assert.equal(transactionalId(build({}), 'web-1.example.com'), 'sluice-web-1.example.com-txn');
    assert.equal(transactionalId(build({}), 'odd host/name'), 'sluice-odd_host_name-txn');
  });
});

describe('environment variables', () => {
  const BROKER_SCRIPT_VARS = [
    'SLUICE_KAFKA_PORT',
    'SLUICE_KAFKA_CONTROLLER_PORT',
    'SLUICE_KAFKA_DATA_DIR',
    'SLUICE_KAFKA_VERSION',
    'SLUICE_KAFKA_LOG4J_VERSION',
    'SLUICE_KAFKA_HEAP_OPTS',
    'SLUICE_KAFKA_START_TIMEOUT',
    'SLUICE_KAFKA_STOP_TIMEOUT',
    'SLUICE_KAFKA_EXTRA_CONFIG',
    'SLUICE_KAFKA_CDS',
  ];

  test('every variable starts with SLUICE_KAFKA_, is unique, and none is one of scripts/kafka.sh', () => {
    const names = KAFKA_ENV_VARS.map((v) => v.name);
    assert.ok(names.length >= 25);
    for (const n of names) assert.match(n, /^SLUICE_KAFKA_[A-Z0-9_]+$/);
    assert.equal(new Set(names).size, names.length);
    const script = readFileSync(join(ROOT, 'scripts', 'kafka.sh'), 'utf8');
    const scriptVars = new Set([...script.matchAll(/\bSLUICE_[A-Z0-9_]+\b/g)].map((m) => m[0]));
    for (const v of BROKER_SCRIPT_VARS) assert.ok(scriptVars.has(v), `${v} is read by the script`);
    for (const n of names) {
      assert.ok(!scriptVars.has(n), `${n} clashes with scripts/kafka.sh`);
      assert.ok(!BROKER_SCRIPT_VARS.includes(n), `${n} clashes with the broker script's variables`);
    }
  });

  test('every leaf except the extra map has a variable, with a describable type', () => {
    const withEnv = new Set(envVars(KAFKA_SCHEMA).map((v) => v.path.join('.')));
    const leaves: string[] = [];
    const walk = (props: typeof KAFKA_SCHEMA.properties, prefix: string): void => {
      for (const [k, s] of Object.entries(props)) {
        if (s.kind === 'object') walk(s.properties, `${prefix}${k}.`);
        else if (s.kind !== 'map') leaves.push(`${prefix}${k}`);
      }
    };
    walk(KAFKA_SCHEMA.properties, '');
    assert.deepEqual(leaves.filter((l) => !withEnv.has(l)), []);
    for (const v of KAFKA_ENV_VARS) assert.notEqual(describeLeaf(v.schema).type, '');
  });

  test('variables override the file and are parsed for their type', () => {
    const c = build(
      { brokers: 'file:1', acks: 'all', security: { protocol: 'sasl_ssl', username: 'file-user' } },
      {
        SLUICE_KAFKA_BROKERS: 'env1:9092,env2:9092',
        SLUICE_KAFKA_ACKS: '1',
        SLUICE_KAFKA_IDEMPOTENCE: 'false',
        SLUICE_KAFKA_LINGER_MS: '15',
        SLUICE_KAFKA_SASL_PASSWORD: 'from-env',
        SLUICE_KAFKA_SASL_MECHANISM: 'SCRAM-SHA-512',
        SLUICE_KAFKA_PROFILE: 'latency',
      },
    );
    assert.equal(c.brokers, 'env1:9092,env2:9092');
    assert.equal(c.acks, '1');
    assert.equal(c.idempotence, false);
    assert.equal(c.lingerMs, 15);
    assert.equal(c.profile, 'latency');
    assert.equal(c.security.username, 'file-user');
    assert.equal(c.security.password, 'from-env');
    assert.equal(c.security.saslMechanism, 'SCRAM-SHA-512');
  });

  test('a bad variable names itself', () => {
    assert.deepEqual(issues({}, { SLUICE_KAFKA_LINGER_MS: 'soon' }), ['kafka.lingerMs (from SLUICE_KAFKA_LINGER_MS) SLUICE_KAFKA_LINGER_MS must be a number, got "soon"']);
    assert.deepEqual(issues({}, { SLUICE_KAFKA_IDEMPOTENCE: 'maybe' }), [
      'kafka.idempotence (from SLUICE_KAFKA_IDEMPOTENCE) SLUICE_KAFKA_IDEMPOTENCE must be true or false, got "maybe"',
    ]);
  });
});

describe('wedged main client', () => {
  test('waits twice message.timeout.ms, at least 10 s, doubling per replacement that did not help, at most 5 min', () => {
    assert.equal(wedgedAfterMs(3000, 0), 10000);
    assert.equal(wedgedAfterMs(30000, 0), 60000);
    assert.equal(wedgedAfterMs(30000, 1), 120000);
    assert.equal(wedgedAfterMs(3000, 3), 80000);
    assert.equal(wedgedAfterMs(30000, 3), 300000);
    assert.equal(wedgedAfterMs(300000, 0), 300000);
  });
});

describe('module boundaries', () => {
  const SRC = join(ROOT, 'src');
  const KAFKA_CLIENT = '@confluentinc/kafka-javascript';
  const walk = (dir: string): string[] =>
    readdirSync(dir).flatMap((n) => {
      const p = join(dir, n);
      return statSync(p).isDirectory() ? walk(p) : p.endsWith('.ts') ? [p] : [];
    });
  const importsOf = (file: string): string[] =>
    [...readFileSync(file, 'utf8').matchAll(/(?:^\s*(?:import|export)\s[^;]*?from\s+|^\s*import\s+|\brequire\(\s*)'([^']+)'/gm)].map((m) => m[1] as string);

  test('only the producer process imports the Kafka client', () => {
    const offenders = walk(SRC)
      .filter((f) => importsOf(f).includes(KAFKA_CLIENT))
      .map((f) => relative(ROOT, f));
    assert.deepEqual(offenders, ['src/workers/producer/kafka-client.ts']);
  });

  test('nothing a worker thread loads for Kafka reaches the client, even indirectly', () => {
    const seen = new Set<string>();
    const visit = (file: string): void => {
      if (seen.has(file)) return;
      seen.add(file);
      for (const spec of importsOf(file)) {
        assert.notEqual(spec, KAFKA_CLIENT, `${relative(ROOT, file)} imports the Kafka client`);
        if (!spec.startsWith('.')) continue;
        const target = resolve(dirname(file), spec);
        const ts = existsSync(`${target}.ts`) ? `${target}.ts` : join(target, 'index.ts');
        visit(ts);
      }
    };
    visit(join(SRC, 'workers', 'http', 'kafka', 'link.ts'));
    visit(join(SRC, 'main', 'producer-supervisor.ts'));
    assert.ok(seen.size >= 8, `walked ${seen.size} modules`);
    assert.ok(![...seen].some((f) => f.startsWith(join(SRC, 'workers', 'producer'))));
  });
});
