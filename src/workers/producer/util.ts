/**
 * Small helpers the producer process's modules share: timers as promises, retry back-off, a
 * FIFO, reading a librdkafka error, and the flag that says the process is shutting down.
 *
 * Must never: hold state of its own (beyond what a caller creates), or import the Kafka
 * client or another module of this directory.
 */
import { KERR } from '../../shared/kafka-frames';
import type { Logger } from '../../shared/log';

/** link number * 2^32 + record id: the main client's opaque (ids are u32). */
export const TWO_32 = 4294967296;
const RETRY_MIN_MS = 250;
const RETRY_MAX_MS = 5000;

/** Set once by the shutdown sequence; every loop that retries or restarts a client reads it. */
export interface StopFlag {
  stopping: boolean;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Resolves true once `pred()` holds, false after `timeoutMs` (checked every `stepMs`). */
export async function waitFor(pred: () => boolean, timeoutMs: number, stepMs = 10): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() >= end) return false;
    await sleep(Math.min(stepMs, Math.max(1, end - Date.now())));
  }
  return true;
}

export function backoff(attempt: number): number {
  const base = Math.min(RETRY_MAX_MS, RETRY_MIN_MS * 2 ** Math.min(attempt, 10));
  return Math.round(base / 2 + Math.random() * (base / 2));
}

export function errCode(e: unknown): number {
  const c = (e as { code?: unknown } | null)?.code;
  return typeof c === 'number' ? c : KERR.STATE;
}

export function errText(e: unknown): string {
  return e instanceof Error ? e.message : String((e as { message?: unknown } | null)?.message ?? e);
}

/** A FIFO with O(1) shift (records waiting for Kafka keep their order). */
export class Fifo<T> {
  private items: (T | undefined)[] = [];
  private head = 0;
  get length(): number {
    return this.items.length - this.head;
  }
  push(v: T): void {
    this.items.push(v);
  }
  peek(): T | undefined {
    return this.items[this.head];
  }
  shift(): T | undefined {
    if (this.head >= this.items.length) return undefined;
    const v = this.items[this.head];
    this.items[this.head++] = undefined;
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return v;
  }
}

/** Logs a failed attempt to bring a client up (a warning the first time) and waits `inMs`. */
export async function retryPause(log: Logger, msg: string, attempt: number, e: unknown, inMs: number, extra: Record<string, unknown> = {}): Promise<void> {
  (attempt === 0 ? log.warn : log.debug).call(log, msg, { ...extra, attempt: attempt + 1, inMs, code: errCode(e), reason: errText(e) });
  await sleep(inMs);
}
