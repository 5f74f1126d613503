/**
 * parseArenaHead and compactArenaHead, the addon's bound forms that the worker uses for heads
 * its reader read: over the reader's arena, into the arrays `headBind` gave, they must give
 * exactly what parseResponseHead and compactResponseHead give for the same bytes (return
 * value, every slot of the offsets, the block), and refuse clearly when they cannot run.
 * This file opens the reader itself, on its own arena, so it runs in a process of its own
 * (node --test runs each file in one).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { COMPACT_NOT_SIMPLE, COMPACT_TOO_LARGE, headOutLength, loadNative } from '../../src/shared/native';

const native = loadNative();

const STATUS = ['HTTP/1.1 200 OK', 'HTTP/1.0 404 Not Found', 'HTTP/1.1 204 No Content', 'HTTP/1.1 500', 'HTTP/1.1 200 \xe9t\xe9'];
const LINES = [
  'Content-Type: text/plain',
  'Content-Length: 12',
  'Transfer-Encoding: chunked',
  'Connection: keep-alive',
  'Connection: close, X-Private',
  'Keep-Alive: timeout=5',
  'Date: Tue, 26 Nov 2025 11:36:00 GMT',
  'Server: nginx',
  'X-Obs: caf\xe9',
  'Set-Cookie: a=b; Path=/',
  'bad header',
  'X-Empty:',
];

/** Heads of many shapes (valid, hop-by-hop, non-ASCII, malformed), from a fixed seed. */
function heads(): Buffer[] {
  let seed = 7;
  const next = (n: number): number => {
    seed = (seed * 1103515245 + 12345) >>> 0;
    return seed % n;
  };
  const out: Buffer[] = [];
  for (const status of STATUS) {
    out.push(Buffer.from(`${status}\r\n\r\n`, 'latin1'));
    for (let k = 0; k < 20; k++) {
      const lines = Array.from({ length: 1 + next(6) }, () => LINES[next(LINES.length)] as string);
      out.push(Buffer.from(`${status}\r\n${lines.join('\r\n')}\r\n\r\nbody`, 'latin1'));
    }
  }
  return out;
}

/** parseResponseHead's result over the same bytes of the arena, into offsets of its own. */
function general(arena: Buffer, start: number, end: number): { ret: number; out: number[] } {
  const out = new Uint32Array(headOutLength(100)).fill(0xdeadbeef);
  const ret = native.parseResponseHead(arena, start, end, out);
  return { ret, out: Array.from(out) };
}

test('the bound forms refuse to run before headBind, and before the reader is open', () => {
  assert.throws(() => native.parseArenaHead(0, 10), /parseArenaHead: headBind was not called on this thread/);
  assert.throws(() => native.compactArenaHead('200 OK', ''), /compactArenaHead: headBind was not called on this thread/);
  assert.throws(() => native.headBind(new Uint32Array(2), Buffer.alloc(16)), /headBind: out must be a Uint32Array/);
  assert.throws(() => native.headBind(new Uint32Array(headOutLength(4)), new Uint32Array(4) as unknown as Uint8Array), /headBind: dst must be a Uint8Array/);
  native.headBind(new Uint32Array(headOutLength(4)), Buffer.alloc(64));
  assert.throws(() => native.parseArenaHead(0, 10), /parseArenaHead: the reader is not open on this thread/);
  assert.throws(() => native.compactArenaHead('200 OK', ''), /compactArenaHead: the reader is not open on this thread/);
});

test('over the reader arena they give what the general forms give, slot for slot and byte for byte', () => {
  const arena = Buffer.alloc(1024 * 1024);
  native.readerOpen(arena, new Int32Array(64), () => {});
  const out = new Uint32Array(headOutLength(100));
  const block = Buffer.alloc(4096);
  native.headBind(out, block);
  const twinBlock = Buffer.alloc(4096);
  let parsed = 0;
  let compacted = 0;
  let declined = 0;
  for (const [i, head] of heads().entries()) {
    const start = (i * 37) % 1000;
    head.copy(arena, start);
    const end = start + head.length;
    const expected = general(arena, start, end);
    out.fill(0xdeadbeef);
    const ret = native.parseArenaHead(start, end);
    assert.deepEqual({ ret, out: Array.from(out) }, expected, head.toString('latin1'));
    if (ret <= 0) continue;
    parsed++;
    const twinOut = Uint32Array.from(expected.out);
    const extra = '\r\nvia: 1.1 sluice';
    const n = native.compactArenaHead('200 OK', extra);
    assert.equal(n, native.compactResponseHead(arena, twinOut, twinBlock, '200 OK', extra), head.toString('latin1'));
    if (n >= 0) {
      assert.ok(block.subarray(0, n).equals(twinBlock.subarray(0, n)), head.toString('latin1'));
      compacted++;
    } else {
      assert.equal(n, COMPACT_NOT_SIMPLE);
      declined++;
    }
  }
  assert.ok(parsed > 20 && compacted > 10 && declined > 0, `${parsed} parsed, ${compacted} compacted, ${declined} declined`);
  // Limits and ranges as in the general forms.
  const head = Buffer.from('HTTP/1.1 200 OK\r\nServer: x\r\n\r\n');
  head.copy(arena, 0);
  const tooLarge = native.parseArenaHead(0, head.length, 10);
  assert.ok(tooLarge < 0, 'a head over maxHeadBytes is an error');
  assert.equal(tooLarge, native.parseResponseHead(arena, 0, head.length, new Uint32Array(headOutLength(4)), 10));
  assert.throws(() => native.parseArenaHead(0, arena.length + 1), RangeError);
  assert.throws(() => native.parseArenaHead(0, 10, 0), /parseArenaHead: maxHeadBytes must be >= 1/);
  // A block that does not fit the bound destination.
  assert.equal(native.parseArenaHead(0, head.length), head.length);
  native.headBind(out, Buffer.alloc(8));
  assert.equal(native.compactArenaHead('200 OK', ''), COMPACT_TOO_LARGE);
});
