/**
 * No proxy: the load generator hits the upstream itself. The ceiling every proxied row is
 * read against; it has no proxy process, so its proxy CPU and memory columns are empty.
 */
import type { Contender } from './types';

export const direct: Contender = {
  name: 'direct',
  description: 'no proxy: the load generator hits the upstream (the ceiling)',
  pinning: 'none',
  // Keyed scenarios need a proxy to pick the host; Kafka produce has no upstream at all.
  supports: (s) => !s.later || s.name === 'kafka-events',
  start(ctx) {
    const target = ctx.upstreams[0];
    if (!target) throw new Error('direct: no upstream');
    return Promise.resolve({
      target,
      pid: null,
      logFile: null,
      alive: () => true,
      stop: () => Promise.resolve(),
    });
  },
};
