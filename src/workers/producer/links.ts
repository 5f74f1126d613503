/**
 * The HTTP workers' links: the Unix-socket server, one `Conn` per KafkaLink, frame decoding
 * up to the record (HELLO here; PRODUCE and PRODUCE_TXN handed to a `FrameSink`), and the
 * replies: REPORT, TXN_REPORT and STATUS frames, written once per event-loop turn per link.
 * A link ends (final STATUS, then our side closed) once it sent EOF and nothing of it is
 * pending.
 *
 * Must never: decide a record's client or outcome (the sink and the ledger do), crash on a
 * bad frame (it closes that link only), or buffer without bound for a link that stops
 * reading (MAX_LINK_OUTPUT_BYTES cuts it).
 */
import * as fs from 'node:fs';
import * as net from 'node:net';

import { FRAME, FrameError, FrameReader, FrameWriter, MAX_FRAME_BYTES, PROTOCOL_VERSION, ProducerStatus, decodeHello } from '../../shared/kafka-frames';
import type { Logger } from '../../shared/log';

/** A link that stops reading its reports is cut past this many unsent bytes. */
const MAX_LINK_OUTPUT_BYTES = 64 * 1024 * 1024;

/** One HTTP worker's link. */
export interface Conn {
  readonly no: number;
  readonly sock: net.Socket;
  readonly reader: FrameReader;
  readonly writer: FrameWriter;
  workerId: number;
  hello: boolean;
  received: number;
  delivered: number;
  failed: number;
  ffDelivered: number;
  ffFailed: number;
  /** Fire-and-forget records of an epoch in which records of several links failed (whose is not known). */
  ffUnknown: number;
  /** Records taken on this link without a final outcome yet. */
  pending: number;
  pendingTxn: number;
  /** The link sent EOF: finish once nothing is pending. */
  readEnded: boolean;
  finished: boolean;
  dirty: boolean;
}

/** Who takes a link's records (after HELLO). */
export interface FrameSink {
  /** A PRODUCE frame's body `buf[s, e)`. */
  produce(conn: Conn, buf: Buffer, s: number, e: number): void;
  /** A PRODUCE_TXN frame's body. */
  produceTxn(conn: Conn, buf: Buffer, s: number, e: number): void;
  /** A read's run of PRODUCE frames from `s` (FrameReader's onRun): returns where it stopped. */
  produceRun(conn: Conn, buf: Buffer, s: number, e: number): number;
}

/** Fills the producer-wide fields of a STATUS, and `conn`'s (null: none). */
export type StatusFiller = (s: ProducerStatus, conn: Conn | null, final: boolean) => void;

export class Links {
  readonly conns = new Map<number, Conn>();
  private nextConnNo = 1;
  private readonly server: net.Server;
  private readonly dirty: Conn[] = [];
  private flushScheduled = false;
  private accepting = true;
  private readingPaused = false;
  private readonly status = new ProducerStatus();

  constructor(
    readonly socketPath: string,
    private readonly log: Logger,
    private readonly sink: FrameSink,
    private readonly fillStatus: StatusFiller,
  ) {
    this.server = net.createServer({ allowHalfOpen: true }, (sock) => this.onConnection(sock));
    this.server.on('error', (e) => this.log.error('producer socket server error', { err: e }));
  }

  /** Listens on the socket (replacing a stale socket file). */
  async listen(): Promise<void> {
    await removeStaleSocket(this.socketPath);
    await new Promise<void>((resolve, reject) => {
      const onErr = (e: Error): void => reject(e);
      this.server.once('error', onErr);
      this.server.listen(this.socketPath, () => {
        this.server.off('error', onErr);
        resolve();
      });
    });
    try {
      fs.chmodSync(this.socketPath, 0o600);
    } catch {
      // The directory's permissions still apply.
    }
  }

  /** Shutdown: new links are refused, and the socket stops listening. */
  stopAccepting(): void {
    this.accepting = false;
    this.server.close();
  }

  /** Shutdown: nothing more is read from any link (now or later connected). */
  pauseReading(): void {
    this.readingPaused = true;
    for (const c of this.conns.values()) c.sock.pause();
  }

  get(no: number): Conn | undefined {
    return this.conns.get(no);
  }

  get size(): number {
    return this.conns.size;
  }

  private onConnection(sock: net.Socket): void {
    if (!this.accepting) {
      sock.destroy();
      return;
    }
    let no = this.nextConnNo;
    while (this.conns.has(no)) no = no >= 1 << 20 ? 1 : no + 1;
    this.nextConnNo = no >= 1 << 20 ? 1 : no + 1;
    const conn: Conn = {
      no,
      sock,
      reader: new FrameReader(
        (type, buf, s, e) => this.onFrame(conn, type, buf, s, e),
        MAX_FRAME_BYTES,
        (buf, s, e) => this.sink.produceRun(conn, buf, s, e),
      ),
      writer: new FrameWriter(16 * 1024),
      workerId: -1,
      hello: false,
      received: 0,
      delivered: 0,
      failed: 0,
      ffDelivered: 0,
      ffFailed: 0,
      ffUnknown: 0,
      pending: 0,
      pendingTxn: 0,
      readEnded: false,
      finished: false,
      dirty: false,
    };
    this.conns.set(no, conn);
    sock.on('data', (chunk: Buffer) => {
      try {
        conn.reader.push(chunk);
      } catch (e) {
        this.log.warn('bad frame from a link; closing it', { worker: conn.workerId, err: e });
        sock.destroy();
      }
    });
    sock.on('end', () => {
      conn.readEnded = true;
      this.maybeFinish(conn);
    });
    sock.on('error', (e) => this.log.debug('link socket error', { worker: conn.workerId, err: e }));
    sock.on('close', () => {
      this.conns.delete(no);
      if (conn.pending > 0 || conn.pendingTxn > 0) {
        this.log.warn('link closed with records in flight (their outcome is unknown to the worker)', {
          worker: conn.workerId,
          pending: conn.pending + conn.pendingTxn,
        });
      }
    });
    if (this.readingPaused) sock.pause();
    this.sendStatus(conn);
  }

  private onFrame(conn: Conn, type: number, buf: Buffer, s: number, e: number): void {
    if (!conn.hello && type !== FRAME.HELLO) throw new FrameError(`frame type ${type} before HELLO`);
    switch (type) {
      case FRAME.HELLO: {
        const h = decodeHello(buf, s, e);
        if (h.version !== PROTOCOL_VERSION) throw new FrameError(`protocol version ${h.version}, expected ${PROTOCOL_VERSION}`);
        conn.hello = true;
        conn.workerId = h.workerId;
        this.log.debug('link connected', { worker: h.workerId });
        return;
      }
      case FRAME.PRODUCE:
        this.sink.produce(conn, buf, s, e);
        return;
      case FRAME.PRODUCE_TXN:
        this.sink.produceTxn(conn, buf, s, e);
        return;
      default:
        throw new FrameError(`unexpected frame type ${type}`);
    }
  }

  /** `conn` has frames to send: written at the end of this turn, with everything else it gets. */
  markDirty(conn: Conn): void {
    if (conn.dirty) return;
    conn.dirty = true;
    this.dirty.push(conn);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(this.flushLinks);
    }
  }

  private readonly flushLinks = (): void => {
    this.flushScheduled = false;
    for (let i = 0; i < this.dirty.length; i++) this.flushLink(this.dirty[i] as Conn);
    this.dirty.length = 0;
  };

  private flushLink(conn: Conn): void {
    conn.dirty = false;
    if (conn.writer.len === 0) return;
    if (conn.sock.destroyed || !conn.sock.writable) {
      conn.writer.truncate(0);
      return;
    }
    conn.sock.write(conn.writer.takeCopy());
    if (conn.sock.writableLength > MAX_LINK_OUTPUT_BYTES) {
      this.log.error('a link is not reading its delivery reports; closing it', { worker: conn.workerId, unsent: conn.sock.writableLength });
      conn.sock.destroy();
    }
  }

  sendStatus(conn: Conn, final = false): void {
    if (conn.finished) return;
    this.fillStatus(this.status, conn, final);
    conn.writer.status(this.status);
    this.markDirty(conn);
  }

  broadcastStatus(): void {
    for (const c of this.conns.values()) this.sendStatus(c);
  }

  /** The link sent EOF and nothing of it is pending: final STATUS, then close our side. */
  maybeFinish(conn: Conn): void {
    if (conn.finished || !conn.readEnded || conn.pending > 0 || conn.pendingTxn > 0) return;
    this.finish(conn);
  }

  finish(conn: Conn): void {
    if (conn.finished) return;
    this.sendStatus(conn, true);
    conn.finished = true;
    this.flushLink(conn);
    conn.sock.end();
  }
}

/**
 * A socket file left by a dead producer is removed; a live one (something answers) or a path
 * that is not a socket is an error: never delete what is not ours.
 */
async function removeStaleSocket(path: string): Promise<void> {
  let st: fs.Stats;
  try {
    st = fs.lstatSync(path);
  } catch {
    return;
  }
  if (!st.isSocket()) throw new Error(`${path} exists and is not a socket; refusing to replace it`);
  const alive = await new Promise<boolean>((resolve) => {
    const s = net.connect(path);
    const t = setTimeout(() => {
      s.destroy();
      resolve(false);
    }, 500);
    s.once('connect', () => {
      clearTimeout(t);
      s.destroy();
      resolve(true);
    });
    s.once('error', () => {
      clearTimeout(t);
      resolve(false);
    });
  });
  if (alive) throw new Error(`another producer is listening on ${path}`);
  fs.unlinkSync(path);
}
