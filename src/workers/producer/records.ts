/**
 * A record as the producer routes it: `RecordFields` (a frame's decoded record, or a held
 * one) and `HeldRecord`, the copy kept when a record must outlive its frame (waiting for
 * Kafka, for a topic's partition count, or for its transaction).
 *
 * Must never: keep a view into a link's read buffer past the frame's callback (hold() copies
 * key, value and headers: the reader reuses its buffer).
 */
import type { DecodedHeader, DecodedRecord } from '../../shared/kafka-frames';

/** The fields of a record that routing reads and `hold` copies (a DecodedRecord, or a HeldRecord). */
export type RecordFields = Readonly<Pick<DecodedRecord, 'id' | 'topic' | 'partition' | 'hashKey' | 'unordered' | 'ffOrdered' | 'timestamp' | 'key' | 'value' | 'headers' | 'bytes'>>;

/** A record kept past its frame (waiting for Kafka or for metadata, or in a transaction). */
export interface HeldRecord extends RecordFields {
  readonly connNo: number;
  /** Date.now() when taken: a record still waiting after message.timeout.ms fails. */
  readonly at: number;
}

function copyBuf(b: Buffer | null): Buffer | null {
  return b === null ? null : Buffer.from(b);
}

function copyHeaders(h: DecodedHeader[] | null): DecodedHeader[] | null {
  if (h === null) return null;
  return h.map((o) => {
    const name = Object.keys(o)[0] as string;
    return { [name]: Buffer.from(o[name] as Buffer) };
  });
}

export function hold(connNo: number, r: RecordFields, at: number): HeldRecord {
  return {
    connNo,
    id: r.id,
    topic: r.topic,
    partition: r.partition,
    hashKey: r.hashKey,
    unordered: r.unordered,
    ffOrdered: r.ffOrdered,
    timestamp: r.timestamp,
    key: copyBuf(r.key),
    value: copyBuf(r.value),
    headers: copyHeaders(r.headers),
    bytes: r.bytes,
    at,
  };
}
