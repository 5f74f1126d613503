/**
 * The HTTPS listener's certificates: validation (config semantic checks: exit 2 at start,
 * refused on reload, `--check` too) and the snapshot the workers load.
 *
 * Why a snapshot: uWebSockets.js 20.30 reads certificate files by name, and
 * `addServerName` with an unreadable file or a key that does not match its certificate
 * crashes the whole process (a segmentation fault, no exception). Reading the operator's
 * files in every worker would race with certificate rotation (a cert from before a renewal
 * and a key from after it). So the primary reads each pair once, validates exactly those
 * bytes, and writes them to a private directory (0700, files 0600, named by content hash,
 * never rewritten); the workers only ever load validated, immutable copies.
 *
 * Must never: run on a worker's hot path, or log key material or passphrases.
 */
import { createHash, createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto';
import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createSecureContext } from 'node:tls';
import type { CertPair, TlsListenerConfig } from './config/listeners';
import type { SchemaIssue } from './schema';

/** Files as uWS options want them (validated copies in the snapshot directory). */
export interface TlsFiles {
  readonly certFile: string;
  readonly keyFile: string;
  readonly passphrase?: string;
}

/** What a worker needs to build its HTTPS app; plain data (crosses threads). */
export interface TlsSnapshot {
  /** Content hash of everything below: equal ids mean the same certificates (no rebuild). */
  readonly id: string;
  /** Served without SNI and for names no certificate lists. */
  readonly defaultCert: TlsFiles;
  /** Lower-case server names (exact or `*.suffix`) in config order, each with its pair. */
  readonly serverNames: readonly { readonly name: string; readonly files: TlsFiles }[];
  /** Validated copy of tls.clientAuth.caFile (client certificates are verified); absent without clientAuth. */
  readonly clientCaFile?: string;
}

interface LoadedPair {
  readonly cert: Buffer;
  readonly key: Buffer;
  readonly x509: X509Certificate;
}

const PEM_CERT = '-----BEGIN CERTIFICATE-----';

/** Reads and validates one certificate/key pair; problems go to `issues` under `path`. */
function loadPair(pair: CertPair, path: string, issues: SchemaIssue[]): LoadedPair | null {
  const read = (field: 'certFile' | 'keyFile'): Buffer | null => {
    try {
      return readFileSync(pair[field]);
    } catch (e) {
      issues.push({ path: `${path}.${field}`, message: `cannot be read: ${(e as Error).message}` });
      return null;
    }
  };
  const cert = read('certFile');
  const key = read('keyFile');
  let x509: X509Certificate | null = null;
  if (cert !== null) {
    if (!cert.includes(PEM_CERT)) {
      issues.push({ path: `${path}.certFile`, message: `holds no PEM certificate (${pair.certFile})` });
    } else {
      try {
        x509 = new X509Certificate(cert);
      } catch (e) {
        issues.push({ path: `${path}.certFile`, message: `holds no valid PEM certificate (${pair.certFile}): ${(e as Error).message}` });
      }
    }
  }
  let keyObj: KeyObject | null = null;
  if (key !== null) {
    // Without a passphrase, uWS's TLS stack would ask for one on the terminal.
    const encrypted = /-----BEGIN ENCRYPTED PRIVATE KEY-----|Proc-Type: 4,ENCRYPTED/.test(key.toString('latin1'));
    if (encrypted && pair.passphrase === undefined) {
      issues.push({ path: `${path}.passphrase`, message: `is needed: ${pair.keyFile} is an encrypted key` });
    } else {
      try {
        keyObj = createPrivateKey({ key, format: 'pem', ...(pair.passphrase === undefined ? {} : { passphrase: pair.passphrase }) });
      } catch (e) {
        if (encrypted) issues.push({ path: `${path}.passphrase`, message: `does not decrypt ${pair.keyFile}` });
        else issues.push({ path: `${path}.keyFile`, message: `holds no usable PEM private key (${pair.keyFile}): ${(e as Error).message}` });
      }
    }
  }
  if (cert === null || key === null || x509 === null || keyObj === null) return null;
  if (!x509.checkPrivateKey(keyObj)) {
    issues.push({ path: `${path}.keyFile`, message: `does not belong to the certificate in certFile (${pair.keyFile} vs ${pair.certFile}, subject ${x509.subject.replace(/\n/g, ', ')})` });
    return null;
  }
  try {
    // The whole chain file, as a TLS stack will load it.
    createSecureContext({ cert, key, ...(pair.passphrase === undefined ? {} : { passphrase: pair.passphrase }) });
  } catch (e) {
    issues.push({ path: `${path}.certFile`, message: `and keyFile are not a usable certificate chain and key: ${(e as Error).message}` });
    return null;
  }
  return { cert, key, x509 };
}

/** Paths of every pair in `tls`: [config path, pair, server names]. The default comes first. */
function pairs(tls: TlsListenerConfig): [string, CertPair, readonly string[]][] {
  const out: [string, CertPair, readonly string[]][] = [];
  if (tls.defaultCertificate !== undefined) out.push(['tls.defaultCertificate', tls.defaultCertificate, []]);
  tls.certificates.forEach((c, i) => out.push([`tls.certificates[${i}]`, c, c.serverNames]));
  return out;
}

/**
 * Config semantic checks of the HTTPS listener: every pair readable, PEM, key matching its
 * certificate (with its passphrase); server names listed once; the client CA bundle usable.
 */
export function listenerTlsChecks(tls: TlsListenerConfig | undefined, issues: SchemaIssue[]): void {
  if (tls === undefined) return;
  for (const [path, pair] of pairs(tls)) loadPair(pair, path, issues);
  const seen = new Map<string, string>();
  tls.certificates.forEach((c, i) =>
    c.serverNames.forEach((n, j) => {
      const name = n.toLowerCase();
      const path = `tls.certificates[${i}].serverNames[${j}]`;
      const first = seen.get(name);
      if (first !== undefined) issues.push({ path, message: `${JSON.stringify(n)} is already listed at ${first}` });
      else seen.set(name, path);
    }),
  );
  if (tls.clientAuth !== undefined) loadCa(tls.clientAuth.caFile, 'tls.clientAuth.caFile', issues);
}

/** Reads and checks a CA bundle: PEM certificates a TLS stack accepts as trust anchors. */
function loadCa(file: string, path: string, issues: SchemaIssue[]): Buffer | null {
  let ca: Buffer;
  try {
    ca = readFileSync(file);
  } catch (e) {
    issues.push({ path, message: `cannot be read: ${(e as Error).message}` });
    return null;
  }
  if (!ca.includes(PEM_CERT)) {
    issues.push({ path, message: `holds no PEM certificate (${file})` });
    return null;
  }
  try {
    createSecureContext({ ca });
  } catch (e) {
    issues.push({ path, message: `is not a usable CA bundle (${file}): ${(e as Error).message}` });
    return null;
  }
  return ca;
}

function sha256(b: Buffer | string): string {
  return createHash('sha256').update(b).digest('hex');
}

/** Writes `content` once under its hash (0600); an existing file with that name has that content. */
function writeOnce(dir: string, content: Buffer, suffix: string): string {
  const file = join(dir, `${sha256(content).slice(0, 32)}${suffix}`);
  try {
    writeFileSync(file, content, { mode: 0o600, flag: 'wx' });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
  }
  return file;
}

export interface SnapshotResult {
  readonly snapshot: TlsSnapshot;
  /** Worth a warning, not a refusal (nginx loads these too): expired, name not in the certificate. */
  readonly warnings: readonly string[];
}

/**
 * Reads the listener's pairs once more, validates those exact bytes and writes them into
 * `dir` (the primary's private directory). Throws a message naming the option path when a
 * file changed since the config check and is no longer valid.
 */
export function snapshotListenerTls(tls: TlsListenerConfig, dir: string, now = Date.now()): SnapshotResult {
  const issues: SchemaIssue[] = [];
  const warnings: string[] = [];
  const files = new Map<string, TlsFiles>();
  for (const [path, pair, names] of pairs(tls)) {
    const loaded = loadPair(pair, path, issues);
    if (loaded === null) continue;
    const { x509 } = loaded;
    if (Date.parse(x509.validTo) < now) warnings.push(`${path}.certFile has expired (valid until ${x509.validTo})`);
    else if (Date.parse(x509.validFrom) > now) warnings.push(`${path}.certFile is not valid yet (valid from ${x509.validFrom})`);
    names.forEach((n, j) => {
      // A wildcard entry is checked with a name it must cover.
      const probe = n.startsWith('*.') ? `sni-check${n.slice(1)}` : n;
      if (x509.checkHost(probe) === undefined) warnings.push(`${path}.serverNames[${j}] ${JSON.stringify(n)} is not a name of the certificate in certFile`);
    });
    files.set(path, {
      certFile: writeOnce(dir, loaded.cert, '-cert.pem'),
      keyFile: writeOnce(dir, loaded.key, '-key.pem'),
      ...(pair.passphrase === undefined ? {} : { passphrase: pair.passphrase }),
    });
  }
  let clientCaFile: string | undefined;
  if (tls.clientAuth !== undefined) {
    const ca = loadCa(tls.clientAuth.caFile, 'tls.clientAuth.caFile', issues);
    if (ca !== null) clientCaFile = writeOnce(dir, ca, '-ca.pem');
  }
  if (issues.length > 0) throw new Error(issues.map((i) => `${i.path} ${i.message}`).join('; '));
  const defaultCert = files.get(tls.defaultCertificate !== undefined ? 'tls.defaultCertificate' : 'tls.certificates[0]') as TlsFiles;
  const serverNames: { name: string; files: TlsFiles }[] = [];
  tls.certificates.forEach((c, i) => {
    const f = files.get(`tls.certificates[${i}]`) as TlsFiles;
    for (const n of c.serverNames) serverNames.push({ name: n.toLowerCase(), files: f });
  });
  const id = sha256(JSON.stringify({ defaultCert, serverNames, clientCaFile })).slice(0, 16);
  return { snapshot: { id, defaultCert, serverNames, ...(clientCaFile === undefined ? {} : { clientCaFile }) }, warnings };
}

/** Deletes snapshot files no longer referenced by `keep` (the current and previous snapshots). */
export function pruneSnapshotDir(dir: string, keep: readonly (TlsSnapshot | null)[]): void {
  const used = new Set<string>();
  for (const s of keep) {
    if (s === null) continue;
    for (const f of [s.defaultCert, ...s.serverNames.map((n) => n.files)]) used.add(f.certFile).add(f.keyFile);
    if (s.clientCaFile !== undefined) used.add(s.clientCaFile);
  }
  for (const name of readdirSync(dir)) {
    const file = join(dir, name);
    if (!used.has(file)) rmSync(file, { force: true });
  }
}
