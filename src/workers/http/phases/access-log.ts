/** The access log: one JSON line per request (docs/access-log.md describes the fields). */
import { performance } from 'node:perf_hooks';
import type { SluiceError } from '../../../shared/errors';
import type { RequestCtx } from '../context';
import type { ProxyPhases } from '../pipeline';
import type { Session } from '../session';

/** One JSON line per request on stdout (docs/access-log.md describes the fields). */
export class AccessLogPhase implements ProxyPhases<RequestCtx> {
  constructor(private readonly write: (line: string) => void) {}

  logging(s: Session, err: SluiceError | null): void {
    const rec = {
      ts: new Date().toISOString(),
      id: s.requestId,
      client: s.clientAddress,
      method: s.method,
      path: s.path,
      query: s.query === '' ? undefined : s.query,
      route: s.routeName,
      upstream: s.upstreamName === '' ? undefined : s.upstreamName,
      upstreamHost: s.upstreamHost === '' ? undefined : s.upstreamHost,
      status: s.status,
      attempts: s.attempts,
      bytesIn: s.bytesIn,
      bytesOut: s.bytesOut,
      ms: Math.round((performance.now() - s.startedAt) * 100) / 100,
      flags: s.flags.length === 0 ? undefined : s.flags.join(','),
      error: err === null ? undefined : err.code,
    };
    this.write(`${JSON.stringify(rec)}\n`);
  }
}
