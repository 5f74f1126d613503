/**
 * Host judgement (attemptDone): circuit breakers and passive outlier detection, fed by every
 * upstream attempt's outcome. The state lives in the shared host-state table
 * (src/shared/host-state.ts), so all workers agree.
 */
import type { FailureKind } from '../../../shared/config';
import type { SluiceError } from '../../../shared/errors';
import { TRANSITION_CLOSED, TRANSITION_OPENED, TRANSITION_REOPENED } from '../../../shared/host-state';
import type { Logger } from '../../../shared/log';
import type { RequestCtx } from '../context';
import type { ProxyPhases } from '../pipeline';
import type { Peer, Session } from '../session';

/** What an attempt's outcome counts as: null = success (the host answered below 500). */
export function failureKind(status: number, err: SluiceError | null): FailureKind | null {
  if (err === null) return status >= 500 ? '5xx' : null;
  // The registry's `retryable` codes are the failures where nothing reached the upstream's
  // application: the connect failures (src/shared/errors.ts).
  if (err.retryable) return 'connect';
  switch (err.code) {
    case 'SLUICE_ERR_UPSTREAM_HEAD_TIMEOUT':
    case 'SLUICE_ERR_UPSTREAM_READ_TIMEOUT':
    case 'SLUICE_ERR_TOTAL_TIMEOUT':
      return 'timeout';
    case 'SLUICE_ERR_UPSTREAM_CLOSED':
    case 'SLUICE_ERR_UPSTREAM_RESET':
    case 'SLUICE_ERR_UPSTREAM_BAD_RESPONSE':
    case 'SLUICE_ERR_UPSTREAM_HEAD_TOO_LARGE':
      return 'reset';
    default:
      // The attempt ended for a reason that says nothing about the host (client gone, body
      // over the limit): neither a success nor a failure.
      return null;
  }
}

/** Errors that end an attempt without judging the host (see failureKind's default). */
function isNeutral(err: SluiceError | null): boolean {
  return err !== null && failureKind(0, err) === null;
}

/**
 * Circuit breakers and passive outlier detection, fed by every upstream attempt's outcome.
 * The state and its transitions live in the shared host-state table; this phase only
 * classifies outcomes, flags the request and logs the transitions it caused.
 */
export class HostJudgePhase implements ProxyPhases<RequestCtx> {
  constructor(private readonly log: Logger) {}

  attemptDone(s: Session, peer: Peer, status: number, err: SluiceError | null, ctx: RequestCtx): void {
    const g = ctx.group;
    const gh = ctx.groupHost;
    if (g === null || gh === null || g.state === null) return;
    const probe = ctx.breakerProbe;
    ctx.breakerProbe = false;
    if (isNeutral(err)) {
      if (probe) g.state.abandonProbe(gh.slot);
      return;
    }
    const kind = failureKind(status, err);
    const st = g.state;
    const b = g.breaker;
    if (b !== null) {
      const failed = kind !== null && b.failOn.includes(kind);
      const change = st.report(gh.slot, b, !failed, probe);
      if (change === TRANSITION_OPENED) {
        s.flags.push('CO');
        this.log.warn('circuit breaker opened', { group: peer.group, host: peer.host, after: kind ?? 'failure', openMs: b.openMs });
      } else if (change === TRANSITION_REOPENED) {
        s.flags.push('CO');
        this.log.warn('circuit breaker re-opened: a half-open probe failed', { group: peer.group, host: peer.host, after: kind ?? 'failure' });
      } else if (change === TRANSITION_CLOSED) {
        this.log.info('circuit breaker closed', { group: peer.group, host: peer.host });
      }
    }
    const o = g.outlier;
    if (o !== null && st.recordOutcome(gh.slot, o, kind !== null, g.slots)) {
      s.flags.push('EJ');
      this.log.warn('host ejected (outlier detection)', { group: peer.group, host: peer.host, after: kind ?? 'error', consecutiveErrors: o.consecutiveErrors });
    }
  }
}
