/** What the bench upstream serves, the same for both flavours. */
export const UPSTREAM_BODIES = {
  /** Answer to GET / and to every POST: exactly 100 bytes, no characters nginx would escape. */
  small: 'sluice bench upstream: small body, 100 bytes exactly. '.padEnd(100, '.'),
  k16Bytes: 16 * 1024,
  m1Bytes: 1024 * 1024,
} as const;
