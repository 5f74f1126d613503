/**
 * Structured logs: one JSON object per line, `{ts, level, msg, ...fields}`, on stderr for
 * operational logs (stdout is kept for access logs). Cheap when a level is off: callers on
 * the hot path check `logger.enabled(level)` first.
 */
import type { LogLevel } from './config';

const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export interface Logger {
  enabled(level: LogLevel): boolean;
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  child(fields: Record<string, unknown>): Logger;
  setLevel(level: LogLevel): void;
}

type Sink = (line: string) => void;

const stderrSink: Sink = (line) => {
  process.stderr.write(line);
};

class JsonLogger implements Logger {
  private min: number;
  constructor(
    level: LogLevel,
    private readonly base: Record<string, unknown>,
    private readonly sink: Sink,
  ) {
    this.min = ORDER[level];
  }
  enabled(level: LogLevel): boolean {
    return ORDER[level] >= this.min;
  }
  setLevel(level: LogLevel): void {
    this.min = ORDER[level];
  }
  private write(level: LogLevel, msg: string, fields?: Record<string, unknown>): void {
    if (ORDER[level] < this.min) return;
    const rec = { ts: new Date().toISOString(), level, msg, ...this.base, ...fields };
    this.sink(`${JSON.stringify(rec, errorReplacer)}\n`);
  }
  debug(msg: string, fields?: Record<string, unknown>): void {
    this.write('debug', msg, fields);
  }
  info(msg: string, fields?: Record<string, unknown>): void {
    this.write('info', msg, fields);
  }
  warn(msg: string, fields?: Record<string, unknown>): void {
    this.write('warn', msg, fields);
  }
  error(msg: string, fields?: Record<string, unknown>): void {
    this.write('error', msg, fields);
  }
  child(fields: Record<string, unknown>): Logger {
    return new JsonLogger(levelOf(this.min), { ...this.base, ...fields }, this.sink);
  }
}

function levelOf(n: number): LogLevel {
  return (Object.keys(ORDER) as LogLevel[]).find((k) => ORDER[k] === n) ?? 'info';
}

function errorReplacer(_key: string, value: unknown): unknown {
  if (value instanceof Error) {
    const code = (value as { code?: unknown }).code;
    return code === undefined ? { name: value.name, message: value.message } : { name: value.name, code, message: value.message };
  }
  return value;
}

export function createLogger(level: LogLevel, base: Record<string, unknown> = {}, sink: Sink = stderrSink): Logger {
  return new JsonLogger(level, base, sink);
}
