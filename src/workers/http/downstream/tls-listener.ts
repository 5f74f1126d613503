/**
 * A worker's HTTPS listener: a uWS SSLApp on the shared TLS port (SO_REUSEPORT), the
 * default certificate on the app and one `addServerName(name).domain(name)` per server
 * name, all preloaded (adding names inside `missingServerName` hangs the handshake in uWS
 * 20.30). uWS's SNI lookup matches exact names and one-label wildcards (`*.example.com`
 * covers `a.example.com`, not `a.b.example.com` nor `example.com`), case-sensitively.
 *
 * Certificate reload: uWS cannot swap an app's certificates, so a reload builds a new app,
 * listens on the same port, then closes the old listen socket. Connections accepted before
 * keep their app and certificate; the old app is closed (cutting what is left) after the
 * grace period, as nginx's old workers end after worker_shutdown_timeout.
 *
 * Only validated copies from the primary's snapshot reach uWS here: a bad pair in
 * addServerName crashes the process (src/shared/tls-certs.ts).
 */
import type { HttpRequest, HttpResponse, TemplatedApp, us_listen_socket } from 'uWebSockets.js';
import type { Logger } from '../../../shared/log';
import type { TlsFiles, TlsSnapshot } from '../../../shared/tls-certs';
import type { Uws } from '../../../shared/uws';
import { notePeersOn } from './client-address';

type Handler = (res: HttpResponse, req: HttpRequest) => void;

interface Retired {
  readonly app: TemplatedApp;
  readonly timer: NodeJS.Timeout;
}

function appOptions(f: TlsFiles): { key_file_name: string; cert_file_name: string; passphrase?: string } {
  return { key_file_name: f.keyFile, cert_file_name: f.certFile, ...(f.passphrase === undefined ? {} : { passphrase: f.passphrase }) };
}

function closeApp(app: TemplatedApp): void {
  // In 20.30 `close()` exists though the typings omit it: it closes every socket of the app.
  (app as unknown as { close(): void }).close();
}

export class TlsListener {
  private app: TemplatedApp | null = null;
  private token: us_listen_socket | null = null;
  private snapshotId = '';
  private readonly retired = new Set<Retired>();

  constructor(
    private readonly uws: Uws,
    private readonly host: string,
    private readonly port: number,
    private readonly handler: Handler,
    private readonly log: Logger,
  ) {}

  /** Builds the app and listens; returns an error message, or null once listening. */
  start(snap: TlsSnapshot): string | null {
    let app: TemplatedApp;
    try {
      app = this.build(snap);
    } catch (e) {
      return `cannot build the HTTPS listener: ${(e as Error).message}`;
    }
    const token = this.listen(app);
    if (token === null) {
      closeApp(app);
      return `cannot listen on ${this.host}:${this.port} (tls)`;
    }
    this.app = app;
    this.token = token;
    this.snapshotId = snap.id;
    return null;
  }

  /**
   * Serves `snap` from now on (no-op when its certificates are the ones served). The old
   * app keeps its connections for `graceMs`, then is closed. On failure the old app stays.
   */
  swap(snap: TlsSnapshot, graceMs: number): void {
    if (snap.id === this.snapshotId || this.token === null) return;
    let app: TemplatedApp;
    try {
      app = this.build(snap);
    } catch (e) {
      this.log.error('tls: cannot build the HTTPS listener with the new certificates; keeping the current ones', { err: e });
      return;
    }
    const token = this.listen(app);
    if (token === null) {
      closeApp(app);
      this.log.error('tls: cannot listen with the new certificates; keeping the current ones', { host: this.host, port: this.port });
      return;
    }
    // The new socket is in the SO_REUSEPORT group before the old one leaves it.
    this.uws.us_listen_socket_close(this.token);
    const old = this.app as TemplatedApp;
    const entry: Retired = {
      app: old,
      timer: setTimeout(() => {
        this.retired.delete(entry);
        closeApp(old);
      }, graceMs),
    };
    entry.timer.unref();
    this.retired.add(entry);
    this.app = app;
    this.token = token;
    this.snapshotId = snap.id;
    this.log.info('tls: serving new certificates', { snapshot: snap.id, retiredApps: this.retired.size });
  }

  /** Stops accepting (drain): connections already open keep going. */
  stopListening(): void {
    if (this.token !== null) this.uws.us_listen_socket_close(this.token);
    this.token = null;
  }

  /** Closes the current and every retired app (drain end, crash). Idempotent. */
  closeAll(): void {
    this.stopListening();
    for (const r of this.retired) {
      clearTimeout(r.timer);
      closeApp(r.app);
    }
    this.retired.clear();
    if (this.app !== null) closeApp(this.app);
    this.app = null;
  }

  private build(snap: TlsSnapshot): TemplatedApp {
    const app = this.uws.SSLApp(appOptions(snap.defaultCert));
    app.any('/*', this.handler);
    // Each name gets its own router in uWS: the same handler goes under every domain.
    for (const { name, files } of snap.serverNames) app.addServerName(name, appOptions(files)).domain(name).any('/*', this.handler);
    return app;
  }

  private listen(app: TemplatedApp): us_listen_socket | null {
    let token: us_listen_socket | null = null;
    // uWS calls back synchronously.
    app.listen(this.host, this.port, (t) => {
      token = t === false ? null : t;
    });
    if (token !== null) notePeersOn(token);
    return token;
  }
}
