/**
 * The addon reads uWS.js 20.30's binary layouts (native/napi/src/uws20/): the socket behind a
 * response, uSockets' `on_open` slot in a context, the `headers[]` of an HttpRequest. The
 * JavaScript side checks each reading against uWS's own functions before it trusts it and
 * falls back quietly when it does not match, so an upgraded uWS.js would only make the proxy
 * slower. This test makes the upgrade loud instead: it fails, saying what to re-check, when
 * the installed uWS.js is not the 20.30 build those layouts were read from, or when one of
 * the addon's own probes declines on it.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { once } from 'node:events';
import { connect } from 'node:net';
import { test } from 'node:test';
import type { HttpRequest, HttpResponse } from 'uWebSockets.js';
import { loadNative, PEER_FROM_ACCEPT } from '../../src/shared/native';
import { loadUws, uwsBinaryFile, uwsVersion } from '../../src/shared/uws';
import { scanWithUws } from '../../src/workers/http/downstream/request-head';

const WHY =
  'the native addon reads uWS.js v20.30 memory layouts (native/napi/src/uws20/mod.rs says which); ' +
  'with another uWS.js build, re-check every layout listed there before changing this test';

const uws = loadUws();
const addon = loadNative();

test('the installed uWS.js is the 20.30 build the addon reads', () => {
  assert.match(uwsVersion(), /^20\.30\./, `uWS.js is ${JSON.stringify(uwsVersion())}, not 20.30.x: ${WHY}`);
  assert.ok(existsSync(uwsBinaryFile()), `no uWS.js binary at ${uwsBinaryFile()}: ${WHY}`);
});

test("the addon's probes accept the loaded uWS binary, and its readings agree with uWS's own", async () => {
  assert.equal(
    addon.uwsAcceptPeers(uwsBinaryFile()),
    true,
    `uwsAcceptPeers declined ${uwsBinaryFile()}: uSockets' us_socket_context / us_socket_context_on_open are missing, or on_open is not one pointer slot of the context: ${WHY}`,
  );
  const out = new Int32Array(6 + 4 * 64);
  addon.uwsRequestBind(out);
  const peer = new Uint8Array(16);
  const seen: { head: string | null; answer: number; addonUrl: string; uws: { method: string; url: string; headers: string[] }; peer: number[]; uwsPeer: number[]; accept: number; acceptPeer: number[] }[] = [];
  const app = uws.App();
  app.any('/*', (res: HttpResponse, req: HttpRequest) => {
    const head = addon.uwsRequestHead(req);
    const answer = out[0] as number;
    // out: count, method start/end, URL start/end (query included), its first `?` or -1.
    const q = out[5] as number;
    const addonUrl = head === null ? '' : head.substring(out[3] as number, q === -1 ? (out[4] as number) : q);
    const u = scanWithUws(req);
    const n = addon.uwsPeerAddress(res, peer, false);
    const peerBytes = [...peer.subarray(0, Math.max(n, 0))];
    const a = addon.uwsPeerAddress(res, peer, true);
    const acceptPeer = [...peer.subarray(0, Math.max(a & (PEER_FROM_ACCEPT - 1), 0))];
    seen.push({ head, answer, addonUrl, uws: { method: u.method, url: u.url, headers: [...u.headers] }, peer: peerBytes, uwsPeer: [...new Uint8Array(res.getRemoteAddress())], accept: a, acceptPeer });
    res.end('ok');
  });
  let token: unknown = false;
  app.listen('127.0.0.1', 0, (t) => {
    token = t;
    if (t) assert.equal(addon.uwsAcceptPeersOn(t), true, `uwsAcceptPeersOn declined a uWS listen token: ${WHY}`);
  });
  assert.notEqual(token, false, 'uWS did not listen');
  try {
    const s = connect(uws.us_socket_local_port(token as never), '127.0.0.1');
    await once(s, 'connect');
    s.write('GET /compat?x=1 HTTP/1.1\r\nHost: compat\r\nX-Probe: 1\r\n\r\n');
    await once(s, 'data');
    s.destroy();
  } finally {
    uws.us_listen_socket_close(token as never);
    (app as unknown as { close(): void }).close();
  }
  assert.equal(seen.length, 1);
  const r = seen[0] as (typeof seen)[number];
  assert.notEqual(r.head, null, `uwsRequestHead declined an ASCII head (answer ${r.answer}; -3: the HttpRequest's headers[] is not where or what 20.30 has): ${WHY}`);
  assert.equal(r.answer, 2, `uwsRequestHead counted ${r.answer} headers where uWS has 2: ${WHY}`);
  assert.equal(r.addonUrl, r.uws.url, `uwsRequestHead's URL differs from uWS getUrl: ${WHY}`);
  assert.deepEqual(r.uws.headers, ['host', 'compat', 'x-probe', '1']);
  assert.deepEqual(r.peer, r.uwsPeer, `uwsPeerAddress (the socket behind a response, its descriptor at byte 8) differs from getRemoteAddress: ${WHY}`);
  assert.ok(r.accept > PEER_FROM_ACCEPT, `no accept-time address for a connection of a hooked listener (answer ${r.accept}): ${WHY}`);
  assert.deepEqual(r.acceptPeer, r.uwsPeer, `the accept-time address differs from getRemoteAddress: ${WHY}`);
});
