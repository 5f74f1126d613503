#!/usr/bin/env node
/**
 * Sluice's entry point: parses the command line, loads and validates the configuration
 * (exit 2 with the option path on error), starts the primary thread's supervisor, wires
 * signals (SIGHUP reload, SIGTERM/SIGINT drain) and exits 0 after a clean drain.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { ConfigError, loadConfig, usesKafka, type SluiceConfig } from '../shared/config';
import { envTableMarkdown } from '../shared/env-table';
import { createLogger } from '../shared/log';
import { Primary } from './primary';

const USAGE = `usage: sluice --config FILE [--demo] [--check]

  --config FILE  YAML or JSON configuration (or SLUICE_CONFIG)
  --demo         also start demo upstreams on the loopback addresses the config names
  --check        validate the configuration and exit (0 = valid, 2 = invalid)
  --env-table    print the SLUICE_* variables as a Markdown table and exit
  --uses-kafka   exit 0 when the configuration produces to Kafka, 1 when not

Every SLUICE_* variable in the README overrides its option.`;

interface Args {
  config: string;
  demo: boolean;
  check: boolean;
  usesKafka: boolean;
}

function parseArgs(argv: readonly string[]): Args {
  const args: Args = { config: process.env.SLUICE_CONFIG ?? '', demo: false, check: false, usesKafka: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--config') args.config = argv[++i] ?? '';
    else if (a?.startsWith('--config=')) args.config = a.slice('--config='.length);
    else if (a === '--demo') args.demo = true;
    else if (a === '--check') args.check = true;
    else if (a === '--uses-kafka') args.usesKafka = true;
    else if (a === '--env-table') {
      process.stdout.write(`${envTableMarkdown()}\n`);
      process.exit(0);
    }
    else if (a === '--help' || a === '-h') {
      process.stdout.write(`${USAGE}\n`);
      process.exit(0);
    } else {
      process.stderr.write(`sluice: unknown argument ${JSON.stringify(a)}\n${USAGE}\n`);
      process.exit(2);
    }
  }
  if (args.config === '') {
    process.stderr.write(`sluice: no configuration given\n${USAGE}\n`);
    process.exit(2);
  }
  return args;
}

function startDemo(config: SluiceConfig): Promise<ChildProcess> {
  const addresses = new Set<string>();
  for (const u of Object.values(config.upstreams)) {
    for (const h of u.hosts) if (/^(127\.|localhost:|\[::1\])/.test(h.address)) addresses.add(h.address);
  }
  const child = fork(join(__dirname, 'demo-upstreams.js'), [...addresses], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  return new Promise((resolve, reject) => {
    child.once('message', () => resolve(child));
    child.once('exit', (code) => reject(new Error(`demo upstreams exited with code ${code}`)));
  });
}

async function main(): Promise<number> {
  const args = parseArgs(process.argv.slice(2));
  let config: SluiceConfig;
  try {
    config = loadConfig(args.config);
  } catch (e) {
    if (e instanceof ConfigError) {
      process.stderr.write(`sluice: invalid configuration in ${e.message.slice(e.message.indexOf(':') + 2)}\n`);
      return 2;
    }
    throw e;
  }
  if (args.usesKafka) return usesKafka(config) ? 0 : 1;
  if (args.check) {
    process.stdout.write(`${args.config}: configuration is valid\n`);
    return 0;
  }
  const log = createLogger(config.log.level, { pid: process.pid, role: 'primary' });
  // Signals are ours from here on, also while the primary starts: the default action of
  // SIGHUP and SIGTERM is to kill the process, and a reload sent right after `listening`
  // could otherwise beat the handler. What arrives before the start finished runs after it.
  let running: Primary | null = null;
  const early: NodeJS.Signals[] = [];
  const onSignal = (sig: NodeJS.Signals): void => {
    if (running === null) early.push(sig);
    else if (sig === 'SIGHUP') running.reload();
    else running.shutdown(sig);
  };
  for (const sig of ['SIGHUP', 'SIGTERM', 'SIGINT'] as const) process.on(sig, onSignal);
  let demo: ChildProcess | null = null;
  if (args.demo) {
    demo = await startDemo(config);
    log.info('demo upstreams started', { pid: demo.pid });
  }
  const primary = new Primary(args.config, config, log);
  try {
    await primary.start();
  } catch (e) {
    log.error('start failed', { reason: (e as Error).message });
    demo?.kill();
    return 1;
  }
  running = primary;
  if (early.length > 0) log.info('signals received during start-up, handled now', { signals: early });
  for (const sig of early) onSignal(sig);
  const code = await primary.done();
  demo?.kill();
  return code;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    process.stderr.write(`sluice: ${(e as Error).stack ?? String(e)}\n`);
    process.exitCode = 1;
  },
);
