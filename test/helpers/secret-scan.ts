/**
 * The secret scanner of the end-to-end tests: every file under every data folder (raw bytes, so
 * SQLite's db, -wal and -shm and free pages are included), every captured log and console output,
 * searched for every password, NT hash and token the test used — in UTF-8 and UTF-16LE, NT hashes
 * also as raw bytes and as upper- and lower-case hex.
 *
 *   const secrets = new SecretSet();
 *   await secrets.password('ann', 'Initial-1!');     // the password and its NT hash
 *   secrets.token('agent token', token);
 *   assertNoSecrets(secrets, { dirs: [lab.dir, cloud.dataDir], texts: captured });
 *
 * Matching is byte-exact per form (a secret is searched in each encoding, not case-folded), using
 * an 8-byte key per position, so thousands of secrets over megabytes of files stay fast.
 */
import { readdirSync, readFileSync, lstatSync } from 'node:fs';
import path from 'node:path';
import { ntHash } from '../../src/passwords/hash.js';

/** Shorter secrets would match by chance in binary files; tests use longer ones. */
export const MIN_SECRET_BYTES = 8;
const KEY = 8;

export interface Needle {
  /** Which secret, e.g. `password of ann`; never the secret itself. */
  label: string;
  /** The form searched, e.g. `UTF-16LE`, `hex (upper) UTF-8`, `raw bytes`. */
  form: string;
  bytes: Buffer;
}

export interface Finding {
  /** A file path or the name of a captured text. */
  where: string;
  label: string;
  form: string;
  offset: number;
}

/** The secrets a test used, with every form each is searched in. */
export class SecretSet {
  readonly needles: Needle[] = [];
  private readonly seen = new Set<string>();

  private add(label: string, form: string, bytes: Buffer): void {
    if (bytes.length < MIN_SECRET_BYTES) throw new Error(`secret-scan: ${label} (${form}) is ${bytes.length} bytes; use secrets of at least ${MIN_SECRET_BYTES} bytes`);
    const k = bytes.toString('hex');
    if (this.seen.has(k)) return;
    this.seen.add(k);
    this.needles.push({ label, form, bytes });
  }

  /** A text secret (token, client secret, password without its hash): UTF-8 and UTF-16LE. */
  token(label: string, value: string): this {
    this.add(label, 'UTF-8', Buffer.from(value, 'utf8'));
    this.add(label, 'UTF-16LE', Buffer.from(value, 'utf16le'));
    return this;
  }

  /** An NT hash: raw bytes, and hex upper and lower in UTF-8 and UTF-16LE. */
  ntHash(label: string, nt: Buffer): this {
    this.add(label, 'raw bytes', Buffer.from(nt));
    for (const [c, hex] of [['lower', nt.toString('hex')], ['upper', nt.toString('hex').toUpperCase()]] as const) {
      this.add(label, `hex (${c}) UTF-8`, Buffer.from(hex, 'utf8'));
      this.add(label, `hex (${c}) UTF-16LE`, Buffer.from(hex, 'utf16le'));
    }
    return this;
  }

  /** A password: the text (UTF-8, UTF-16LE) and its NT hash (every form). */
  async password(label: string, password: string): Promise<this> {
    this.token(`password of ${label}`, password);
    this.ntHash(`NT hash of ${label}`, await ntHash(password));
    return this;
  }

  get size(): number {
    return this.needles.length;
  }
}

/** A fast multi-pattern search: an index of every needle by its first 8 bytes. */
class Matcher {
  private readonly byKey = new Map<number, Needle[]>();

  constructor(needles: readonly Needle[]) {
    for (const n of needles) {
      const k = keyAt(n.bytes, 0);
      const list = this.byKey.get(k);
      if (list) list.push(n);
      else this.byKey.set(k, [n]);
    }
  }

  find(hay: Buffer, where: string, out: Finding[]): void {
    for (let i = 0; i + KEY <= hay.length; i++) {
      const list = this.byKey.get(keyAt(hay, i));
      if (!list) continue;
      for (const n of list) {
        if (i + n.bytes.length <= hay.length && hay.compare(n.bytes, 0, n.bytes.length, i, i + n.bytes.length) === 0) {
          out.push({ where, label: n.label, form: n.form, offset: i });
        }
      }
    }
  }
}

function keyAt(b: Buffer, i: number): number {
  return (b.readUInt32LE(i) ^ Math.imul(b.readUInt32LE(i + 4), 0x9e3779b1)) >>> 0;
}

/** Every regular file under a folder (symlinks are not followed). */
export function filesUnder(dir: string): string[] {
  const out: string[] = [];
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return out;
  }
  for (const name of names) {
    const p = path.join(dir, name);
    const st = lstatSync(p);
    if (st.isDirectory()) out.push(...filesUnder(p));
    else if (st.isFile()) out.push(p);
  }
  return out;
}

export interface ScanTargets {
  /** Folders scanned recursively, every file as raw bytes. */
  dirs?: readonly string[];
  /** Single files (logs, event files). */
  files?: readonly string[];
  /** Captured texts: console output, logs, event dumps. Scanned in UTF-8. */
  texts?: readonly { what: string; text: string }[];
  /**
   * Files that are allowed to hold secrets because they ARE the source of truth (a source LDIF
   * with sambaNTPassword, a slapd seed); each with the reason, matched by absolute path.
   */
  exclude?: readonly { file: string; why: string }[];
}

/** Searches everything for every secret; returns what was found where (empty = clean). */
export function scanForSecrets(secrets: SecretSet, targets: ScanTargets): { findings: Finding[]; scanned: { files: number; bytes: number; texts: number } } {
  const matcher = new Matcher(secrets.needles);
  const findings: Finding[] = [];
  const excluded = new Set((targets.exclude ?? []).map((e) => path.resolve(e.file)));
  const files = [...(targets.dirs ?? []).flatMap(filesUnder), ...(targets.files ?? [])].filter((f) => !excluded.has(path.resolve(f)));
  let bytes = 0;
  for (const f of new Set(files)) {
    let data: Buffer;
    try {
      data = readFileSync(f);
    } catch (err) {
      // A file removed while the scan ran (e.g. a -journal) has nothing left to leak.
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw err;
    }
    bytes += data.length;
    matcher.find(data, f, findings);
  }
  for (const t of targets.texts ?? []) {
    const data = Buffer.from(t.text, 'utf8');
    bytes += data.length;
    matcher.find(data, t.what, findings);
  }
  return { findings, scanned: { files: new Set(files).size, bytes, texts: targets.texts?.length ?? 0 } };
}

/** A readable summary of findings (labels and places only: never the secrets). */
export function describeFindings(findings: readonly Finding[], max = 20): string {
  const lines = findings.slice(0, max).map((f) => `  ${f.label} (${f.form}) in ${f.where} at byte ${f.offset}`);
  if (findings.length > max) lines.push(`  ... and ${findings.length - max} more`);
  return lines.join('\n');
}

/** Throws, naming every place a secret was found, unless the scan is clean. Returns what was scanned. */
export function assertNoSecrets(secrets: SecretSet, targets: ScanTargets): { files: number; bytes: number; texts: number } {
  if (secrets.size === 0) throw new Error('secret-scan: no secrets to look for');
  const { findings, scanned } = scanForSecrets(secrets, targets);
  if (findings.length > 0) throw new Error(`secret-scan: ${findings.length} secret(s) found:\n${describeFindings(findings)}`);
  if (scanned.files + scanned.texts === 0) throw new Error('secret-scan: nothing was scanned (wrong folders?)');
  return scanned;
}

/**
 * The end-to-end tests' scan: the passwords (and their NT hashes) and tokens a test used, over its
 * data folders and every captured output. Returns what was scanned; throws naming each finding.
 */
export async function assertNoTestSecrets(used: { passwords?: readonly string[]; tokens?: Readonly<Record<string, string>> }, targets: ScanTargets): Promise<{ files: number; bytes: number; texts: number }> {
  const secrets = new SecretSet();
  for (const [i, p] of (used.passwords ?? []).entries()) await secrets.password(`password #${i}`, p);
  for (const [name, value] of Object.entries(used.tokens ?? {})) secrets.token(name, value);
  return assertNoSecrets(secrets, targets);
}
