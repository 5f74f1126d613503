/**
 * The primary's side of the HTTPS listener: probes its port once, keeps the private
 * directory of validated certificate copies (src/shared/tls-certs.ts says why), and
 * produces the snapshot handed to workers at spawn and on reload. The directory is removed
 * when the process exits.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TlsListenerConfig } from '../shared/config';
import type { Logger } from '../shared/log';
import { pruneSnapshotDir, snapshotListenerTls, type TlsSnapshot } from '../shared/tls-certs';

export class ListenerTls {
  /** The probed HTTPS port (0 until start). */
  port = 0;
  private snapshot: TlsSnapshot | null = null;
  private previous: TlsSnapshot | null = null;
  private dir: string | null = null;

  constructor(private readonly log: Logger) {}

  /** The certificates workers serve now (null without an HTTPS listener). */
  get current(): TlsSnapshot | null {
    return this.snapshot;
  }

  /**
   * Probes host:port (`probe` is the primary's exclusive-bind probe; never the HTTP port) and
   * snapshots the certificates. Throws a message naming the option path.
   */
  async start(tls: TlsListenerConfig, host: string, httpPort: number, probe: (host: string, port: number) => Promise<number>): Promise<void> {
    // With port 0 both probes pick ephemeral ports: never let them coincide, or SO_REUSEPORT
    // would share one port between the HTTP and the HTTPS listeners.
    for (let i = 0; i < 5 && (this.port === 0 || this.port === httpPort); i++) this.port = await probe(host, tls.port);
    if (this.port === httpPort) throw new Error(`tls.port ${tls.port} is the HTTP listener's port ${httpPort}`);
    this.dir = mkdtempSync(join(tmpdir(), 'sluice-certs-'));
    const dir = this.dir;
    process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
    this.snapshot = this.take(tls);
  }

  /** SIGHUP: re-reads the certificate files; throws (the reload is refused) when one is bad now. */
  prepare(tls: TlsListenerConfig): TlsSnapshot {
    return this.take(tls);
  }

  /** The reload went through: workers get `next` from now on (also when respawned). */
  commit(next: TlsSnapshot): void {
    if (next.id !== this.snapshot?.id) {
      this.previous = this.snapshot;
      this.snapshot = next;
      this.log.info('tls: certificates changed; workers rebuild their HTTPS listener', { snapshot: next.id });
    }
    // Workers handle messages in order and build synchronously: two generations are enough.
    if (this.dir !== null) pruneSnapshotDir(this.dir, [this.snapshot, this.previous]);
  }

  private take(tls: TlsListenerConfig): TlsSnapshot {
    if (this.dir === null) throw new Error('tls: the HTTPS listener was not started');
    const { snapshot, warnings } = snapshotListenerTls(tls, this.dir);
    for (const w of warnings) this.log.warn(`tls: ${w}`);
    return snapshot;
  }
}
