/**
 * Test certificates made with the `openssl` CLI at test time, in a fresh temp dir: a CA,
 * leaf certificates signed by it for given names (DNS SANs, wildcards, IP SANs), client
 * certificates, expired or not-yet-valid ones, encrypted keys, self-signed ones. Nothing is
 * checked into the repository and nothing here talks to the network.
 *
 * Keys are EC P-256 by default (generated in a few ms); `keyType: 'rsa'` gives RSA 2048.
 * Every certificate carries its SANs in subjectAltName (names in CN are ignored by Node's
 * and OpenSSL's host name checks).
 */
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A certificate and its key, as files and as PEM text. */
export interface Pem {
  readonly certFile: string;
  readonly keyFile: string;
  readonly cert: string;
  readonly key: string;
  /** SHA-256 fingerprint as Node prints it (`AB:CD:...`), to tell certificates apart. */
  readonly fingerprint256: string;
}

export interface CertAuthority extends Pem {
  readonly name: string;
  /** Directory holding the CA's files and everything it issued. */
  readonly dir: string;
}

export interface CertOptions {
  /** Subject CN (default: the first DNS name, else the first IP, else `leaf`). */
  readonly cn?: string;
  /** DNS subjectAltNames: exact (`a.example.com`) or wildcard (`*.example.com`). */
  readonly dns?: readonly string[];
  /** IP subjectAltNames (`127.0.0.1`, `::1`). */
  readonly ips?: readonly string[];
  /** Extended key usage: server (default), client, or both. */
  readonly usage?: 'server' | 'client' | 'both';
  /** Validity start (default: one hour ago, so clock skew between steps does not matter). */
  readonly notBefore?: Date;
  /** Validity end (default: notBefore + 30 days). */
  readonly notAfter?: Date;
  /** Shorthand: valid from 10 days ago until yesterday. */
  readonly expired?: boolean;
  /** Encrypt the key file (PKCS#8, AES-256) with this passphrase. */
  readonly passphrase?: string;
  readonly keyType?: 'ec' | 'rsa';
  /** File name stem (default: derived from cn); files are `<stem>.pem` and `<stem>-key.pem`. */
  readonly fileStem?: string;
}

export type IssuedCert = Pem;

const DAY = 24 * 3600 * 1000;

function openssl(args: readonly string[], cwd: string): void {
  try {
    execFileSync('openssl', args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    const e = err as { stderr?: Buffer; message: string };
    throw new Error(`openssl ${args.join(' ')} failed: ${e.stderr?.toString() ?? e.message}`);
  }
}

/** openssl `ca -startdate` format: YYYYMMDDHHMMSSZ. */
function asn1Time(d: Date): string {
  return d.toISOString().replace(/[-:T]/g, '').slice(0, 14) + 'Z';
}

function keyArgs(keyType: 'ec' | 'rsa'): string[] {
  return keyType === 'rsa' ? ['-newkey', 'rsa:2048'] : ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'];
}

function safeStem(s: string): string {
  return s.replace(/\*/g, 'star').replace(/[^A-Za-z0-9.-]/g, '_');
}

function pemOf(certFile: string, keyFile: string): Pem {
  const cert = readFileSync(certFile, 'utf8');
  return { certFile, keyFile, cert, key: readFileSync(keyFile, 'utf8'), fingerprint256: new X509Certificate(cert).fingerprint256 };
}

/** A fresh temp directory for TLS material. */
export function tlsTempDir(prefix = 'sluice-tls-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** A self-signed CA (its own directory under `parentDir`, default a fresh temp dir). */
export function createCa(name = 'Sluice Test CA', parentDir?: string): CertAuthority {
  const dir = join(parentDir ?? tlsTempDir(), `ca-${safeStem(name)}`);
  mkdirSync(dir, { recursive: true });
  mkdirSync(join(dir, 'issued'));
  writeFileSync(join(dir, 'index.txt'), '');
  writeFileSync(join(dir, 'serial'), Date.now().toString(16).padStart(16, '0') + '\n');
  writeFileSync(
    join(dir, 'openssl.cnf'),
    [
      '[ca]',
      'default_ca = test_ca',
      '[test_ca]',
      `dir = ${dir}`,
      'database = $dir/index.txt',
      'serial = $dir/serial',
      'new_certs_dir = $dir/issued',
      'default_md = sha256',
      'policy = any_policy',
      'unique_subject = no',
      'copy_extensions = none',
      'email_in_dn = no',
      '[any_policy]',
      'commonName = supplied',
      '[req]',
      'distinguished_name = dn',
      '[dn]',
      '[v3_ca]',
      'basicConstraints = critical,CA:true',
      'keyUsage = critical,keyCertSign,cRLSign',
      'subjectKeyIdentifier = hash',
      '',
    ].join('\n'),
  );
  openssl(
    ['req', '-x509', ...keyArgs('ec'), '-nodes', '-keyout', 'ca-key.pem', '-out', 'ca.pem', '-days', '3650',
      '-subj', `/CN=${name}`, '-config', 'openssl.cnf', '-extensions', 'v3_ca'],
    dir,
  );
  return { ...pemOf(join(dir, 'ca.pem'), join(dir, 'ca-key.pem')), name, dir };
}

/** A leaf certificate signed by `ca`. */
export function issueCert(ca: CertAuthority, opts: CertOptions = {}): IssuedCert {
  const dns = opts.dns ?? [];
  const ips = opts.ips ?? [];
  const cn = opts.cn ?? dns[0] ?? ips[0] ?? 'leaf';
  const stem = safeStem(opts.fileStem ?? `${cn}-${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`);
  const now = Date.now();
  const notBefore = opts.notBefore ?? new Date(opts.expired === true ? now - 10 * DAY : now - 3600 * 1000);
  const notAfter = opts.notAfter ?? new Date(opts.expired === true ? now - DAY : notBefore.getTime() + 30 * DAY);
  const usage = opts.usage ?? 'server';
  const eku = usage === 'server' ? 'serverAuth' : usage === 'client' ? 'clientAuth' : 'serverAuth,clientAuth';
  const san = [...dns.map((d) => `DNS:${d}`), ...ips.map((ip) => `IP:${ip}`)];
  const ext = [
    'basicConstraints = critical,CA:false',
    'keyUsage = critical,digitalSignature,keyEncipherment',
    `extendedKeyUsage = ${eku}`,
    'authorityKeyIdentifier = keyid',
    ...(san.length > 0 ? [`subjectAltName = ${san.join(',')}`] : []),
    '',
  ].join('\n');
  const extFile = join(ca.dir, `${stem}.ext`);
  writeFileSync(extFile, ext);
  const keyFile = join(ca.dir, `${stem}-key.pem`);
  const certFile = join(ca.dir, `${stem}.pem`);
  const csr = join(ca.dir, `${stem}.csr`);
  openssl(['req', '-new', ...keyArgs(opts.keyType ?? 'ec'), '-nodes', '-keyout', keyFile, '-out', csr, '-subj', `/CN=${cn}`, '-config', 'openssl.cnf'], ca.dir);
  openssl(
    ['ca', '-batch', '-notext', '-config', 'openssl.cnf', '-cert', ca.certFile, '-keyfile', ca.keyFile, '-in', csr, '-out', certFile,
      '-startdate', asn1Time(notBefore), '-enddate', asn1Time(notAfter), '-extfile', extFile],
    ca.dir,
  );
  if (opts.passphrase !== undefined) {
    const plain = `${keyFile}.plain`;
    writeFileSync(plain, readFileSync(keyFile));
    openssl(['pkcs8', '-topk8', '-v2', 'aes-256-cbc', '-in', plain, '-out', keyFile, '-passout', `pass:${opts.passphrase}`], ca.dir);
  }
  return pemOf(certFile, keyFile);
}

/** A server certificate for `dns` names (and 127.0.0.1 / ::1 unless `ips` is given). */
export function serverCert(ca: CertAuthority, dns: readonly string[], opts: Omit<CertOptions, 'dns' | 'usage'> = {}): IssuedCert {
  return issueCert(ca, { ips: ['127.0.0.1', '::1'], ...opts, dns, usage: 'server' });
}

/** A client certificate with subject CN `cn`. */
export function clientCert(ca: CertAuthority, cn: string, opts: Omit<CertOptions, 'cn' | 'usage'> = {}): IssuedCert {
  return issueCert(ca, { ...opts, cn, usage: 'client' });
}

/** A self-signed leaf certificate (its own issuer: trusted by nobody unless given as CA). */
export function selfSignedCert(dns: readonly string[], opts: { dir?: string; keyType?: 'ec' | 'rsa'; days?: number } = {}): IssuedCert {
  const dir = opts.dir ?? tlsTempDir();
  const stem = safeStem(`self-${dns[0] ?? 'leaf'}-${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`);
  const keyFile = join(dir, `${stem}-key.pem`);
  const certFile = join(dir, `${stem}.pem`);
  const san = dns.map((d) => `DNS:${d}`).join(',');
  openssl(
    ['req', '-x509', ...keyArgs(opts.keyType ?? 'ec'), '-nodes', '-keyout', keyFile, '-out', certFile, '-days', String(opts.days ?? 30),
      '-subj', `/CN=${dns[0] ?? 'leaf'}`, ...(san !== '' ? ['-addext', `subjectAltName=${san}`] : [])],
    dir,
  );
  return pemOf(certFile, keyFile);
}

/** Fingerprint of a PEM certificate or a peer certificate's raw DER. */
export function fingerprintOf(certPemOrDer: string | Buffer): string {
  return new X509Certificate(certPemOrDer).fingerprint256;
}
