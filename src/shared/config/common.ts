/**
 * Pieces several configuration sections share: name patterns, schema helpers that keep their
 * literal types (so that `Static<>` can read them), and the signature of a semantic check.
 *
 * Imports nothing but ../schema: every section file may import it without a cycle.
 */
import type { ArraySchema, IntegerSchema, MapSchema, ObjectSchema, SchemaIssue, Static, StringSchema } from '../schema';

/** A check the schema cannot express, run after validation on the section(s) it names in `C`. */
export type Check<C> = (cfg: C, issues: SchemaIssue[]) => void;

export const NAME = /^[A-Za-z0-9_.-]{1,64}$/;
export const TOPIC = /^[A-Za-z0-9._-]{1,249}$/;
export const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/** A duration in milliseconds; with `def` the option is always present once validated. */
export function ms(doc: string, def: number, env?: string, min?: number): IntegerSchema & { readonly default: number };
export function ms(doc: string, def: undefined, env?: string, min?: number): IntegerSchema;
export function ms(doc: string, def: number | undefined, env?: string, min?: number): IntegerSchema;
export function ms(doc: string, def: number | undefined, env?: string, min = 0): IntegerSchema {
  return {
    kind: 'integer',
    min,
    max: 24 * 3600 * 1000,
    doc,
    ...(def === undefined ? {} : { default: def }),
    ...(env === undefined ? {} : { env }),
  };
}

/** Turns optional overrides into the same options with defaults (the section-level ones). */
export type Defaulted<P> = { readonly [K in keyof P]: P[K] & { readonly default: number } };

export const headerMap = {
  kind: 'map',
  keyPattern: HEADER_NAME,
  keyDoc: 'an HTTP header name',
  values: { kind: 'string', doc: 'header value', pattern: /^[^\r\n\0]*$/, patternDoc: 'a header value without CR, LF or NUL' },
  doc: 'header name → value',
} as const satisfies MapSchema;

const CIDR = /^([0-9]{1,3}(\.[0-9]{1,3}){3}|[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*)(\/[0-9]{1,3})?$/;

/** One ACL rule: exactly one of allow / deny, a CIDR (IPv4 or IPv6) or a single address. */
export const aclSchema = (doc: string) =>
  ({
    kind: 'array',
    doc: `${doc}: rules in order, the first match wins; no match = allowed (nginx allow/deny)`,
    items: {
      kind: 'object',
      doc: 'an ACL rule',
      oneOf: ['allow', 'deny'],
      properties: {
        allow: { kind: 'string', pattern: CIDR, patternDoc: 'an IPv4 or IPv6 address or CIDR (10.0.0.0/8, ::1, fd00::/8)', doc: 'allow these addresses' },
        deny: { kind: 'string', pattern: CIDR, patternDoc: 'an IPv4 or IPv6 address or CIDR (10.0.0.0/8, ::1, fd00::/8)', doc: 'deny these addresses (403)' },
      },
    },
  }) as const satisfies ArraySchema;

/** Here rather than beside a section: ../cidr.ts compiles these rules and must not import a section. */
export type AclRule = Static<ReturnType<typeof aclSchema>['items']>;

export const proxyProtocolSchema = (which: string) =>
  ({
    kind: 'string',
    enum: ['off', 'v2', 'v1', 'any'],
    default: 'off',
    doc: `PROXY protocol on ${which}, only behind a trusted load balancer: off; v2 (parsed by uWS, optional, per request); v1 or any (v1 or v2: required, read once per connection by the listener front)`,
  }) as const satisfies StringSchema;

export const FILE = { kind: 'string', minLength: 1, doc: 'a file path' } as const satisfies StringSchema;

export const certPair = (doc: string) =>
  ({
    kind: 'object',
    doc,
    required: ['certFile', 'keyFile'],
    properties: {
      certFile: { ...FILE, doc: 'certificate chain (PEM)' },
      keyFile: { ...FILE, doc: 'private key (PEM)' },
      passphrase: { kind: 'string', doc: 'passphrase of the key' },
    },
  }) as const satisfies ObjectSchema;
