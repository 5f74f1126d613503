/**
 * Keep-alive connection pools to upstream hosts, per worker: raw `net.Socket`s speaking
 * HTTP/1.1, one request at a time per connection (never pipelined). Idle connections are
 * kept LIFO (the warmest first) and closed after the pool's idle timeout, or sooner when the
 * upstream announced a shorter `Keep-Alive: timeout=` (kept one second below it, to stay
 * clear of the upstream closing first: the keep-alive reuse race).
 *
 * A connection delivers socket events to its current owner (the proxied request using it);
 * idle connections that receive bytes or close are dropped from the pool.
 *
 * Must never: pipeline, reuse a connection whose response was not read completely, or keep
 * a per-request timer (idle expiry runs on the coarse clock).
 */
import { connect, type Socket } from 'node:net';
import { coarseNow, track, untrack, type DeadlineHolder } from '../shared/clock';
import type { PoolConfig } from '../shared/config';

export interface ConnOwner {
  onConnect(conn: Conn): void;
  onData(conn: Conn, chunk: Buffer): void;
  onEnd(conn: Conn, err: Error | null): void;
  onDrain(conn: Conn): void;
}

export class Conn implements DeadlineHolder {
  readonly socket: Socket;
  owner: ConnOwner | null = null;
  /** Completed exchanges on this connection: > 0 means it came from the idle pool. */
  uses = 0;
  connected = false;
  closed = false;
  deadline = 0;
  /** Bytes of a partial response head carried between reads. */
  pending: Buffer | null = null;
  /** -1 = no hint; 0 = the upstream will not wait for another request. */
  private keepAliveMs = -1;

  constructor(readonly pool: HostPool) {
    const s = connect({ host: pool.host, port: pool.port });
    s.setNoDelay(true);
    this.socket = s;
    s.on('connect', () => {
      this.connected = true;
      this.owner?.onConnect(this);
    });
    s.on('data', (chunk: Buffer) => {
      const o = this.owner;
      if (o !== null) o.onData(this, chunk);
      else this.destroy(); // bytes on an idle connection: the upstream is out of step
    });
    s.on('drain', () => this.owner?.onDrain(this));
    s.on('error', (err) => this.closeWith(err));
    s.on('close', () => this.closeWith(null));
    s.on('end', () => this.closeWith(null));
  }

  private closeWith(err: Error | null): void {
    if (this.closed) {
      return;
    }
    this.closed = true;
    if (!this.socket.destroyed) this.socket.destroy();
    this.pool.forget(this);
    const o = this.owner;
    this.owner = null;
    o?.onEnd(this, err);
  }

  /** Announced `Keep-Alive: timeout=` of the upstream, in seconds. */
  setKeepAliveHint(seconds: number): void {
    this.keepAliveMs = seconds > 1 ? (seconds - 1) * 1000 : seconds >= 0 ? 0 : -1;
  }

  /** Idle expiry, armed when the connection goes back to the pool. */
  onDeadline(): void {
    if (this.owner === null) this.destroy();
  }

  armIdle(idleTimeoutMs: number): void {
    const limit = this.keepAliveMs > 0 ? Math.min(idleTimeoutMs, this.keepAliveMs) : idleTimeoutMs;
    this.deadline = coarseNow() + limit;
    track(this);
  }

  disarm(): void {
    this.deadline = 0;
    untrack(this);
  }

  /** A hint of 0 (or 1) seconds means the upstream will not wait for another request. */
  get reusableByHint(): boolean {
    return this.keepAliveMs !== 0;
  }

  destroy(): void {
    this.disarm();
    if (!this.closed) {
      this.owner = null;
      this.closeWith(null);
    }
  }
}

export class HostPool {
  readonly host: string;
  readonly port: number;
  private readonly idle: Conn[] = [];
  /** Open connections (idle + in use). */
  open = 0;
  closed = false;

  constructor(
    readonly address: string,
    public settings: PoolConfig,
  ) {
    const colon = address.lastIndexOf(':');
    let h = address.slice(0, colon);
    if (h.startsWith('[')) h = h.slice(1, -1);
    this.host = h;
    this.port = Number(address.slice(colon + 1));
  }

  get idleCount(): number {
    return this.idle.length;
  }

  /**
   * An idle connection (reused) or a new one. Returns null when the host's connection limit
   * is reached. `fresh` skips the idle list (the retry after a reused connection failed).
   */
  acquire(fresh: boolean): Conn | null {
    if (!fresh) {
      while (this.idle.length > 0) {
        const c = this.idle.pop() as Conn;
        c.disarm();
        if (!c.closed) return c;
      }
    }
    const max = this.settings.maxConnectionsPerHost;
    if (max > 0 && this.open >= max) return null;
    this.open++;
    return new Conn(this);
  }

  /** Returns a connection whose exchange completed cleanly. */
  release(c: Conn): void {
    c.owner = null;
    c.uses++;
    if (this.closed || c.closed || !c.reusableByHint || this.idle.length >= this.settings.maxIdlePerHost) {
      c.destroy();
      return;
    }
    this.idle.push(c);
    c.armIdle(this.settings.idleTimeoutMs);
  }

  /** Called by a connection when its socket closed. */
  forget(c: Conn): void {
    this.open--;
    const i = this.idle.indexOf(c);
    if (i !== -1) this.idle.splice(i, 1);
  }

  /** Closes idle connections; connections in use close when their exchange ends. */
  close(): void {
    this.closed = true;
    for (const c of this.idle.splice(0)) c.destroy();
  }
}
