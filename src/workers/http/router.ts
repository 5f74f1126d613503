/**
 * Route table compiled once per config: ordered routes, first match wins. Each condition is
 * turned into a small predicate up front, so matching a request costs a few string
 * comparisons for the common prefix routes and never compiles a regex per request.
 */
import type { HeaderEdits, RouteConfig } from '../../shared/config';

/** A route as the workers use it: its config's fields, plus what is computed from them once. */
export interface CompiledRoute {
  readonly index: number;
  readonly name: RouteConfig['name'];
  readonly action: RouteConfig['action'];
  readonly config: RouteConfig;
  /** Prefix that rewrite replaces ('' when no rewrite). */
  readonly rewriteFrom: string;
  readonly rewriteTo: string;
  readonly requestEdits: CompiledEdits | null;
  readonly responseEdits: CompiledEdits | null;
  readonly timeouts: RouteConfig['timeouts'];
  readonly maxBodyBytes: RouteConfig['maxBodyBytes'];
  /** For split actions: cumulative weights and their total. */
  readonly splitCumulative: readonly number[];
  readonly splitTotal: number;
  /** match.path.regex compiled once (Kafka routes read its named groups), else null. */
  readonly pathRegex: RegExp | null;
}

export interface CompiledEdits {
  /** Lower-case names whose existing values are dropped (remove ∪ set). */
  readonly drop: ReadonlySet<string>;
  /** Flat [name, value, ...] appended after dropping (set, then add). */
  readonly append: readonly string[];
}

type Pred = (method: string, host: string, path: string, headers: readonly string[]) => boolean;

interface Entry {
  readonly route: CompiledRoute;
  readonly test: Pred;
}

export function compileEdits(e: HeaderEdits | undefined): CompiledEdits | null {
  if (e === undefined) return null;
  const drop = new Set<string>();
  const append: string[] = [];
  for (const n of e.remove ?? []) drop.add(n.toLowerCase());
  for (const [n, v] of Object.entries(e.set ?? {})) {
    drop.add(n.toLowerCase());
    append.push(n.toLowerCase(), v);
  }
  for (const [n, v] of Object.entries(e.add ?? {})) append.push(n.toLowerCase(), v);
  if (drop.size === 0 && append.length === 0) return null;
  return { drop, append };
}

/** Applies compiled edits to a flat header list in place; `names` are compared lower-cased. */
export function applyEdits(headers: string[], edits: CompiledEdits): void {
  if (edits.drop.size > 0) {
    let w = 0;
    for (let r = 0; r < headers.length; r += 2) {
      const n = headers[r] as string;
      if (edits.drop.has(n.toLowerCase())) continue;
      headers[w] = n;
      headers[w + 1] = headers[r + 1] as string;
      w += 2;
    }
    headers.length = w;
  }
  for (let i = 0; i < edits.append.length; i++) headers.push(edits.append[i] as string);
}

function headerValue(headers: readonly string[], name: string): string | undefined {
  for (let i = 0; i < headers.length; i += 2) if (headers[i] === name) return headers[i + 1];
  return undefined;
}

function hostPredicate(pattern: string): (host: string) => boolean {
  const p = pattern.toLowerCase();
  if (p.startsWith('*.')) {
    const suffix = p.slice(1); // ".example.com"
    return (h) => h.length > suffix.length && h.endsWith(suffix);
  }
  return (h) => h === p;
}

function compileOne(r: RouteConfig, index: number): Entry {
  const preds: Pred[] = [];
  const m = r.match;
  const pathRegex = m.path?.regex === undefined ? null : new RegExp(m.path.regex);
  if (m.host !== undefined) {
    const hp = hostPredicate(m.host);
    preds.push((_m, host) => hp(host));
  }
  if (m.path !== undefined) {
    const { prefix, exact, regex } = m.path;
    if (prefix !== undefined && prefix !== '/') preds.push((_m, _h, path) => path.startsWith(prefix));
    else if (exact !== undefined) preds.push((_m, _h, path) => path === exact);
    else if (regex !== undefined && pathRegex !== null) {
      const re = pathRegex;
      preds.push((_m, _h, path) => re.test(path));
    }
  }
  if (m.methods !== undefined) {
    const set = new Set(m.methods);
    preds.push((method) => set.has(method));
  }
  for (const h of m.headers ?? []) {
    const name = h.name.toLowerCase();
    if (h.exact !== undefined) {
      const want = h.exact;
      preds.push((_m, _h, _p, hs) => headerValue(hs, name) === want);
    } else if (h.regex !== undefined) {
      const re = new RegExp(h.regex);
      preds.push((_m, _h, _p, hs) => {
        const v = headerValue(hs, name);
        return v !== undefined && re.test(v);
      });
    } else {
      const want = h.present === true;
      preds.push((_m, _h, _p, hs) => (headerValue(hs, name) !== undefined) === want);
    }
  }
  const cumulative: number[] = [];
  let total = 0;
  if (r.action.type === 'split') {
    for (const t of r.action.targets) {
      total += t.weight;
      cumulative.push(total);
    }
  }
  const route: CompiledRoute = {
    index,
    name: r.name,
    action: r.action,
    config: r,
    rewriteFrom: r.rewrite !== undefined ? (r.match.path?.prefix ?? '') : '',
    rewriteTo: r.rewrite?.prefix ?? '',
    requestEdits: compileEdits(r.requestHeaders),
    responseEdits: compileEdits(r.responseHeaders),
    timeouts: r.timeouts,
    maxBodyBytes: r.maxBodyBytes,
    splitCumulative: cumulative,
    splitTotal: total,
    pathRegex,
  };
  let test: Pred;
  if (preds.length === 0) test = () => true;
  else if (preds.length === 1) test = preds[0] as Pred;
  else test = (a, b, c, d) => preds.every((p) => p(a, b, c, d));
  return { route, test };
}

export class Router {
  private readonly entries: readonly Entry[];
  readonly routes: readonly CompiledRoute[];

  constructor(routes: readonly RouteConfig[]) {
    this.entries = routes.map(compileOne);
    this.routes = this.entries.map((e) => e.route);
  }

  /** `host` lower-case without port; `path` without query. */
  match(method: string, host: string, path: string, headers: readonly string[]): CompiledRoute | null {
    const es = this.entries;
    for (let i = 0; i < es.length; i++) {
      const e = es[i] as Entry;
      if (e.test(method, host, path, headers)) return e.route;
    }
    return null;
  }
}

/** Applies a prefix rewrite: "/api/v1/x" with from "/api" to "/" → "/v1/x". */
export function rewritePath(path: string, from: string, to: string): string {
  let rest = path.slice(from.length);
  if (to.endsWith('/') && rest.startsWith('/')) rest = rest.slice(1);
  else if (!to.endsWith('/') && rest !== '' && !rest.startsWith('/')) rest = `/${rest}`;
  const out = to + rest;
  return out === '' ? '/' : out;
}

/** Picks a split target by weight with a uniform `r` in [0, 1). */
export function pickSplit(route: CompiledRoute, r: number): string {
  if (route.action.type !== 'split') throw new Error('not a split route');
  const x = r * route.splitTotal;
  const cum = route.splitCumulative;
  for (let i = 0; i < cum.length; i++) {
    if (x < (cum[i] as number)) return (route.action.targets[i] as { upstream: string }).upstream;
  }
  return (route.action.targets[cum.length - 1] as { upstream: string }).upstream;
}
