/**
 * The common way to run a contender: one pinned process, ready when it answers HTTP on its
 * listen port, stopped with a signal (SIGKILL after 10 s).
 */
import * as path from 'node:path';
import { isAlive, spawnPinned, stopChild, tailFile, waitHttpReady } from '../lib/proc';
import type { RunningContender, StartContext } from './types';

export interface ProcessSpec {
  cmd: string;
  args: readonly string[];
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Signal for a clean stop (nginx and HAProxy: SIGTERM is their fast stop too). */
  stopSignal?: NodeJS.Signals;
  readyTimeoutMs?: number;
}

export async function startProcess(name: string, ctx: StartContext, spec: ProcessSpec): Promise<RunningContender> {
  const logFile = path.join(ctx.workDir, `${name}.log`);
  const child = spawnPinned(spec.cmd, spec.args, { cpus: ctx.cpus, cwd: spec.cwd ?? ctx.root, env: spec.env, logFile });
  const spawnError = new Promise<never>((_resolve, reject) => child.once('error', reject));
  try {
    await Promise.race([waitHttpReady(ctx.listen.host, ctx.listen.port, child, spec.readyTimeoutMs ?? 20_000, '/', ctx.tls !== null), spawnError]);
  } catch (e) {
    await stopChild(child, 'SIGKILL');
    const tail = tailFile(logFile);
    throw new Error(`${name}: ${(e as Error).message}${tail ? `\n--- ${logFile} (tail) ---\n${tail}` : ''}`);
  }
  const pid = child.pid;
  if (pid === undefined) throw new Error(`${name}: no pid`);
  return {
    target: ctx.listen,
    pid,
    logFile,
    alive: () => isAlive(child),
    stop: () => stopChild(child, spec.stopSignal ?? 'SIGTERM'),
  };
}
