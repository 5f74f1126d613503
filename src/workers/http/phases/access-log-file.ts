/**
 * The access log's file sink in one worker (log.accessFile; docs/access-log.md). Every
 * worker opens the file itself with O_APPEND and writes whole lines, so lines from several
 * workers never interleave: with O_APPEND the kernel positions each write at the end of the
 * file atomically, and a write of a regular file runs under the file's lock on Linux.
 *
 * Writes are asynchronous (libuv's thread pool), one in flight at a time, so the order of
 * lines is kept; lines that arrive meanwhile are joined into the next write, which batches
 * naturally under load. The event loop never waits for the disk. When the disk falls behind
 * by more than MAX_BUFFERED characters, new lines are dropped and counted (a warning says
 * so) instead of growing without bound.
 *
 * Reopening (SIGHUP reload: log rotation) opens the path again before the old descriptor is
 * closed, after its last write; a path that cannot be opened keeps the old file.
 *
 * Must never: block the event loop on the disk, write part of a line in one write and the
 * rest in another (except after a short write, which only a full disk causes).
 */
import { close, closeSync, openSync, write } from 'node:fs';
import type { Logger } from '../../../shared/log';

/** Characters waiting for the disk before new lines are dropped. */
const MAX_BUFFERED = 8 * 1024 * 1024;

export class AccessLogFile {
  private fd = -1;
  private path = '';
  private lines: string[] = [];
  private buffered = 0;
  private writing = false;
  /** Descriptors replaced by a reopen, closed once the write in flight finished. */
  private retired: number[] = [];
  /** Lines lost: dropped while the disk was behind, or failed writes. */
  dropped = 0;
  /** A warning was logged since the last successful write (one per episode). */
  private warned = false;

  constructor(
    path: string,
    private readonly log: Logger,
  ) {
    this.reopen(path);
    // Worker threads share the process's descriptors: give ours back when the thread ends.
    process.once('exit', () => {
      for (const fd of [this.fd, ...this.retired]) if (fd >= 0) closeSync(fd);
      this.fd = -1;
    });
  }

  /** Opens `path` (again); the old descriptor closes after its last write. */
  reopen(path: string): void {
    let fd: number;
    try {
      fd = openSync(path, 'a');
    } catch (e) {
      this.log.error('access log: cannot open the file; keeping the current one', { path, err: e, current: this.fd >= 0 ? this.path : null });
      return;
    }
    if (this.fd >= 0) this.retired.push(this.fd);
    this.fd = fd;
    this.path = path;
    if (!this.writing) this.closeRetired();
  }

  /** Closes the file after the lines already taken are written. */
  close(): void {
    if (this.fd >= 0) this.retired.push(this.fd);
    this.fd = -1;
    if (!this.writing) this.closeRetired();
  }

  /** The AccessLogPhase writer: one whole line, newline included. */
  readonly write = (line: string): void => {
    if (this.fd < 0) {
      this.drop(1, 'the file is not open; dropping access log lines');
      return;
    }
    if (this.buffered > MAX_BUFFERED) {
      this.drop(1, 'the disk is behind; dropping access log lines');
      return;
    }
    this.lines.push(line);
    this.buffered += line.length;
    if (!this.writing) this.flush();
  };

  private flush(): void {
    if (this.lines.length === 0 || this.fd < 0) return;
    const data = Buffer.from(this.lines.length === 1 ? (this.lines[0] as string) : this.lines.join(''), 'utf8');
    const count = this.lines.length;
    this.lines = [];
    this.buffered = 0;
    this.writing = true;
    this.writeFrom(this.fd, data, 0, count);
  }

  private writeFrom(fd: number, data: Buffer, offset: number, count: number): void {
    write(fd, data, offset, data.length - offset, null, (err, n) => {
      if (err === null && offset + n < data.length && n > 0) {
        this.writeFrom(fd, data, offset + n, count);
        return;
      }
      if (err !== null || n === 0) this.drop(count, 'writing the access log failed', err);
      else this.warned = false;
      this.writing = false;
      this.closeRetired();
      this.flush();
    });
  }

  private drop(count: number, msg: string, err?: Error | null): void {
    this.dropped += count;
    if (this.warned) return;
    this.warned = true;
    this.log.warn(`access log: ${msg}`, { path: this.path, dropped: this.dropped, err: err ?? undefined });
  }

  private closeRetired(): void {
    for (const fd of this.retired.splice(0)) close(fd, () => undefined);
  }
}
