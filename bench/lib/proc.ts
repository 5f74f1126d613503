/**
 * Processes for the bench: start pinned (taskset), wait until they answer HTTP, stop them,
 * and read what they cost from /proc (CPU time of a whole process tree including all threads
 * and reaped children, peak RSS). Linux only; the bench never runs elsewhere.
 */
import { spawn, spawnSync, execFileSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import * as net from 'node:net';

/** Clock ticks per second, the unit of /proc/<pid>/stat times. */
export const CLK_TCK = ((): number => {
  try {
    const n = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
    return Number.isFinite(n) && n > 0 ? n : 100;
  } catch {
    return 100;
  }
})();

export interface SpawnOptions {
  /** taskset CPU list (`0`, `0,1`), or null for no pinning. */
  cpus: string | null;
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** stdout and stderr are appended here. */
  logFile: string;
}

/** Every process spawnPinned started that has not exited yet. */
const spawned = new Set<ChildProcess>();

/** Last resort on the way out: SIGKILL whatever spawnPinned started and is still alive. */
export function killAllSpawned(): void {
  for (const child of spawned) if (isAlive(child)) child.kill('SIGKILL');
  spawned.clear();
}

/**
 * Spawn `cmd args` under `taskset -c cpus`. taskset execs the command, so the child's pid is
 * the pinned program's own pid (what /proc accounting needs); its children inherit the mask.
 */
export function spawnPinned(cmd: string, args: readonly string[], opts: SpawnOptions): ChildProcess {
  const fd = fs.openSync(opts.logFile, 'a');
  try {
    const [file, argv] = opts.cpus === null ? [cmd, [...args]] : ['taskset', ['-c', opts.cpus, cmd, ...args]];
    const child = spawn(file, argv, { cwd: opts.cwd, env: opts.env ?? process.env, stdio: ['ignore', fd, fd] });
    spawned.add(child);
    child.once('exit', () => spawned.delete(child));
    return child;
  } finally {
    fs.closeSync(fd);
  }
}

export function isAlive(child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null;
}

/** Resolve when `child` has exited (immediately if it already has). */
export function waitExit(child: ChildProcess): Promise<void> {
  if (!isAlive(child)) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

/** SIGTERM (or `signal`), then SIGKILL after `graceMs`; resolves when the process is gone. */
export async function stopChild(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM', graceMs = 10_000): Promise<void> {
  if (!isAlive(child)) return;
  const exited = waitExit(child);
  child.kill(signal);
  let timer: NodeJS.Timeout | undefined;
  const killed = new Promise<void>((resolve) => {
    timer = setTimeout(() => {
      if (isAlive(child)) child.kill('SIGKILL');
      resolve();
    }, graceMs);
  });
  await Promise.race([exited, killed]);
  if (timer) clearTimeout(timer);
  await exited;
}

/** One HTTP GET; resolves with the status code of any response, rejects on a socket error. */
export function httpProbe(host: string, port: number, path = '/', timeoutMs = 1000, tls = false): Promise<number> {
  return new Promise((resolve, reject) => {
    // The bench's own certificate is self-signed: readiness only needs an HTTP answer.
    const get = tls ? https.get : http.get;
    const req = get({ host, port, path, agent: false, timeout: timeoutMs, ...(tls ? { rejectUnauthorized: false } : {}) }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('probe timed out')));
    req.on('error', reject);
  });
}

/** The body of `GET path` (plain HTTP), or null on any error or a status other than 200. */
export function httpGetText(host: string, port: number, path: string, timeoutMs = 2000): Promise<string | null> {
  return new Promise((resolve) => {
    const req = http.get({ host, port, path, agent: false, timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve(res.statusCode === 200 ? body : null));
      res.on('error', () => resolve(null));
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', () => resolve(null));
  });
}

/** Poll `GET path` until any HTTP response; fail when the process exits or time runs out. */
export async function waitHttpReady(
  host: string,
  port: number,
  child: ChildProcess | null,
  timeoutMs = 20_000,
  path = '/',
  tls = false,
): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    if (child && !isAlive(child)) {
      throw new Error(`exited before it was ready (code ${child.exitCode}, signal ${child.signalCode})`);
    }
    try {
      return await httpProbe(host, port, path, 1000, tls);
    } catch (e) {
      last = (e as Error).message;
    }
    await sleep(100);
  }
  throw new Error(`not ready on ${host}:${port} after ${timeoutMs} ms (${last})`);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

const handedOut = new Set<number>();

/** A port that was free a moment ago and that this process has not handed out before. */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  for (let i = 0; i < 50; i++) {
    const port = await new Promise<number>((resolve, reject) => {
      const srv = net.createServer();
      srv.once('error', reject);
      srv.listen({ host, port: 0, exclusive: true }, () => {
        const addr = srv.address();
        const p = typeof addr === 'object' && addr ? addr.port : 0;
        srv.close(() => resolve(p));
      });
    });
    if (port > 0 && !handedOut.has(port)) {
      handedOut.add(port);
      return port;
    }
  }
  throw new Error('no free port found');
}

interface StatFields {
  ppid: number;
  /** utime + stime + cutime + cstime, in clock ticks. */
  ticks: number;
}

function readStat(pid: number): StatFields | null {
  let text: string;
  try {
    text = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  // comm (field 2) may contain spaces and parentheses: split after the last ')'.
  // rest[0] is field 3 (state); field n is rest[n - 3].
  const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
  const num = (field: number): number => Number(rest[field - 3] ?? 0);
  return { ppid: num(4), ticks: num(14) + num(15) + num(16) + num(17) };
}

/** `root` and all its live descendants (processes, not threads: thread time is in the process). */
export function processTree(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const pid = Number(name);
    const st = readStat(pid);
    if (!st) continue;
    const list = children.get(st.ppid);
    if (list) list.push(pid);
    else children.set(st.ppid, [pid]);
  }
  const out: number[] = [];
  const queue = [root];
  while (queue.length > 0) {
    const pid = queue.shift() as number;
    out.push(pid);
    for (const c of children.get(pid) ?? []) queue.push(c);
  }
  return out;
}

/**
 * CPU seconds (user + system) used so far by the tree under `root`: every live process's own
 * time (all its threads, living and exited) plus the time of the children it has reaped.
 * A child that exits between two samples moves from "live" to its parent's cutime/cstime,
 * so the difference of two samples stays right.
 */
export function treeCpuSeconds(root: number): number {
  let ticks = 0;
  for (const pid of processTree(root)) ticks += readStat(pid)?.ticks ?? 0;
  return ticks / CLK_TCK;
}

function statusKb(pid: number, key: string): number {
  try {
    const text = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const m = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(text);
    return m?.[1] ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

/** Sum of VmHWM (peak resident set) over the tree, in KiB. */
export function treePeakRssKb(root: number): number {
  let kb = 0;
  for (const pid of processTree(root)) kb += statusKb(pid, 'VmHWM');
  return kb;
}

/**
 * Reset VmHWM to the current RSS for every process of the tree (`echo 5 > clear_refs`), so
 * the next peak is the peak of one measured run. Returns false where that is not permitted.
 */
export function resetPeakRss(root: number): boolean {
  let ok = true;
  for (const pid of processTree(root)) {
    try {
      fs.writeFileSync(`/proc/${pid}/clear_refs`, '5');
    } catch {
      ok = false;
    }
  }
  return ok;
}

export interface CpuJiffies {
  /** Everything but idle and iowait. */
  busy: number;
  total: number;
  /** Hard and soft interrupt time: with IRQ time accounting (this kernel) it is in no
   *  process's utime/stime. On loopback it is mostly the network stack, run on the CPU of
   *  the process that sent the packet. */
  irq: number;
}

export interface CpuTimes {
  perCpu: Map<string, CpuJiffies>;
}

export function readCpuTimes(): CpuTimes {
  const perCpu = new Map<string, CpuJiffies>();
  for (const line of fs.readFileSync('/proc/stat', 'utf8').split('\n')) {
    const m = /^cpu(\d+)\s+(.*)$/.exec(line);
    if (!m || m[1] === undefined || m[2] === undefined) continue;
    const v = m[2].trim().split(/\s+/).map(Number);
    // user nice system idle iowait irq softirq steal (guest time is already in user)
    const total = v.slice(0, 8).reduce((a, b) => a + b, 0);
    const idle = (v[3] ?? 0) + (v[4] ?? 0);
    perCpu.set(m[1], { busy: total - idle, total, irq: (v[5] ?? 0) + (v[6] ?? 0) });
  }
  return { perCpu };
}

/**
 * CPU seconds all CPUs together spent busy in processes between two samples (interrupt time
 * left out: no process is charged with it, so it cannot be told apart from noise this way).
 */
export function processBusySeconds(a: CpuTimes, b: CpuTimes): number {
  let jiffies = 0;
  for (const [cpu, now] of b.perCpu) {
    const prev = a.perCpu.get(cpu) ?? now;
    jiffies += now.busy - now.irq - (prev.busy - prev.irq);
  }
  return jiffies / CLK_TCK;
}

function percentPerCpu(a: CpuTimes, b: CpuTimes, pick: (j: CpuJiffies) => number): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [cpu, now] of b.perCpu) {
    const prev = a.perCpu.get(cpu);
    if (!prev) continue;
    const dt = now.total - prev.total;
    out[cpu] = dt > 0 ? (100 * (pick(now) - pick(prev))) / dt : 0;
  }
  return out;
}

/** Busy percentage of each CPU between two samples (interrupt time included). */
export function cpuBusyPercent(a: CpuTimes, b: CpuTimes): Record<string, number> {
  return percentPerCpu(a, b, (j) => j.busy);
}

/** Interrupt (hard + soft) percentage of each CPU between two samples. */
export function cpuIrqPercent(a: CpuTimes, b: CpuTimes): Record<string, number> {
  return percentPerCpu(a, b, (j) => j.irq);
}

/** Last `lines` lines of a log file, for error messages. */
export function tailFile(file: string, lines = 15): string {
  try {
    return fs.readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}

/** First line of `cmd args` (stdout, else stderr), or null when the command is missing. */
export function commandLine(cmd: string, args: readonly string[]): string | null {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.error) return null;
  const text = `${r.stdout ?? ''}\n${r.stderr ?? ''}`.trim();
  return text.split('\n')[0]?.trim() ?? null;
}

/** Whether `cmd` is on PATH. */
export function hasCommand(cmd: string): boolean {
  return spawnSync('sh', ['-c', 'command -v "$1"', 'sh', cmd], { encoding: 'utf8' }).status === 0;
}

/**
 * Pins every thread of a running process to `cpus` (a taskset list) and returns a function
 * that gives it back the affinity it had; null when taskset refused (no such process, say).
 * New threads inherit the affinity of the thread that creates them.
 */
export function pinRunningProcess(pid: number, cpus: string): (() => void) | null {
  const before = spawnSync('taskset', ['-p', '-c', String(pid)], { encoding: 'utf8' });
  const was = /:\s*(\S+)\s*$/.exec(before.stdout ?? '')?.[1];
  if (before.status !== 0 || was === undefined) return null;
  if (spawnSync('taskset', ['-a', '-p', '-c', cpus, String(pid)], { encoding: 'utf8' }).status !== 0) return null;
  return () => {
    spawnSync('taskset', ['-a', '-p', '-c', was, String(pid)], { encoding: 'utf8' });
  };
}
