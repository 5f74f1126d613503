/**
 * Raw client bytes for listener tests: PROXY protocol v2 headers written byte by byte, a
 * bare GET, and a client connection that reads Content-Length-framed responses one by one.
 */
import { connect } from 'node:net';
import type { Duplex } from 'node:stream';
import { waitFor } from './helpers';

export const V2_SIG = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);

/** A PROXY v2 header, command PROXY, TCP over IPv4 (`src` dotted) or IPv6 (`src` 16 bytes). */
export function proxyV2(src: string | Buffer, srcPort = 40000, dstPort = 80): Buffer {
  let fam: number;
  let addr: Buffer;
  if (typeof src === 'string') {
    fam = 0x11;
    addr = Buffer.alloc(12);
    Buffer.from(src.split('.').map(Number)).copy(addr, 0);
    Buffer.from([127, 0, 0, 1]).copy(addr, 4);
    addr.writeUInt16BE(srcPort, 8);
    addr.writeUInt16BE(dstPort, 10);
  } else {
    fam = 0x21;
    addr = Buffer.alloc(36);
    src.copy(addr, 0);
    addr[31] = 1;
    addr.writeUInt16BE(srcPort, 32);
    addr.writeUInt16BE(dstPort, 34);
  }
  const head = Buffer.from([0x21, fam, 0, 0]);
  head.writeUInt16BE(addr.length, 2);
  return Buffer.concat([V2_SIG, head, addr]);
}

/** A PROXY v2 LOCAL header (a health check by the load balancer itself: no address). */
export function proxyV2Local(): Buffer {
  return Buffer.concat([V2_SIG, Buffer.from([0x20, 0x00, 0, 0])]);
}

export function rawGet(path: string, id: string, extra = ''): string {
  return `GET ${path} HTTP/1.1\r\nHost: acl.test\r\nx-request-id: ${id}\r\n${extra}\r\n`;
}

/**
 * A raw client connection that reads complete responses (Content-Length framed) one by one:
 * a new TCP connection to 127.0.0.1:port, or a stream already set up (a TLS socket).
 */
export class RawClient {
  private buf = '';
  closed = false;
  readonly sock: Duplex;
  private readonly ready: Promise<void>;

  constructor(target: number | { readonly stream: Duplex; readonly ready: Promise<void> }) {
    if (typeof target === 'number') {
      const sock = connect(target, '127.0.0.1');
      this.sock = sock;
      this.ready = new Promise((r) => sock.once('connect', () => r()));
    } else {
      this.sock = target.stream;
      this.ready = target.ready;
    }
    this.sock.setEncoding('latin1');
    this.sock.on('data', (d: string) => (this.buf += d));
    this.sock.on('close', () => (this.closed = true));
    this.sock.on('error', () => undefined);
  }

  async send(bytes: Buffer | string): Promise<void> {
    await this.ready;
    this.sock.write(bytes);
  }

  /** The next complete response: status and body. */
  async response(): Promise<{ status: number; body: string }> {
    let out: { status: number; body: string } | null = null;
    await waitFor(() => {
      const end = this.buf.indexOf('\r\n\r\n');
      if (end === -1) return false;
      const head = this.buf.slice(0, end);
      const m = /content-length: *(\d+)/i.exec(head);
      const len = m === null ? 0 : Number(m[1]);
      if (this.buf.length < end + 4 + len) return false;
      out = { status: Number(head.slice(9, 12)), body: this.buf.slice(end + 4, end + 4 + len) };
      this.buf = this.buf.slice(end + 4 + len);
      return true;
    }, 'a complete response');
    return out as unknown as { status: number; body: string };
  }

  received(): string {
    return this.buf;
  }

  close(): void {
    this.sock.destroy();
  }
}
