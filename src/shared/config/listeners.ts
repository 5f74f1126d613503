/**
 * The listeners: `listen` (HTTP), `tls` (HTTPS, SNI) and `admin`, with the checks that span
 * them (ports that clash, ACL rules that do not parse) and what the listener front does for
 * each. The certificate files of `tls` are checked by ../tls-certs.ts, which reads them once
 * for the workers too.
 */
import { parseCidr } from '../cidr';
import type { ObjectSchema, SchemaIssue, Static } from '../schema';
import { aclSchema, certPair, FILE, proxyProtocolSchema, type AclRule, type Check } from './common';

export const LISTEN_SCHEMA = {
  kind: 'object',
  defaultEmpty: true,
  doc: 'the HTTP listener',
  properties: {
    host: { kind: 'string', default: '0.0.0.0', env: 'SLUICE_LISTEN_HOST', doc: 'listen address', minLength: 1 },
    port: { kind: 'integer', min: 0, max: 65535, default: 8080, env: 'SLUICE_LISTEN_PORT', doc: 'listen port (0 = pick a free one)' },
    proxyProtocol: proxyProtocolSchema('the HTTP listener'),
    acl: aclSchema('who may connect to this listener'),
  },
} as const satisfies ObjectSchema;

export const TLS_SCHEMA = {
  kind: 'object',
  doc: 'the HTTPS listener: TLS termination with SNI (absent = none)',
  required: ['certificates'],
  properties: {
    host: { kind: 'string', minLength: 1, doc: 'listen address (default: listen.host)' },
    port: { kind: 'integer', min: 0, max: 65535, default: 8443, doc: 'HTTPS port (0 = pick a free one)' },
    certificates: {
      kind: 'array',
      minItems: 1,
      doc: 'certificates chosen by SNI',
      items: {
        ...certPair('a certificate for some host names'),
        required: ['serverNames', 'certFile', 'keyFile'],
        properties: {
          ...certPair('').properties,
          serverNames: {
            kind: 'array',
            minItems: 1,
            doc: 'host names (exact or *.suffix) served with this certificate',
            items: { kind: 'string', pattern: /^(\*\.)?[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*$/, patternDoc: 'a host name or *.suffix', doc: 'host name' },
          },
        },
      },
    },
    defaultCertificate: certPair('served without SNI or for an unknown name (default: the first certificate)'),
    clientAuth: {
      kind: 'object',
      doc: 'mTLS: verify client certificates against caFile (the listener then runs through the front, docs/edge.md)',
      required: ['caFile'],
      properties: {
        caFile: { ...FILE, doc: 'CA bundle (PEM) client certificates must chain to' },
        required: { kind: 'boolean', default: true, doc: 'refuse clients without a certificate (false: let them in without an identity)' },
        identityHeader: {
          kind: 'string',
          pattern: /^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/,
          patternDoc: 'an HTTP header name',
          default: 'x-forwarded-client-cert',
          doc: 'request header carrying the verified certificate upstream (Envoy XFCC format); any such header from a client is removed',
        },
      },
    },
    proxyProtocol: proxyProtocolSchema('the HTTPS listener'),
    acl: aclSchema('who may connect to the HTTPS listener'),
  },
} as const satisfies ObjectSchema;

export const ADMIN_SCHEMA = {
  kind: 'object',
  defaultEmpty: true,
  doc: 'the admin listener (primary thread): /metrics, /healthz, /status',
  properties: {
    enabled: { kind: 'boolean', default: true, env: 'SLUICE_ADMIN', doc: 'serve the admin endpoints' },
    host: { kind: 'string', minLength: 1, default: '127.0.0.1', env: 'SLUICE_ADMIN_HOST', doc: 'admin listen address (loopback by default)' },
    port: { kind: 'integer', min: 0, max: 65535, default: 9901, env: 'SLUICE_ADMIN_PORT', doc: 'admin port (0 = pick a free one)' },
  },
} as const satisfies ObjectSchema;

export type ListenConfig = Static<typeof LISTEN_SCHEMA>;
/** The HTTPS listener (TLS termination); mTLS through the listener front (docs/edge.md). */
export type TlsListenerConfig = Static<typeof TLS_SCHEMA>;
export type AdminConfig = Static<typeof ADMIN_SCHEMA>;
/** A certificate and its key (PEM files). */
export type CertPair = Static<ReturnType<typeof certPair>>;
/** A certificate with the host names it serves: exact, or `*.example.com` (one label). */
export type SniCertificate = TlsListenerConfig['certificates'][number];

/**
 * A listener's PROXY protocol: `off`; `v2` parsed by uWS itself (the fast path; a header is
 * optional and re-parsed per request); `v1`, `any` (v1 or v2) through the listener front
 * (required, read once per connection). docs/edge.md.
 */
export type ProxyProtocolSetting = ListenConfig['proxyProtocol'];

/** Appends an issue for every rule of `rules` whose address or CIDR does not parse. */
export function aclCheck(rules: readonly AclRule[] | undefined, path: string, issues: SchemaIssue[]): void {
  rules?.forEach((r, i) => {
    const text = r.allow ?? r.deny ?? '';
    const parsed = parseCidr(text);
    if (typeof parsed === 'string') issues.push({ path: `${path}[${i}].${r.allow !== undefined ? 'allow' : 'deny'}`, message: parsed });
  });
}

export const listenerAclChecks: Check<{ readonly listen: ListenConfig; readonly tls?: TlsListenerConfig }> = (cfg, issues) => {
  aclCheck(cfg.listen.acl, 'listen.acl', issues);
  aclCheck(cfg.tls?.acl, 'tls.acl', issues);
};

/** Two listeners on one port (0 = pick a free one never clashes). */
export const portChecks: Check<{ readonly listen: ListenConfig; readonly tls?: TlsListenerConfig; readonly admin: AdminConfig }> = (cfg, issues) => {
  const ports: [string, string, number][] = [['listen.port', cfg.listen.host, cfg.listen.port]];
  if (cfg.tls !== undefined) ports.push(['tls.port', cfg.tls.host ?? cfg.listen.host, cfg.tls.port]);
  if (cfg.admin.enabled) ports.push(['admin.port', cfg.admin.host, cfg.admin.port]);
  for (let i = 0; i < ports.length; i++) {
    for (let j = 0; j < i; j++) {
      const [pa, , a] = ports[i] as [string, string, number];
      const [pb, , b] = ports[j] as [string, string, number];
      if (a !== 0 && a === b) issues.push({ path: pa, message: `${a} is also ${pb}` });
    }
  }
};

/** What the listener front does for a listener (src/workers/http/downstream/front.ts). */
export interface FrontSettings {
  /** PROXY protocol versions read at connection start; null: none. */
  readonly proxyProtocol: 'v1' | 'v2' | 'any' | null;
  /** Client certificates asked for (HTTPS only); null: none. */
  readonly clientAuth: { readonly required: boolean } | null;
}

/**
 * Whether a listener runs through the listener front, and with what: for PROXY v1 (or v1/v2
 * detected) and for client certificates, which uWS 20.30 cannot do. null: uWS takes the
 * connections itself (proxyProtocol off, or v2 parsed by uWS).
 */
export function frontOf(proxyProtocol: ProxyProtocolSetting, clientAuth?: { readonly required: boolean }): FrontSettings | null {
  if (clientAuth === undefined) return proxyProtocol === 'v1' || proxyProtocol === 'any' ? { proxyProtocol, clientAuth: null } : null;
  // With the front in the way, it must read a v2 header too: uWS would take the front's own.
  return { proxyProtocol: proxyProtocol === 'off' ? null : proxyProtocol, clientAuth: { required: clientAuth.required } };
}
