/**
 * The TCP peer of a request on a uWS listener, read once per request.
 *
 * uWS 20.30's `getRemoteAddress` answers with a new ArrayBuffer every call, and V8's
 * ArrayBuffers are costly to make and to sweep: with its `getpeername`, 8 % of the CPU per
 * proxied request (docs/decisions.md, "The client address without an ArrayBuffer"). The
 * addon's `uwsPeerAddress` makes the same `getpeername` on the socket behind the response and
 * writes the address into this reader's buffer instead. It reads uWS.js and uSockets
 * internals to find the socket (native/napi/src/uws_socket.cc), so a reader trusts it only
 * after its first answer matched `getRemoteAddress`'s, and never again once one did not.
 *
 * Must never: hand out its buffer past the caller's synchronous use (the next read overwrites
 * it; LastPeer copies what it keeps), or pass the addon anything but a live uWS response.
 */
import type { HttpResponse } from 'uWebSockets.js';
import { formatAddressBytes } from '../shared/cidr';
import type { Logger } from '../shared/log';

/** NativeAddon.uwsPeerAddress: bytes written to `out` (4 or 16), 0 no peer, -1 no live response. */
export type PeerAddressFn = (res: object, out: Uint8Array) => number;

const enum Trust {
  Unchecked = 0,
  Trusted = 1,
  Refused = 2,
}

export class PeerReader {
  private trust = Trust.Unchecked;
  private readonly buf = new Uint8Array(16);
  private readonly buf4 = this.buf.subarray(0, 4);

  /** `addon` null: always uWS's getRemoteAddress. `listener` names the reader in the log. */
  constructor(
    private readonly addon: PeerAddressFn | null,
    private readonly listener: string,
  ) {}

  /** Whether the addon's answers are used (after the first check passed). */
  get trusted(): boolean {
    return this.trust === Trust.Trusted;
  }

  /**
   * The peer as uWS gives it (4 bytes IPv4, 16 IPv6, empty when the socket has none), valid
   * until the next call.
   */
  read(res: HttpResponse, log: Logger): Uint8Array {
    if (this.trust === Trust.Trusted) {
      const n = (this.addon as PeerAddressFn)(res, this.buf);
      if (n === 4) return this.buf4;
      if (n === 16) return this.buf;
    } else if (this.trust === Trust.Unchecked && this.addon !== null) {
      return this.check(res, log);
    }
    return new Uint8Array(res.getRemoteAddress());
  }

  private check(res: HttpResponse, log: Logger): Uint8Array {
    const uws = new Uint8Array(res.getRemoteAddress());
    const n = (this.addon as PeerAddressFn)(res, this.buf);
    // A socket without a peer (closed under us) proves nothing either way: check again next time.
    if (n === 0 && uws.length === 0) return uws;
    let same = n === uws.length;
    for (let i = 0; same && i < n; i++) same = this.buf[i] === uws[i];
    if (same) this.trust = Trust.Trusted;
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
}
