/** Request events (`events`): one structured event per proxied request, produced to Kafka. */
import type { ObjectSchema, Static } from '../schema';
import { HEADER_NAME, TOPIC, type Check } from './common';

const EVENT_KEY = /^(none|((route|client|upstream|host|request_id|header:[!#$%&'*+.^_`|~0-9A-Za-z-]+)(\+(route|client|upstream|host|request_id|header:[!#$%&'*+.^_`|~0-9A-Za-z-]+))*))$/;

export const EVENTS_SCHEMA = {
  kind: 'object',
  defaultEmpty: true,
  doc: 'one structured event per proxied request, produced to Kafka (docs/kafka.md)',
  properties: {
    enabled: { kind: 'boolean', default: false, env: 'SLUICE_EVENTS', doc: 'produce request events' },
    topic: { kind: 'string', default: 'sluice.requests', pattern: TOPIC, patternDoc: 'a Kafka topic name', env: 'SLUICE_EVENTS_TOPIC', doc: 'topic of the request events' },
    key: {
      kind: 'string',
      default: 'route',
      pattern: EVENT_KEY,
      patternDoc: 'parts joined by +: route, client, upstream, host, request_id, header:NAME, or none',
      env: 'SLUICE_EVENTS_KEY',
      doc: 'record key (partitioning): route, client, upstream, host, request_id, header:NAME, joined by +; none = no key',
    },
    policy: {
      kind: 'string',
      enum: ['drop', 'sample'],
      default: 'drop',
      env: 'SLUICE_EVENTS_POLICY',
      doc: 'drop: every event, the newest dropped and counted when the buffer is full; sample: keep every 5xx and sampleRate of the rest',
    },
    sampleRate: { kind: 'number', min: 0, max: 1, default: 1, env: 'SLUICE_EVENTS_SAMPLE_RATE', doc: 'share of non-5xx events kept with policy sample' },
    headers: {
      kind: 'array',
      doc: 'request headers copied into events',
      items: { kind: 'string', pattern: HEADER_NAME, patternDoc: 'an HTTP header name', doc: 'header name' },
    },
    allowSensitiveHeaders: { kind: 'boolean', default: false, doc: 'allow Authorization/Cookie in headers' },
  },
} as const satisfies ObjectSchema;

export type EventsConfig = Static<typeof EVENTS_SCHEMA>;

/** Authorization and Cookie never leave for Kafka unless a section says allowSensitiveHeaders. */
export const SENSITIVE_HEADERS: readonly string[] = ['authorization', 'cookie', 'proxy-authorization', 'set-cookie'];

export const eventsChecks: Check<{ readonly events: EventsConfig }> = (cfg, issues) => {
  (cfg.events.headers ?? []).forEach((h, j) => {
    if (!cfg.events.allowSensitiveHeaders && SENSITIVE_HEADERS.includes(h.toLowerCase())) {
      issues.push({ path: `events.headers[${j}]`, message: `${h} is sensitive; set allowSensitiveHeaders: true to copy it` });
    }
  });
};
