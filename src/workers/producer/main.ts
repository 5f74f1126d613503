/**
 * The Kafka producer process's entry: a child process forked by the primary's
 * ProducerSupervisor (never a worker thread: the Kafka client's addon aborts the whole
 * process there, confluent-kafka-javascript issue #258). It reads its init from the
 * environment, validates the config, starts the service (service.ts), says `ready` over IPC
 * and turns signals and the supervisor's messages into a shutdown (shutdown.ts), then sends
 * the report and exits.
 *
 * Must never: hold producer logic (it belongs in the service's modules), exit before the
 * shutdown report was sent (bounded by a 1 s timer), or stop on SIGINT while it has a parent
 * (a terminal's Ctrl-C reaches the whole process group: the primary decides).
 */
import { buildKafkaConfig, type KafkaConfig } from '../../shared/kafka-config';
import { PRODUCER_INIT_ENV, type ProducerInit, type SupervisorToProducer } from '../../shared/kafka-messages';
import { createLogger, type Logger } from '../../shared/log';
import { assertNever } from '../../shared/messages';
import { sendToSupervisor as send } from './ipc';
import { ProducerService } from './service';
import { errText } from './util';

function readInit(): ProducerInit {
  const raw = process.env[PRODUCER_INIT_ENV];
  delete process.env[PRODUCER_INIT_ENV];
  if (raw === undefined || raw === '') throw new Error(`${PRODUCER_INIT_ENV} is not set (the producer process is started by the primary)`);
  const init = JSON.parse(raw) as ProducerInit;
  if (typeof init.socketPath !== 'string' || init.socketPath === '') throw new Error('init.socketPath is missing');
  return init;
}

function main(): void {
  let log: Logger = createLogger('info', { proc: 'kafka-producer', pid: process.pid });
  const fatal = (message: string): void => {
    log.error('producer failed to start', { reason: message });
    send({ type: 'fatal', message }, () => process.exit(2));
    setTimeout(() => process.exit(2), 1000).unref();
  };
  let init: ProducerInit;
  let cfg: KafkaConfig;
  try {
    init = readInit();
    log = createLogger(init.logLevel ?? 'info', { proc: 'kafka-producer', pid: process.pid });
    const built = buildKafkaConfig(init.config, {}, 'kafka');
    if (built.config === undefined) throw new Error(`invalid kafka config:\n${built.issues.map((i) => `  ${i.path} ${i.message}`).join('\n')}`);
    cfg = built.config;
  } catch (e) {
    fatal(errText(e));
    return;
  }
  const svc = new ProducerService(cfg, init.socketPath, log, {
    ...(init.pollMode !== undefined ? { pollMode: init.pollMode } : {}),
    ...(init.statusIntervalMs !== undefined ? { statusIntervalMs: init.statusIntervalMs } : {}),
  });
  try {
    svc.validateClientConfig();
  } catch (e) {
    fatal(`librdkafka refused the configuration: ${errText(e)}`);
    return;
  }

  let exiting = false;
  const stop = (reason: string, waitForLinksMs: number): void => {
    void svc.shutdown(reason, waitForLinksMs).then((report) => {
      if (exiting) return;
      exiting = true;
      send({ type: 'shutdown-report', report }, () => process.exit(0));
      setTimeout(() => process.exit(0), 1000).unref();
    });
  };
  process.on('SIGTERM', () => stop('SIGTERM', init.sigtermWaitMs));
  // Ctrl-C in a terminal reaches the whole process group: the primary decides when we stop.
  process.on('SIGINT', () => {
    if (!process.connected) stop('SIGINT', init.sigtermWaitMs);
  });
  process.on('message', (m: SupervisorToProducer) => {
    switch (m.type) {
      case 'shutdown':
        stop(m.reason, m.waitForLinksMs);
        break;
      default:
        assertNever(m.type);
    }
  });
  // The primary is gone (crash, SIGKILL): its workers went with it; flush and leave.
  process.on('disconnect', () => stop('the primary exited', 0));
  process.on('uncaughtException', (e) => {
    log.error('producer crashed', { err: e, stack: e.stack });
    process.exit(1);
  });

  svc
    .listen()
    .then(() => {
      send({ type: 'ready', pid: process.pid, socketPath: init.socketPath });
      svc.startKafka();
    })
    .catch((e: unknown) => fatal(errText(e)));
}

if (require.main === module) main();
