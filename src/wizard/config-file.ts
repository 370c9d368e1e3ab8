/**
 * The wizard's side of the configuration file: renders a new one (with a comment header, never a
 * secret), edits an existing one in place (comments kept), validates the result with the real
 * schema before anything is written, and writes atomically (temp file in the same folder + rename).
 */
import { closeSync, existsSync, fchmodSync, fchownSync, fsyncSync, openSync, realpathSync, renameSync, rmSync, statSync, writeSync, type Stats } from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { isMap, isScalar, isSeq, parseDocument, stringify, type Document } from 'yaml';
import { warnOnStderr } from '../core/fs-errors.js';
import { parseConfigText, type LoadedConfig } from '../config/load.js';
import { configSchema } from '../config/schema.js';
import { IdsyncError } from '../core/errors.js';

/** A connector as the wizard writes it (only the keys the administrator chose; defaults omitted). */
export type RawSourceConnector =
  | {
      type: 'ad' | 'ldap';
      name: string;
      url: string;
      bindDn: string;
      baseDn: string;
      tls?: { ca?: string; startTls?: boolean; serverName?: string; insecureSkipVerify?: boolean };
      scope?: { include?: string[]; exclude?: string[] };
      /** ldap only: the accesslog base and the scheduled full import (docs/delta-import.md). */
      delta?: { accesslogBase?: string; fullImportInterval?: string };
    }
  | { type: 'ldif'; name: string; path: string; scope?: { include?: string[]; exclude?: string[] } };

export type RawCloudAuth = { type: 'password'; username: string } | { type: 'client_credentials'; clientId: string };

export interface RawConfig {
  dataDir: string;
  connectors: RawSourceConnector[];
  cloud: { url: string; auth: RawCloudAuth; ca?: string };
  sync?: { deletionThreshold?: number | string };
  passwordHashSync?: { enabled: boolean };
}

/**
 * Whether this build's configuration schema has the top-level `passwordHashSync` key. The wizard
 * writes the key only when it does: the schema is strict, and a key it does not know would make
 * the file invalid.
 */
export function passwordHashSyncSupported(): boolean {
  const inner = (configSchema as unknown as { _def?: { schema?: { shape?: Record<string, unknown> } } })._def?.schema;
  return Boolean(inner?.shape && 'passwordHashSync' in inner.shape);
}

/** Drops empty optional sections so the file shows only what the administrator chose. */
function clean(raw: RawConfig): Record<string, unknown> {
  const connectors = raw.connectors.map((c) => {
    const out: Record<string, unknown> = { ...c };
    if ('tls' in c && c.tls) {
      const tls = Object.fromEntries(Object.entries(c.tls).filter(([, v]) => v !== undefined && v !== false && v !== ''));
      if (Object.keys(tls).length) out.tls = tls;
      else delete out.tls;
    }
    const scope = c.scope ?? {};
    const s: Record<string, string[]> = {};
    if (scope.include?.length) s.include = scope.include;
    if (scope.exclude?.length) s.exclude = scope.exclude;
    if (Object.keys(s).length) out.scope = s;
    else delete out.scope;
    return out;
  });
  const out: Record<string, unknown> = { dataDir: raw.dataDir, connectors, cloud: { ...raw.cloud } };
  if (raw.sync?.deletionThreshold !== undefined) out.sync = { deletionThreshold: raw.sync.deletionThreshold };
  if (raw.passwordHashSync && passwordHashSyncSupported()) out.passwordHashSync = { enabled: raw.passwordHashSync.enabled };
  return out;
}

export function renderConfigYaml(raw: RawConfig, now = new Date()): string {
  const header = [
    '# idsync configuration, written by `idsync init` on ' + now.toISOString().slice(0, 10) + '.',
    '# Change it with `idsync configure`, or edit it by hand (docs/configuration.md describes every key).',
    '# No secret is kept here: bind passwords and the cloud secret are in the encrypted credential store',
    '# in dataDir (`idsync credentials list`).',
    '',
  ].join('\n');
  return header + stringify(clean(raw), { lineWidth: 0 });
}

/** Validates a configuration text with the real schema (throws CONFIG_INVALID naming the key). */
export function validateConfigText(text: string, file: string): LoadedConfig {
  return parseConfigText(text, path.resolve(file));
}

/**
 * Writes `text` to `file` atomically: a temp file in the same folder, then rename over it. A file
 * that existed keeps its mode, owner and group (the temp file gets them with fchmod/fchown before
 * the rename: the process umask, 077 in the CLI, would otherwise narrow the mode, and a new inode
 * belongs to whoever runs the command), and a symbolic link stays one (its target is replaced).
 * When the owner cannot be kept (not root), `warn` says so; the mode is kept all the same.
 */
export function writeFileAtomic(file: string, text: string, warn: (message: string) => void = warnOnStderr): void {
  let abs = path.resolve(file);
  let original: Stats | undefined;
  try {
    abs = realpathSync(abs);
    original = statSync(abs);
  } catch {
    /* new file: the process umask decides its mode */
  }
  const tmp = path.join(path.dirname(abs), `.${path.basename(abs)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  try {
    const fd = openSync(tmp, 'wx', original ? original.mode & 0o777 : 0o644);
    try {
      writeSync(fd, text);
      if (original) keepModeAndOwner(fd, original, abs, warn);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, abs);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw new IdsyncError('CONFIG_INVALID', `cannot write ${abs}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, {
      hint: 'Check that the folder exists and is writable by this user.',
      cause: err,
    });
  }
}

function keepModeAndOwner(fd: number, original: Stats, file: string, warn: (message: string) => void): void {
  fchmodSync(fd, original.mode & 0o7777);
  if (original.uid === process.geteuid?.() && original.gid === process.getegid?.()) return;
  try {
    fchownSync(fd, original.uid, original.gid);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'EPERM' && code !== 'EINVAL') throw err;
    warn(`${file} was owned by uid ${original.uid} gid ${original.gid}; only root can keep that owner, so it now belongs to this user (\`chown ${original.uid}:${original.gid} ${file}\` restores it).`);
  }
  // chown clears the set-id bits: the mode once more, now that the owner is right.
  fchmodSync(fd, original.mode & 0o7777);
}

export function assertCanCreate(file: string, force: boolean): void {
  if (existsSync(file) && !force) {
    throw new IdsyncError('CONFIG_INVALID', `${path.resolve(file)} already exists; nothing was changed`, {
      hint: 'Change an existing installation with `idsync configure`, or start over with `idsync init --force` (the file is replaced).',
      details: { file: path.resolve(file) },
    });
  }
}

/**
 * Applies `edit` to the YAML document of `loaded.file` (comments and order kept), validates the
 * result and returns the new text and configuration. Nothing is written.
 */
export function editConfig(loaded: LoadedConfig, currentText: string, edit: (doc: Document) => void): { text: string; loaded: LoadedConfig } {
  const doc = parseDocument(currentText);
  edit(doc);
  const text = doc.toString({ lineWidth: 0 });
  return { text, loaded: validateConfigText(text, loaded.file) };
}

/** Index of a connector in the file, or a CONFIG_INVALID error naming the known ones. */
export function connectorIndex(loaded: LoadedConfig, name: string, allowLdif = true): number {
  const i = loaded.config.connectors.findIndex((c) => c.name === name);
  const known = loaded.config.connectors.filter((c) => allowLdif || c.type !== 'ldif').map((c) => c.name);
  if (i < 0) {
    throw new IdsyncError('CONFIG_INVALID', `no source connector named "${name}" in ${loaded.file}`, {
      hint: `Known connectors: ${known.join(', ') || '(none)'}.`,
      details: { connector: name },
    });
  }
  if (!allowLdif && loaded.config.connectors[i]!.type === 'ldif') {
    throw new IdsyncError('CONFIG_INVALID', `connector "${name}" reads an LDIF file and has no credential`, {
      hint: `Connectors with a credential: ${known.join(', ') || '(none)'}.`,
      details: { connector: name },
    });
  }
  return i;
}

/** Sets a value deep in the document, creating YAML nodes (so it stringifies as block YAML). */
export function setIn(doc: Document, keyPath: (string | number)[], value: unknown): void {
  doc.setIn(keyPath, doc.createNode(value));
}

/**
 * `idsync connectors rename`: the connector's `name:` and every rule that names it (`rules.scope`
 * and `rules.inbound` connector keys, `rules.precedence` lists) now say `to`; comments and order
 * are kept. The new name is checked by the real schema (CONFIG_INVALID naming file:line when it is
 * not a valid connector name). Nothing is written. CEL expressions that compare `connector` to a
 * name are text the rename does not rewrite: the caller says so.
 */
export function renameConnectorInConfig(loaded: LoadedConfig, currentText: string, from: string, to: string): { text: string; loaded: LoadedConfig } {
  const i = connectorIndex(loaded, from);
  return editConfig(loaded, currentText, (doc) => {
    doc.setIn(['connectors', i, 'name'], to);
    const renameIn = (node: unknown) => {
      if (!isSeq(node)) return;
      node.items.forEach((item, k) => {
        if (isScalar(item) && item.value === from) node.set(k, doc.createNode(to));
      });
    };
    for (const section of ['scope', 'inbound']) {
      const list = doc.getIn(['rules', section]);
      if (!isSeq(list)) continue;
      for (const rule of list.items) if (isMap(rule) && rule.get('connector') === from) rule.set('connector', to);
    }
    renameIn(doc.getIn(['rules', 'precedence', 'default']));
    const attrs = doc.getIn(['rules', 'precedence', 'attributes']);
    if (isMap(attrs)) for (const pair of attrs.items) renameIn(pair.value);
  });
}
