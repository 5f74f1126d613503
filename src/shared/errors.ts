/**
 * One registry of stable error codes (modelled on fastify's lib/errors.js and Pingora's
 * pingora-error): each code has an HTTP status, a source and whether the failure may be
 * retried on another host. Status mapping happens here and nowhere else.
 *
 * Errors that cross threads or processes are plain `{code, message, source}` records,
 * because structured clone drops prototypes.
 *
 * docs/errors.md lists every code; test/unit/docs.test.ts fails when the two disagree.
 */

export type ErrorSource = 'upstream' | 'downstream' | 'internal' | 'config';

interface ErrorSpec {
  readonly status: number;
  readonly source: ErrorSource;
  /** Safe to try again on another host: nothing reached the upstream's application. */
  readonly retryable: boolean;
  readonly message: string;
}

function spec(status: number, source: ErrorSource, retryable: boolean, message: string): ErrorSpec {
  return { status, source, retryable, message };
}

export const ERRORS = {
  SLUICE_ERR_UPSTREAM_CONNECT: spec(502, 'upstream', true, 'connecting to the upstream failed'),
  SLUICE_ERR_UPSTREAM_CONNECT_TIMEOUT: spec(504, 'upstream', true, 'connecting to the upstream timed out'),
  SLUICE_ERR_UPSTREAM_TLS: spec(502, 'upstream', true, 'TLS with the upstream failed'),
  SLUICE_ERR_UPSTREAM_HEAD_TIMEOUT: spec(504, 'upstream', false, 'the upstream did not send a response head in time'),
  SLUICE_ERR_UPSTREAM_READ_TIMEOUT: spec(504, 'upstream', false, 'the upstream stopped sending the response'),
  SLUICE_ERR_UPSTREAM_CLOSED: spec(502, 'upstream', false, 'the upstream closed the connection before the response was complete'),
  SLUICE_ERR_UPSTREAM_RESET: spec(502, 'upstream', false, 'the upstream reset the connection'),
  SLUICE_ERR_UPSTREAM_BAD_RESPONSE: spec(502, 'upstream', false, 'the upstream sent a malformed response'),
  SLUICE_ERR_UPSTREAM_HEAD_TOO_LARGE: spec(502, 'upstream', false, 'the upstream response head is too large'),
  SLUICE_ERR_NO_HEALTHY_UPSTREAM: spec(503, 'internal', false, 'no upstream host is available'),
  SLUICE_ERR_POOL_EXHAUSTED: spec(503, 'internal', false, 'the upstream connection pool is full'),
  SLUICE_ERR_BREAKER_OPEN: spec(503, 'internal', false, 'the circuit breaker is open for every host left to try'),
  SLUICE_ERR_UPSTREAM_OVERFLOW: spec(503, 'internal', false, 'the upstream host is at its concurrency limit'),
  SLUICE_ERR_RATE_LIMITED: spec(429, 'downstream', false, 'rate limit exceeded'),
  SLUICE_ERR_TOTAL_TIMEOUT: spec(504, 'internal', false, 'the route timeout elapsed'),
  SLUICE_ERR_NO_ROUTE: spec(404, 'downstream', false, 'no route matches the request'),
  SLUICE_ERR_METHOD_NOT_ALLOWED: spec(405, 'downstream', false, 'the method is not allowed here'),
  SLUICE_ERR_FORBIDDEN: spec(403, 'downstream', false, 'the client address is not allowed'),
  SLUICE_ERR_URL_TOO_LONG: spec(414, 'downstream', false, 'the request URL is too long'),
  SLUICE_ERR_HEADERS_TOO_LARGE: spec(431, 'downstream', false, 'the request header fields are too large'),
  SLUICE_ERR_TOO_MANY_HEADERS: spec(431, 'downstream', false, 'the request has too many header fields'),
  SLUICE_ERR_BODY_TOO_LARGE: spec(413, 'downstream', false, 'the request body is too large'),
  SLUICE_ERR_BAD_REQUEST: spec(400, 'downstream', false, 'the request is malformed'),
  SLUICE_ERR_CLIENT_ABORTED: spec(499, 'downstream', false, 'the client closed the connection'),
  SLUICE_ERR_SHUTTING_DOWN: spec(503, 'internal', false, 'the proxy is shutting down'),
  SLUICE_ERR_INTERNAL: spec(500, 'internal', false, 'internal proxy error'),
  SLUICE_ERR_KAFKA_UNAVAILABLE: spec(503, 'upstream', false, 'Kafka is unavailable (producer restarting, broker down or not answering in time)'),
  SLUICE_ERR_KAFKA_QUEUE_FULL: spec(503, 'internal', false, 'the Kafka send queue is full'),
  SLUICE_ERR_KAFKA_RECORD_TOO_LARGE: spec(413, 'downstream', false, 'the Kafka record is too large'),
  SLUICE_ERR_KAFKA_REJECTED: spec(502, 'upstream', false, 'Kafka refused the record'),
  SLUICE_ERR_KAFKA_TIMEOUT: spec(504, 'upstream', false, 'Kafka did not acknowledge the records within the route delivery timeout'),
  SLUICE_ERR_KAFKA_UNKNOWN_OUTCOME: spec(502, 'internal', false, 'the Kafka delivery outcome is unknown (the producer went away before reporting)'),
  SLUICE_ERR_CONFIG: spec(0, 'config', false, 'invalid configuration'),
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof ERRORS;

/** The plain record form, safe to post between threads and processes. */
export interface ErrorRecord {
  code: ErrorCode;
  message: string;
  source: ErrorSource;
}

export class SluiceError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly source: ErrorSource;
  readonly retryable: boolean;
  /** Extra response header pairs for the error answer (Retry-After, RateLimit); null = none. */
  headers: readonly string[] | null = null;
  /** The answer closes the connection (a head over the limits: nothing after it is read). */
  close = false;

  constructor(code: ErrorCode, detail?: string) {
    const s = ERRORS[code];
    super(detail === undefined ? s.message : `${s.message}: ${detail}`);
    this.name = 'SluiceError';
    this.code = code;
    this.status = s.status;
    this.source = s.source;
    this.retryable = s.retryable;
  }

  toRecord(): ErrorRecord {
    return { code: this.code, message: this.message, source: this.source };
  }
}

export function sluiceError(code: ErrorCode, detail?: string): SluiceError {
  return new SluiceError(code, detail);
}

/** Normalises anything thrown into a SluiceError (unknown errors become internal). */
export function toSluiceError(err: unknown): SluiceError {
  if (err instanceof SluiceError) return err;
  const msg = err instanceof Error ? err.message : String(err);
  return new SluiceError('SLUICE_ERR_INTERNAL', msg);
}

const REASONS: Record<number, string> = {
  200: 'OK', 201: 'Created', 202: 'Accepted', 204: 'No Content', 301: 'Moved Permanently',
  302: 'Found', 303: 'See Other', 304: 'Not Modified', 307: 'Temporary Redirect',
  308: 'Permanent Redirect', 400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden',
  404: 'Not Found', 405: 'Method Not Allowed', 408: 'Request Timeout', 413: 'Content Too Large',
  414: 'URI Too Long', 415: 'Unsupported Media Type', 429: 'Too Many Requests',
  431: 'Request Header Fields Too Large', 499: 'Client Closed Request',
  500: 'Internal Server Error', 502: 'Bad Gateway', 503: 'Service Unavailable',
  504: 'Gateway Timeout',
};

const STATUS_LINES: string[] = [];

/** Full status line text for uWS's writeStatus (it sends no reason phrase otherwise); made once per status. */
export function statusLine(status: number): string {
  const cached = STATUS_LINES[status];
  if (cached !== undefined) return cached;
  const reason = REASONS[status];
  const line = reason === undefined ? String(status) : `${status} ${reason}`;
  if (Number.isInteger(status) && status >= 100 && status <= 999) STATUS_LINES[status] = line;
  return line;
}
