/**
 * The TCP peer of a request on a uWS listener, read once per request.
 *
 * uWS 20.30's `getRemoteAddress` answers with a new ArrayBuffer every call, and V8's
 * ArrayBuffers are costly to make and to sweep: with its `getpeername`, a large share of the
 * CPU per proxied request (docs/decisions.md, D14). The addon's `uwsPeerAddress` makes the
 * same `getpeername` on the socket behind the response and writes the address into this
 * reader's buffer instead. It reads uWS.js and uSockets
 * internals to find the socket (native/napi/src/uws20/socket.cc), so a reader trusts it only
 * after its first answer matched `getRemoteAddress`'s, and never again once one did not.
 *
 * With `fromAccept`, the addon answers without the `getpeername` too, from the address
 * `accept` gave for the connection (native/napi/src/uws20/accept_peers.rs), as nginx does: that
 * system call was a visible share of the worker's samples (docs/decisions.md, D14). Those
 * answers are checked the same way, on their own: the first is held to `getRemoteAddress`,
 * and one that differs turns them off for good.
 *
 * Must never: hand out its buffer past the caller's synchronous use (the next read overwrites
 * it; LastPeer copies what it keeps), or pass the addon anything but a live uWS response.
 */
import type { HttpResponse, us_listen_socket } from 'uWebSockets.js';
import { formatAddressBytes } from '../../../shared/cidr';
import type { Logger } from '../../../shared/log';
import { loadNative, PEER_FROM_ACCEPT } from '../../../shared/native';
import { uwsBinaryFile } from '../../../shared/uws';

/**
 * NativeAddon.uwsPeerAddress: bytes written to `out` (4 or 16; plus PEER_FROM_ACCEPT when
 * they are the address `accept` gave), 0 no peer, -1 no live response.
 */
export type PeerAddressFn = (res: object, out: Uint8Array, fromAccept: boolean) => number;

let acceptPeers: boolean | undefined;

/**
 * Whether readers may ask for the addresses `accept` gave: the addon found uSockets in the
 * uWS binary (otherwise one `getpeername` per request, as uWS does). Once per thread.
 */
export function acceptPeersAvailable(): boolean {
  acceptPeers ??= loadNative().uwsAcceptPeers(uwsBinaryFile());
  return acceptPeers;
}

/**
 * Has the addon note the address `accept` gives for every connection `token` (a uWS listen
 * socket, just opened) accepts, from its first: without it, connections accepted before a
 * listener's first request keep a `getpeername` per request. Call it before the event loop
 * runs again (before anything is accepted).
 */
export function notePeersOn(token: us_listen_socket): void {
  if (acceptPeersAvailable()) loadNative().uwsAcceptPeersOn(token);
}

const enum Trust {
  Unchecked = 0,
  Trusted = 1,
  Refused = 2,
}

export class PeerReader {
  private trust = Trust.Unchecked;
  /** The addresses `accept` gave: asked for while not refused, used once one matched uWS. */
  private acceptTrust: Trust;
  private readonly buf = new Uint8Array(16);
  private readonly buf4 = this.buf.subarray(0, 4);

  /**
   * `addon` null: always uWS's getRemoteAddress. `fromAccept`: ask the addon for the address
   * `accept` gave (uwsAcceptPeers succeeded). `listener` names the reader in the log.
   */
  constructor(
    private readonly addon: PeerAddressFn | null,
    private readonly listener: string,
    fromAccept = false,
  ) {
    this.acceptTrust = fromAccept ? Trust.Unchecked : Trust.Refused;
  }

  /** Whether the addon's answers are used (after the first check passed). */
  get trusted(): boolean {
    return this.trust === Trust.Trusted;
  }

  /** Whether the addresses `accept` gave are used (after the first of them matched uWS). */
  get acceptTrusted(): boolean {
    return this.acceptTrust === Trust.Trusted;
  }

  /**
   * The peer as uWS gives it (4 bytes IPv4, 16 IPv6, empty when the socket has none), valid
   * until the next call.
   */
  read(res: HttpResponse, log: Logger): Uint8Array {
    if (this.trust === Trust.Trusted) {
      const n = (this.addon as PeerAddressFn)(res, this.buf, this.acceptTrust !== Trust.Refused);
      if (n === 4) return this.buf4;
      if (n === 16) return this.buf;
      if (n > PEER_FROM_ACCEPT) {
        if (this.acceptTrust === Trust.Trusted) return n === PEER_FROM_ACCEPT + 4 ? this.buf4 : this.buf;
        return this.checkAccepted(res, n - PEER_FROM_ACCEPT, log);
      }
    } else if (this.trust === Trust.Unchecked && this.addon !== null) {
      return this.check(res, log);
    }
    return new Uint8Array(res.getRemoteAddress());
  }

  private check(res: HttpResponse, log: Logger): Uint8Array {
    const uws = new Uint8Array(res.getRemoteAddress());
    const n = (this.addon as PeerAddressFn)(res, this.buf, false);
    // A socket without a peer (closed under us) proves nothing either way: check again next time.
    if (n === 0 && uws.length === 0) return uws;
    if (this.same(n, uws)) this.trust = Trust.Trusted;
    else {
      this.trust = Trust.Refused;
      log.error('client address: the addon disagrees with uWS getRemoteAddress; using getRemoteAddress from now on', {
        listener: this.listener,
        addon: n <= 0 ? String(n) : formatAddressBytes(this.buf.subarray(0, n)),
        uws: formatAddressBytes(uws),
      });
    }
    return uws;
  }

  /** The first address `accept` gave, held to uWS's getRemoteAddress. */
  private checkAccepted(res: HttpResponse, n: number, log: Logger): Uint8Array {
    const uws = new Uint8Array(res.getRemoteAddress());
    // Closed under us: uWS has no address to hold it to, so check the next one.
    if (uws.length === 0) return uws;
    if (this.same(n, uws)) this.acceptTrust = Trust.Trusted;
    else {
      this.acceptTrust = Trust.Refused;
      log.error('client address: the address accept gave disagrees with uWS getRemoteAddress; using getpeername from now on', {
        listener: this.listener,
        accept: formatAddressBytes(this.buf.subarray(0, n)),
        uws: formatAddressBytes(uws),
      });
    }
    return uws;
  }

  private same(n: number, uws: Uint8Array): boolean {
    let same = n === uws.length;
    for (let i = 0; same && i < n; i++) same = this.buf[i] === uws[i];
    return same;
  }
}
