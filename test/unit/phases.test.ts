/**
 * buildPipeline (src/workers/http/pipeline.ts): hook arrays are collected once, in phase order,
 * bound to their phase object, with phases lacking a hook left out.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { sluiceError, type SluiceError } from '../../src/shared/errors';
import { buildPipeline, type Pipeline, type ProxyPhases } from '../../src/workers/http/pipeline';
import { ListResponseHead, type Peer, type ResponseHead, type Session } from '../../src/workers/http/session';
import { makeSession } from '../helpers';

interface Ctx {
  log: string[];
}

const session = (): Session => makeSession();

const HOOKS = [
  'accept',
  'requestFilter',
  'upstreamPeer',
  'requestBodyFilter',
  'shouldRetry',
  'upstreamRequestFilter',
  'attemptDone',
  'responseFilter',
  'failToConnect',
  'errorWhileProxy',
  'failToProxy',
  'logging',
] as const;

/** A phase implementing every hook, each logging `${name}.${hook}` into ctx. */
function fullPhase(name: string): Required<ProxyPhases<Ctx>> {
  return {
    accept: (_s, c) => (c.log.push(`${name}.accept`), true),
    requestFilter: (_s, c) => (c.log.push(`${name}.requestFilter`), false),
    upstreamPeer: (_s, _t, c) => (c.log.push(`${name}.upstreamPeer`), null),
    requestBodyFilter: (_s, c) => void c.log.push(`${name}.requestBodyFilter`),
    shouldRetry: (_s, _e, _st, _ra, c) => (c.log.push(`${name}.shouldRetry`), -1),
    upstreamRequestFilter: (_s, _h, c) => void c.log.push(`${name}.upstreamRequestFilter`),
    attemptDone: (_s, _p, _st, _e, c) => void c.log.push(`${name}.attemptDone`),
    responseFilter: (_s, _h, c) => void c.log.push(`${name}.responseFilter`),
    failToConnect: (_s, _p, _e, c) => (c.log.push(`${name}.failToConnect`), true),
    errorWhileProxy: (_s, _p, _e, c) => void c.log.push(`${name}.errorWhileProxy`),
    failToProxy: (_s, _e, c) => (c.log.push(`${name}.failToProxy`), 0),
    logging: (_s, _e, c) => void c.log.push(`${name}.logging`),
  };
}

/** Runs every hook of every kind once, in array order, and returns the ctx log. */
function runAll(p: Pipeline<Ctx>): string[] {
  const ctx: Ctx = { log: [] };
  const s = session();
  const peer: Peer = { group: 'g', host: 'h:1' };
  const head: ResponseHead = new ListResponseHead(200, []);
  const err: SluiceError = sluiceError('SLUICE_ERR_UPSTREAM_RESET');
  for (const f of p.accept) f(s, ctx);
  for (const f of p.requestFilter) f(s, ctx);
  for (const f of p.upstreamPeer) f(s, [], ctx);
  for (const f of p.requestBodyFilter) f(s, ctx);
  for (const f of p.shouldRetry) f(s, err, 0, '', ctx);
  for (const f of p.upstreamRequestFilter) f(s, [], ctx);
  for (const f of p.attemptDone) f(s, peer, 200, null, ctx);
  for (const f of p.responseFilter) f(s, head, ctx);
  for (const f of p.failToConnect) f(s, peer, err, ctx);
  for (const f of p.errorWhileProxy) f(s, peer, err, ctx);
  for (const f of p.failToProxy) f(s, err, ctx);
  for (const f of p.logging) f(s, null, ctx);
  return ctx.log;
}

describe('buildPipeline', () => {
  test('empty phase list gives empty hook arrays', () => {
    const p = buildPipeline<Ctx>([]);
    for (const k of HOOKS) assert.deepEqual(p[k], [], k);
  });

  test('hooks are collected in phase order for every hook kind', () => {
    const p = buildPipeline([fullPhase('a'), fullPhase('b'), fullPhase('c')]);
    for (const k of HOOKS) assert.equal(p[k].length, 3, k);
    assert.deepEqual(
      runAll(p),
      HOOKS.flatMap((k) => ['a', 'b', 'c'].map((n) => `${n}.${k}`)),
    );
  });

  test('phases lacking a hook are skipped for that hook only', () => {
    const onlyLog: ProxyPhases<Ctx> = { logging: (_s, _e, c) => void c.log.push('l.logging') };
    const onlyFilter: ProxyPhases<Ctx> = { requestFilter: (_s, c) => (c.log.push('f.requestFilter'), false) };
    const explicitUndefined: ProxyPhases<Ctx> = { accept: undefined, logging: (_s, _e, c) => void c.log.push('u.logging') };
    const p = buildPipeline([onlyLog, fullPhase('a'), onlyFilter, {}, explicitUndefined]);
    assert.deepEqual(
      HOOKS.map((k) => [k, p[k].length]),
      [
        ['accept', 1],
        ['requestFilter', 2],
        ['upstreamPeer', 1],
        ['requestBodyFilter', 1],
        ['shouldRetry', 1],
        ['upstreamRequestFilter', 1],
        ['attemptDone', 1],
        ['responseFilter', 1],
        ['failToConnect', 1],
        ['errorWhileProxy', 1],
        ['failToProxy', 1],
        ['logging', 3],
      ],
    );
    const log = runAll(p);
    assert.deepEqual(
      log.filter((l) => l.endsWith('.requestFilter')),
      ['a.requestFilter', 'f.requestFilter'],
    );
    assert.deepEqual(
      log.filter((l) => l.endsWith('.logging')),
      ['l.logging', 'a.logging', 'u.logging'],
    );
  });

  test('`this` is bound for class-based phases', () => {
    class Counter implements ProxyPhases<Ctx> {
      seen = 0;
      constructor(readonly name: string) {}
      requestFilter(_s: Session, c: Ctx): boolean {
        this.seen++;
        c.log.push(`${this.name}:${this.seen}`);
        return this.seen > 1;
      }
      upstreamPeer(s: Session): Peer | null {
        return { group: this.name, host: `${s.path}` };
      }
    }
    const x = new Counter('x');
    const y = new Counter('y');
    const p = buildPipeline<Ctx>([x, y]);
    const ctx: Ctx = { log: [] };
    const s = session();
    const [fx, fy] = p.requestFilter;
    assert.ok(fx && fy);
    assert.equal(fx(s, ctx), false);
    assert.equal(fx(s, ctx), true);
    assert.equal(fy(s, ctx), false);
    assert.deepEqual(ctx.log, ['x:1', 'x:2', 'y:1']);
    assert.equal(x.seen, 2);
    assert.equal(y.seen, 1);
    assert.deepEqual(
      p.upstreamPeer.map((f) => f(s, [], ctx)),
      [
        { group: 'x', host: '/' },
        { group: 'y', host: '/' },
      ],
    );
  });

  test('hooks pass arguments through and return the phase’s value', () => {
    const got: unknown[] = [];
    const phase: ProxyPhases<Ctx> = {
      upstreamPeer: (s, tried) => (got.push(s.id, tried), { group: 'g', host: tried.length === 0 ? 'first' : 'retry' }),
      failToProxy: (_s, e) => (got.push(e.code), 599),
      failToConnect: () => false,
      logging: (_s, e) => void got.push(e),
    };
    const p = buildPipeline([phase]);
    const s = session();
    const ctx: Ctx = { log: [] };
    const tried = ['h:1'];
    assert.deepEqual(p.upstreamPeer[0]?.(s, [], ctx), { group: 'g', host: 'first' });
    assert.deepEqual(p.upstreamPeer[0]?.(s, tried, ctx), { group: 'g', host: 'retry' });
    assert.equal(p.failToProxy[0]?.(s, sluiceError('SLUICE_ERR_NO_ROUTE'), ctx), 599);
    assert.equal(p.failToConnect[0]?.(s, { group: 'g', host: 'h' }, sluiceError('SLUICE_ERR_UPSTREAM_CONNECT'), ctx), false);
    p.logging[0]?.(s, null, ctx);
    assert.deepEqual(got, [1, [], 1, tried, 'SLUICE_ERR_NO_ROUTE', null]);
    assert.equal(got[3], tried, 'the same tried array is passed');
  });

  test('the pipeline is frozen and built once: later changes to a phase do not leak in', () => {
    const phase: ProxyPhases<Ctx> = { accept: (_s, c) => (c.log.push('old'), true) };
    const p = buildPipeline([phase]);
    assert.ok(Object.isFrozen(p));
    phase.accept = (_s, c) => (c.log.push('new'), false);
    phase.logging = () => undefined;
    assert.equal(p.logging.length, 0);
    const ctx: Ctx = { log: [] };
    assert.equal(p.accept[0]?.(session(), ctx), true);
    assert.deepEqual(ctx.log, ['old']);
    assert.throws(() => {
      (p as unknown as Record<string, unknown>).accept = [];
    }, TypeError);
  });
});
