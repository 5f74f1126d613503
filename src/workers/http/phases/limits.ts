/**
 * Request limits (docs/edge.md): URL length (414), header count and bytes (431), an invalid
 * Content-Length (400), and body size (413), from `limits.*` and the route's
 * `maxBodyBytes`. An answer from here closes the connection: the request body, if any, is
 * never read.
 *
 * - LimitsPhase (`accept`): the head as read, against the instance's limits, before anything
 *   else runs.
 * - BodyLimitPhase: in `requestFilter` (after the route's action, so Kafka routes apply their
 *   own limit), the declared Content-Length against the route's `maxBodyBytes`; in
 *   `requestBodyFilter`, the streamed body (chunked, or longer than declared) against the
 *   route's limit, or the instance's.
 */
import type { SluiceConfig } from '../../../shared/config';
import { sluiceError, type ErrorCode, type SluiceError } from '../../../shared/errors';
import type { RequestCtx } from '../context';
import type { ProxyPhases } from '../pipeline';
import type { Session } from '../session';

function closing(code: ErrorCode, detail: string): SluiceError {
  const e = sluiceError(code, detail);
  e.close = true;
  return e;
}

export class LimitsPhase implements ProxyPhases<RequestCtx> {
  private readonly maxUrl: number;
  private readonly maxCount: number;
  private readonly maxBytes: number;
  private readonly maxBody: number;

  constructor(cfg: SluiceConfig) {
    const l = cfg.limits;
    this.maxUrl = l.maxUrlLength;
    this.maxCount = l.maxHeaderCount;
    this.maxBytes = l.maxHeaderBytes;
    this.maxBody = l.maxBodyBytes;
  }

  accept(_s: Session, ctx: RequestCtx): boolean {
    const h = ctx.requestHead;
    if (h.url.length + h.query.length + 1 > this.maxUrl) throw closing('SLUICE_ERR_URL_TOO_LONG', `over ${this.maxUrl} bytes`);
    if (h.headers.length / 2 > this.maxCount) throw closing('SLUICE_ERR_TOO_MANY_HEADERS', `over ${this.maxCount} fields`);
    if (h.headerBytes > this.maxBytes) throw closing('SLUICE_ERR_HEADERS_TOO_LARGE', `over ${this.maxBytes} bytes`);
    if (h.badLength) throw closing('SLUICE_ERR_BAD_REQUEST', 'invalid Content-Length');
    if (h.contentLength > this.maxBody) {
      throw closing('SLUICE_ERR_BODY_TOO_LARGE', `Content-Length ${h.contentLength} is over ${this.maxBody} bytes`);
    }
    return true;
  }

}

/** The body's size against the route's `maxBodyBytes` (or `limits.maxBodyBytes`); after the route's action. */
export class BodyLimitPhase implements ProxyPhases<RequestCtx> {
  private readonly maxBody: number;

  constructor(cfg: SluiceConfig) {
    this.maxBody = cfg.limits.maxBodyBytes;
  }

  requestFilter(_s: Session, ctx: RequestCtx): boolean {
    const limit = ctx.route?.maxBodyBytes;
    const declared = ctx.requestHead.contentLength;
    if (limit !== undefined && declared > limit) {
      throw sluiceError('SLUICE_ERR_BODY_TOO_LARGE', `Content-Length ${declared} is over ${limit} bytes`);
    }
    return false;
  }

  requestBodyFilter(s: Session, ctx: RequestCtx): void {
    const limit = ctx.route?.maxBodyBytes ?? this.maxBody;
    if (s.bytesIn > limit) {
      s.flags.push('BL');
      throw closing('SLUICE_ERR_BODY_TOO_LARGE', `over ${limit} bytes`);
    }
  }
}
