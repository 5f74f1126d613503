/** Request limits (`limits`) and proxy behaviour (`proxy`): global knobs, no semantic checks. */
import type { ObjectSchema, Static } from '../schema';
import { HEADER_NAME } from './common';

export const LIMITS_SCHEMA = {
  kind: 'object',
  defaultEmpty: true,
  doc: 'request limits',
  properties: {
    maxUrlLength: { kind: 'integer', min: 16, max: 65536, default: 8192, env: 'SLUICE_MAX_URL_LENGTH', doc: 'longest request target in bytes; longer gets 414' },
    maxHeaderBytes: {
      kind: 'integer',
      min: 256,
      max: 65536,
      default: 8192,
      env: 'SLUICE_MAX_HEADER_BYTES',
      doc: 'total bytes of request header names and values; more gets 431',
    },
    maxHeaderCount: {
      kind: 'integer',
      min: 1,
      max: 47,
      default: 40,
      env: 'SLUICE_MAX_HEADER_COUNT',
      doc: 'request header fields; more gets 431 (uWS closes the connection at the 49th on its own)',
    },
    maxBodyBytes: {
      kind: 'integer',
      min: 0,
      max: 2 ** 50,
      default: 10 * 1024 * 1024,
      env: 'SLUICE_MAX_BODY_BYTES',
      doc: 'largest request body; more gets 413',
    },
  },
} as const satisfies ObjectSchema;

export const PROXY_SCHEMA = {
  kind: 'object',
  defaultEmpty: true,
  doc: 'proxy behaviour',
  properties: {
    via: {
      kind: 'string',
      default: 'sluice',
      env: 'SLUICE_VIA',
      pattern: /^[A-Za-z0-9._-]*$/,
      patternDoc: 'a pseudonym token (letters, digits, . _ -), empty to send no Via',
      doc: 'pseudonym in the `Via: 1.1 <name>` header added both ways ("" = none)',
    },
    requestIdHeader: {
      kind: 'string',
      default: 'x-request-id',
      env: 'SLUICE_REQUEST_ID_HEADER',
      pattern: HEADER_NAME,
      patternDoc: 'an HTTP header name',
      doc: 'request id header: propagated when present, generated when absent',
    },
    retryBufferBytes: {
      kind: 'integer',
      min: 0,
      max: 16 * 1024 * 1024,
      default: 65536,
      env: 'SLUICE_RETRY_BUFFER_BYTES',
      doc: 'request bodies up to this size are kept so that a failed reused connection can be retried',
    },
    trustedHops: {
      kind: 'integer',
      min: 0,
      max: 16,
      default: 0,
      env: 'SLUICE_TRUSTED_HOPS',
      doc: 'proxies in front of Sluice: the client address is taken this many entries from the right of X-Forwarded-For (0 = the peer address)',
    },
  },
} as const satisfies ObjectSchema;

export type LimitsConfig = Static<typeof LIMITS_SCHEMA>;
export type ProxyConfig = Static<typeof PROXY_SCHEMA>;
