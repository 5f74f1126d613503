/** Every contender the runner knows, in the order rows appear in the report. */
import { direct } from './direct';
import { haproxy } from './haproxy';
import { nginx, nginxAll } from './nginx';
import { nodeProxy } from './node-proxy';
import { sluice1w, sluice1wBase, sluice1wOff, sluiceAll } from './sluice';
import type { Contender } from './types';

export const CONTENDERS: readonly Contender[] = [direct, sluice1w, sluice1wBase, sluice1wOff, sluiceAll, nginx, nginxAll, haproxy, nodeProxy];

/** Run when `--contenders` is not given. */
export const DEFAULT_CONTENDERS = ['direct', 'sluice-1w', 'sluice-1w-off', 'sluice', 'nginx', 'nginx-all', 'haproxy', 'node-proxy'];

/** The same for `--quick`, which must stay under 3 minutes: without the all-CPU nginx. */
export const QUICK_CONTENDERS = DEFAULT_CONTENDERS.filter((c) => c !== 'nginx-all');

export function contenderByName(name: string): Contender | undefined {
  return CONTENDERS.find((c) => c.name === name);
}
