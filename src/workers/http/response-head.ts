/**
 * The upstream response head on its way to the client: parsed by the native addon (offsets
 * into the read buffer, no strings until a phase asks), shown to the responseFilter phases
 * as a ResponseHead, and written to uWS with one call: as the upstream's own bytes when no
 * phase read the header list, else from the strings.
 *
 * Must never: keep a reference to a read buffer past the read (the reader's arena is reused),
 * or make header strings for a head no phase looked at.
 */
import type { HttpResponse } from 'uWebSockets.js';
import { statusLine } from '../../shared/errors';
import { loadNative } from '../../shared/native';
import { findCaseless, type ResponseHead } from './session';
import { HEAD_INCOMPLETE, isResponseHop, NativeHead, nativeHeadOut, parseArenaHeadLazy, parseResponseHeadLazy, type ParsedHead } from './upstream/http1';
import { readerArena } from './upstream/pool';

const MAX_RESPONSE_HEAD = 64 * 1024;

/** Response-head parsing: the native addon's parser (one call per head, offsets back). */
const native = loadNative();
const compactHead = native.compactResponseHead;
export function parseHead(buf: Buffer, start: number, end: number): ParsedHead | typeof HEAD_INCOMPLETE | string {
  // The usual read: a view of the reader's arena, parsed by the bound form.
  if (buf === boundArena || (boundArena === null && bindArena(buf))) return parseArenaHeadLazy(native.parseArenaHead, buf, start, end, MAX_RESPONSE_HEAD);
  return parseResponseHeadLazy(native.parseResponseHead, buf, start, end, MAX_RESPONSE_HEAD);
}

/** Where compactResponseHead writes a head for uWS: a head, the status line and the proxy's own lines. */
let blockBuffer: Buffer | null = null;
const BLOCK_BUFFER_BYTES = MAX_RESPONSE_HEAD + 16 * 1024;

/**
 * The reader's arena, once `headBind` gave the addon this thread's parse offsets and block:
 * heads read there are parsed and compacted by the bound forms (parseArenaHead,
 * compactArenaHead), which take no typed array. Each typed-array argument costs a
 * `napi_get_typedarray_info` per call, five per response in the general forms.
 */
let boundArena: Buffer | null = null;

/** Binds the addon's head forms when `buf` is the reader's arena (opened by the first upstream connection). */
function bindArena(buf: Buffer): boolean {
  const arena = readerArena();
  if (arena === null || buf !== arena) return false;
  native.headBind(nativeHeadOut(), (blockBuffer ??= Buffer.allocUnsafe(BLOCK_BUFFER_BYTES)));
  boundArena = arena;
  return true;
}
/** The last view of the block buffer handed to uWS: the same upstream answer makes heads of one length. */
let lastBlockView: Buffer | null = null;

function blockView(block: Buffer, n: number): Buffer {
  let v = lastBlockView;
  if (v === null || v.length !== n) lastBlockView = v = block.subarray(0, n);
  return v;
}


/**
 * Writes the status line and all headers with one uWS call: writeStatus(text) emits
 * `HTTP/1.1 text\r\n` verbatim, so `text` may carry the header lines after the status (uWS
 * adds its Date and Content-Length lines later, as it does after writeHeader calls). One
 * native call and one string conversion instead of one per header (the per-call cost
 * dominated the response-head write; docs/decisions.md, D12). Values came from the upstream
 * head as latin1 text; when the head has bytes >= 0x80 the block is sent as latin1 bytes so
 * that they pass unchanged.
 */
function writeHead(res: HttpResponse, status: string, hs: readonly string[], nonAscii: boolean): void {
  let block = status;
  for (let i = 0; i < hs.length; i += 2) block += `\r\n${hs[i]}: ${hs[i + 1]}`;
  res.writeStatus(nonAscii ? Buffer.from(block, 'latin1') : block);
}

/**
 * The upstream's headers without the hop-by-hop ones: `h.headers` compacted in place (the
 * parse made it for this response alone), so it no longer lines up with `h.lowerNames`.
 */
function forwardedHeaders(h: ParsedHead): string[] {
  const hs = h.headers;
  const names = h.lowerNames;
  const tokens = h.connectionTokens;
  let w = 0;
  for (let i = 0; i < names.length; i++) {
    const n = names[i] as string;
    if (isResponseHop(n) || (tokens !== null && tokens.includes(n))) continue;
    if (w !== 2 * i) {
      hs[w] = hs[2 * i] as string;
      hs[w + 1] = hs[2 * i + 1] as string;
    }
    w += 2;
  }
  hs.length = w;
  return hs;
}

/**
 * The ResponseHead the responseFilter phases see. Over a NativeHead it answers `has` from the
 * upstream's bytes and keeps `append`ed lines aside, so that the usual response makes no
 * header string at all and goes to uWS as the upstream's own bytes (sendHead). Reading
 * `headers` makes the list (hop-by-hop removed, appended lines after); the head is then
 * written from the list. Valid only during the read that parsed the head.
 */
export class UpstreamHead implements ResponseHead {
  status: number;
  private list: string[] | null = null;
  private added: string[] | null = null;

  constructor(readonly parsed: ParsedHead) {
    this.status = parsed.status;
  }

  get headers(): string[] {
    let l = this.list;
    if (l === null) {
      l = forwardedHeaders(this.parsed);
      const a = this.added;
      if (a !== null) for (const x of a) l.push(x);
      this.added = null;
      this.list = l;
    }
    return l;
  }

  set headers(list: string[]) {
    this.list = list;
    this.added = null;
  }

  /** No phase read `headers`: the head can go out as the upstream's bytes. */
  get untouched(): boolean {
    return this.list === null;
  }

  has(lowerName: string): boolean {
    const h = this.parsed;
    if (this.list === null && h instanceof NativeHead) {
      const found = h.hasForwarded(lowerName);
      if (found !== null) return found || (this.added !== null && findCaseless(this.added, lowerName) !== -1);
    }
    return findCaseless(this.headers, lowerName) !== -1;
  }

  append(name: string, value: string): void {
    if (this.list !== null) this.list.push(name, value);
    else (this.added ??= []).push(name, value);
  }

  /** The appended lines as `\r\nname: value` text. */
  addedText(): string {
    const a = this.added;
    let text = '';
    if (a !== null) for (let i = 0; i < a.length; i += 2) text += `\r\n${a[i]}: ${a[i + 1]}`;
    return text;
  }
}

/**
 * Writes the response head with one uWS call. An untouched head from the native parser goes
 * as bytes: the upstream's header lines less the hop-by-hop ones, copied by the addon
 * (compactResponseHead) after the status line and before the appended lines, so no header
 * string is made or converted. Otherwise, or when the addon declines (a Connection header
 * naming other fields; a block over the buffer), from the strings (writeHead).
 */
export function sendHead(res: HttpResponse, head: UpstreamHead): void {
  const h = head.parsed;
  if (head.untouched && h instanceof NativeHead) {
    const block = (blockBuffer ??= Buffer.allocUnsafe(BLOCK_BUFFER_BYTES));
    const n =
      h.buf === boundArena
        ? native.compactArenaHead(statusLine(head.status), head.addedText())
        : compactHead(h.buf, h.offsets, block, statusLine(head.status), head.addedText());
    if (n >= 0) {
      res.writeStatus(blockView(block, n));
      return;
    }
  }
  writeHead(res, statusLine(head.status), head.headers, h.nonAscii);
}

