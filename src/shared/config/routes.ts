/**
 * Routes (`routes`): match, rewrite, header edits, the action (proxy, split, redirect, kafka,
 * respond), timeouts, body limit, ACL, retries and rate limit, with their checks (route
 * names, regular expressions, references to upstream groups, rate-limit zones, Kafka keys).
 */
import { policyProblem } from '../rate-limit';
import type { ArraySchema, ObjectSchema, SchemaIssue, Static } from '../schema';
import { aclSchema, headerMap, HEADER_NAME, ms, NAME, TOPIC, type Check } from './common';
import { SENSITIVE_HEADERS } from './events';
import { aclCheck } from './listeners';
import { upstreamTimeoutProps } from './timeouts';

const RATE_PART = "(header:[!#$%&'*.^_`|~0-9A-Za-z-]+|client_ip|route)";
const RATE_KEY = new RegExp(`^${RATE_PART}(\\+${RATE_PART})*$`);

const headerEdits = {
  kind: 'object',
  doc: 'header edits, applied in the order remove, set, add',
  properties: {
    add: { ...headerMap, doc: 'headers appended (existing values kept)' },
    set: { ...headerMap, doc: 'headers replaced (existing values dropped)' },
    remove: {
      kind: 'array',
      doc: 'header names removed',
      items: { kind: 'string', doc: 'header name', pattern: HEADER_NAME, patternDoc: 'an HTTP header name' },
    },
  },
} as const satisfies ObjectSchema;

export const ROUTES_SCHEMA = {
  kind: 'array',
  minItems: 1,
  doc: 'ordered routes; the first match wins',
  items: {
    kind: 'object',
    doc: 'a route',
    required: ['name', 'action'],
    properties: {
      name: { kind: 'string', pattern: NAME, patternDoc: 'letters, digits, _ . -, up to 64', doc: 'route name (logs, metrics)' },
      match: {
        kind: 'object',
        defaultEmpty: true,
        doc: 'all given conditions must hold',
        properties: {
          host: {
            kind: 'string',
            pattern: /^(\*\.)?[A-Za-z0-9.-]+$/,
            patternDoc: 'a host name or *.suffix',
            doc: 'Host header (port ignored): exact or *.example.com',
          },
          path: {
            kind: 'object',
            oneOf: ['prefix', 'exact', 'regex'],
            doc: 'path condition',
            properties: {
              prefix: { kind: 'string', pattern: /^\//, patternDoc: 'a path starting with /', doc: 'path prefix' },
              exact: { kind: 'string', pattern: /^\//, patternDoc: 'a path starting with /', doc: 'exact path' },
              regex: { kind: 'string', doc: 'JavaScript regular expression tested against the path' },
            },
          },
          methods: {
            kind: 'array',
            minItems: 1,
            doc: 'allowed methods',
            items: { kind: 'string', pattern: /^[A-Z]+$/, patternDoc: 'an upper-case method name', doc: 'method' },
          },
          headers: {
            kind: 'array',
            doc: 'header conditions',
            items: {
              kind: 'object',
              doc: 'a header condition',
              required: ['name'],
              oneOf: ['exact', 'regex', 'present'],
              properties: {
                name: { kind: 'string', pattern: HEADER_NAME, patternDoc: 'an HTTP header name', doc: 'header name' },
                exact: { kind: 'string', doc: 'exact value' },
                regex: { kind: 'string', doc: 'regular expression on the value' },
                present: { kind: 'boolean', doc: 'true: must be present; false: must be absent' },
              },
            },
          },
        },
      },
      rewrite: {
        kind: 'object',
        doc: 'path rewrite',
        required: ['prefix'],
        properties: {
          prefix: { kind: 'string', pattern: /^\//, patternDoc: 'a path starting with /', doc: 'replaces the matched path prefix' },
        },
      },
      requestHeaders: headerEdits,
      responseHeaders: headerEdits,
      action: {
        kind: 'union',
        tag: 'type',
        doc: 'what the route does',
        variants: {
          proxy: {
            kind: 'object',
            doc: 'proxy to an upstream group',
            required: ['upstream'],
            properties: { upstream: { kind: 'string', doc: 'upstream group name' } },
          },
          split: {
            kind: 'object',
            doc: 'weighted split across upstream groups (canary)',
            required: ['targets'],
            properties: {
              targets: {
                kind: 'array',
                minItems: 1,
                doc: 'groups and weights',
                items: {
                  kind: 'object',
                  doc: 'a split target',
                  required: ['upstream', 'weight'],
                  properties: {
                    upstream: { kind: 'string', doc: 'upstream group name' },
                    weight: { kind: 'integer', min: 0, max: 10000, doc: 'relative weight (0 = off)' },
                  },
                },
              },
            },
          },
          redirect: {
            kind: 'object',
            doc: 'redirect',
            required: ['location'],
            properties: {
              location: { kind: 'string', minLength: 1, pattern: /^[^\r\n\0]*$/, patternDoc: 'a URL without CR, LF or NUL', doc: 'target URL' },
              status: { kind: 'integer', min: 301, max: 308, default: 302, doc: 'redirect status' },
              appendPath: { kind: 'boolean', default: false, doc: 'append the request path and query to location' },
            },
          },
          kafka: {
            kind: 'object',
            doc: 'produce the request body to Kafka (raw, NDJSON lines or JSON array elements)',
            required: ['topic'],
            properties: {
              topic: { kind: 'string', pattern: TOPIC, patternDoc: 'a Kafka topic name', doc: 'topic' },
              format: { kind: 'string', enum: ['raw', 'ndjson', 'json-array'], default: 'raw', doc: 'raw = one record; ndjson = one per line; json-array = one per element' },
              key: {
                kind: 'object',
                oneOf: ['header', 'pathParam', 'jsonField'],
                doc: 'record key source (none = no key)',
                properties: {
                  header: { kind: 'string', pattern: HEADER_NAME, patternDoc: 'an HTTP header name', doc: 'request header' },
                  pathParam: { kind: 'string', pattern: /^[A-Za-z_][A-Za-z0-9_]*$/, patternDoc: 'a named group of match.path.regex', doc: 'named group of the route path regex' },
                  jsonField: { kind: 'string', pattern: /^[^.\s]+(\.[^.\s]+)*$/, patternDoc: 'a dotted field path', doc: 'field of each JSON record (a.b.c)' },
                },
              },
              partitioner: { kind: 'string', enum: ['hash', 'default'], default: 'hash', doc: 'hash = consistent hash of the key over the partitions; default = librdkafka’s partitioner' },
              headers: {
                kind: 'array',
                doc: 'request headers copied into Kafka headers (the request id always is)',
                items: { kind: 'string', pattern: HEADER_NAME, patternDoc: 'an HTTP header name', doc: 'header name' },
              },
              allowSensitiveHeaders: { kind: 'boolean', default: false, doc: 'allow Authorization/Cookie in headers' },
              mode: { kind: 'string', enum: ['sync', 'async'], default: 'sync', doc: 'sync = 200 after the broker acknowledged; async = 202 once queued (Prefer: respond-async selects async per request)' },
              maxRecordBytes: { kind: 'integer', min: 1, max: 64 * 1024 * 1024, default: 1024 * 1024, doc: 'largest record value; larger gets 413' },
              deliveryTimeoutMs: ms('sync mode: longest wait for the acknowledgement; past it 504', 10000, undefined, 1),
              transactional: { kind: 'boolean', default: false, doc: 'produce each request’s records in one transaction (all or nothing); needs kafka.transactions' },
            },
          },
          respond: {
            kind: 'object',
            doc: 'direct response',
            properties: {
              status: { kind: 'integer', min: 200, max: 599, default: 200, doc: 'status' },
              body: { kind: 'string', default: '', doc: 'body' },
              contentType: { kind: 'string', default: 'text/plain; charset=utf-8', doc: 'content type' },
              headers: headerMap,
            },
          },
        },
      },
      timeouts: {
        kind: 'object',
        doc: 'route timeout overrides',
        properties: {
          ...upstreamTimeoutProps(false),
          totalMs: ms('whole request deadline (0 = none)', undefined),
        },
      },
      maxBodyBytes: { kind: 'integer', min: 0, max: 2 ** 50, doc: 'request body limit for this route' },
      acl: aclSchema('who may use this route'),
      retry: {
        kind: 'object',
        doc: 'retries to another host (absent = none beyond the reused-connection retry)',
        properties: {
          attempts: { kind: 'integer', min: 0, max: 10, default: 2, doc: 'retries after the first attempt' },
          on: {
            kind: 'array',
            minItems: 1,
            default: ['connect', 'reset', '502', '503', '504'],
            doc: 'what is retried: connect (nothing was sent), timeout, reset (or malformed response), and upstream statuses',
            items: { kind: 'string', enum: ['connect', 'timeout', 'reset', '502', '503', '504', '5xx'], doc: 'a retry condition' },
          },
          idempotencyKey: { kind: 'boolean', default: false, doc: 'also retry POST/PATCH requests that carry an Idempotency-Key header' },
          backoffBaseMs: ms('full-jitter exponential back-off: base', 25),
          backoffMaxMs: ms('full-jitter exponential back-off: cap', 250),
          maxRetryAfterMs: ms('an upstream Retry-After up to this long is waited for; longer: the response goes to the client', 1000),
          budgetPercent: { kind: 'integer', min: 0, max: 100, default: 20, doc: 'retries in flight at most this share of the active requests (per worker and group)' },
          budgetMin: { kind: 'integer', min: 0, max: 100000, default: 3, doc: 'retries in flight always allowed regardless of budgetPercent' },
        },
      },
      rateLimit: {
        kind: 'object',
        doc: 'token bucket for the whole instance (all workers), per key',
        required: ['rate'],
        properties: {
          key: {
            kind: 'string',
            default: 'client_ip',
            pattern: RATE_KEY,
            patternDoc: 'parts joined by +: client_ip, route, header:NAME',
            doc: 'bucket key; requests whose key is empty (header absent) are not limited, as in nginx',
          },
          rate: { kind: 'number', min: 0.001, max: 1000000, doc: 'tokens per second (0.5 = one every two seconds)' },
          burst: { kind: 'integer', min: 1, max: 1000000, doc: 'bucket size (default: the rate rounded up)' },
          zone: { kind: 'string', pattern: NAME, patternDoc: 'letters, digits, _ . -, up to 64', doc: 'routes naming the same zone share buckets (default: the route alone)' },
          headers: {
            kind: 'string',
            enum: ['rejected', 'always'],
            default: 'rejected',
            doc: 'send the RateLimit and RateLimit-Policy fields on 429 only, or on every response of the route',
          },
        },
      },
    },
  },
} as const satisfies ArraySchema;

export type RouteConfig = Static<(typeof ROUTES_SCHEMA)['items']>;
export type RouteMatch = RouteConfig['match'];
export type PathMatch = NonNullable<RouteMatch['path']>;
export type HeaderMatch = NonNullable<RouteMatch['headers']>[number];
export type HeaderEdits = Static<typeof headerEdits>;
export type RouteAction = RouteConfig['action'];
export type KafkaRouteAction = Extract<RouteAction, { readonly type: 'kafka' }>;
/** Where a Kafka route takes the record key from. */
export type KafkaKeySource = NonNullable<KafkaRouteAction['key']>;
export type RouteTimeouts = NonNullable<RouteConfig['timeouts']>;
export type RetryConfig = NonNullable<RouteConfig['retry']>;
/** Retry condition: a failure kind, or an upstream status that is retried. */
export type RetryOn = RetryConfig['on'][number];
export type RateLimitConfig = NonNullable<RouteConfig['rateLimit']>;

type Routes = {
  readonly routes: readonly RouteConfig[];
  readonly upstreams: Readonly<Record<string, unknown>>;
  readonly kafka: { readonly transactions: boolean };
};

function checkRegex(src: string, path: string, issues: SchemaIssue[]): void {
  try {
    new RegExp(src);
  } catch (e) {
    issues.push({ path, message: `is not a valid regular expression: ${(e as Error).message}` });
  }
}

export const routeChecks: Check<Routes> = (cfg, issues) => {
  const names = new Set<string>();
  const zones = new Map<string, { rate: number; burst: number; at: string }>();
  const ups = cfg.upstreams;
  const refCheck = (name: string, path: string): void => {
    if (!Object.prototype.hasOwnProperty.call(ups, name)) {
      const known = Object.keys(ups);
      issues.push({ path, message: `names an unknown upstream ${JSON.stringify(name)} (defined: ${known.length ? known.join(', ') : 'none'})` });
    }
  };
  cfg.routes.forEach((r, i) => {
    const p = `routes[${i}]`;
    if (names.has(r.name)) issues.push({ path: `${p}.name`, message: `duplicates the route name ${JSON.stringify(r.name)}` });
    names.add(r.name);
    if (r.match.path?.regex !== undefined) checkRegex(r.match.path.regex, `${p}.match.path.regex`, issues);
    r.match.headers?.forEach((h, j) => {
      if (h.regex !== undefined) checkRegex(h.regex, `${p}.match.headers[${j}].regex`, issues);
    });
    if (r.retry !== undefined && r.retry.backoffMaxMs < r.retry.backoffBaseMs) {
      issues.push({ path: `${p}.retry.backoffMaxMs`, message: `must be >= backoffBaseMs (${r.retry.backoffBaseMs}), got ${r.retry.backoffMaxMs}` });
    }
    if (r.retry !== undefined && r.action.type !== 'proxy' && r.action.type !== 'split') {
      issues.push({ path: `${p}.retry`, message: `only applies to proxy and split routes (this one is ${r.action.type})` });
    }
    if (r.rateLimit !== undefined) {
      const zone = r.rateLimit.zone;
      const burst = r.rateLimit.burst ?? Math.ceil(r.rateLimit.rate);
      if (zone !== undefined) {
        const first = zones.get(zone);
        if (first === undefined) zones.set(zone, { rate: r.rateLimit.rate, burst, at: `${p}.rateLimit` });
        else if (first.rate !== r.rateLimit.rate || first.burst !== burst) {
          issues.push({ path: `${p}.rateLimit.zone`, message: `${zone} is shared with ${first.at}, which sets another rate or burst (a zone has one policy)` });
        }
      }
      const problem = policyProblem(r.rateLimit.rate, r.rateLimit.burst ?? Math.ceil(r.rateLimit.rate));
      if (problem !== null) issues.push({ path: `${p}.rateLimit`, message: problem });
    }
    if (r.rewrite !== undefined && r.match.path?.prefix === undefined) {
      issues.push({ path: `${p}.rewrite`, message: 'needs match.path.prefix (the prefix it replaces)' });
    }
    const a = r.action;
    switch (a.type) {
      case 'proxy':
        refCheck(a.upstream, `${p}.action.upstream`);
        break;
      case 'split':
        a.targets.forEach((t, j) => refCheck(t.upstream, `${p}.action.targets[${j}].upstream`));
        if (a.targets.every((t) => t.weight === 0)) issues.push({ path: `${p}.action.targets`, message: 'must have a target with weight > 0' });
        break;
      case 'redirect':
        if (![301, 302, 303, 307, 308].includes(a.status)) {
          issues.push({ path: `${p}.action.status`, message: `must be one of 301, 302, 303, 307, 308, got ${a.status}` });
        }
        break;
      case 'kafka': {
        if (a.key?.pathParam !== undefined) {
          const re = r.match.path?.regex;
          if (re === undefined || !re.includes(`(?<${a.key.pathParam}>`)) {
            issues.push({ path: `${p}.action.key.pathParam`, message: `needs match.path.regex with a named group (?<${a.key.pathParam}>...)` });
          }
        }
        if (a.key?.jsonField !== undefined && a.format === 'raw') {
          issues.push({ path: `${p}.action.key.jsonField`, message: 'needs format ndjson or json-array (raw bodies are not parsed)' });
        }
        if (a.transactional && !cfg.kafka.transactions) {
          issues.push({ path: `${p}.action.transactional`, message: 'needs kafka.transactions: true (the transactional producer)' });
        }
        (a.headers ?? []).forEach((h, j) => {
          if (!a.allowSensitiveHeaders && SENSITIVE_HEADERS.includes(h.toLowerCase())) {
            issues.push({ path: `${p}.action.headers[${j}]`, message: `${h} is sensitive; set allowSensitiveHeaders: true to copy it` });
          }
        });
        break;
      }
      case 'respond':
        break;
    }
  });
};

export const routeAclChecks: Check<Pick<Routes, 'routes'>> = (cfg, issues) => {
  cfg.routes.forEach((r, i) => aclCheck(r.acl, `routes[${i}].acl`, issues));
};
