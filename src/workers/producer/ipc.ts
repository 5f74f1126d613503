/**
 * Messages to the supervisor over the fork's IPC channel (src/shared/kafka-messages.ts).
 *
 * Must never: throw when the channel is gone (the primary may have exited): the callback
 * still runs.
 */
import type { ProducerToSupervisor } from '../../shared/kafka-messages';

export function sendToSupervisor(msg: ProducerToSupervisor, cb?: () => void): void {
  if (typeof process.send !== 'function' || !process.connected) {
    cb?.();
    return;
  }
  process.send(msg, undefined, undefined, () => cb?.());
}
