/** Flags shared by `idsync init` and `idsync configure --task add-source`, and their parsing. */
import type { Command } from 'commander';
import { DELETION_THRESHOLD } from '../config/schema.js';
import type { RawCloudAuth, RawSourceConnector } from './config-file.js';
import { secretFromEnv, usageError } from './operations.js';

export const collect = (value: string, previous: string[] = []): string[] => [...previous, value];

export interface SourceFlags {
  sourceName?: string;
  sourceType?: string;
  sourceUrl?: string;
  sourceBindDn?: string;
  sourceBaseDn?: string;
  sourcePath?: string;
  sourceCa?: string;
  sourceServerName?: string;
  sourceStarttls?: boolean;
  sourceInclude?: string[];
  sourceExclude?: string[];
  sourcePasswordEnv?: string;
}

export function addSourceOptions(cmd: Command): Command {
  return cmd
    .option('--source-type <type>', 'source directory type: ad, ldap or ldif')
    .option('--source-name <name>', 'connector name (lower-case letters, digits, dashes; default corp-<type>)')
    .option('--source-url <url>', 'ldap:// or ldaps:// URL of the directory (ad, ldap)')
    .option('--source-bind-dn <dn>', 'account idsync binds as (ad: may be user@domain)')
    .option('--source-base-dn <dn>', 'base DN to read users and groups from')
    .option('--source-path <file>', 'LDIF file (ldif), relative to the configuration file')
    .option('--source-ca <file>', 'PEM CA certificate that signed the directory\'s certificate')
    .option('--source-server-name <name>', 'name to check the server certificate against')
    .option('--source-starttls', 'upgrade ldap:// with StartTLS before binding')
    .option('--source-include <dn>', 'subtree (OU) to sync; repeat for several (default: the whole base DN)', collect)
    .option('--source-exclude <dn>', 'subtree (OU) to leave out; repeat for several', collect)
    .option('--source-password-env <var>', 'environment variable holding the bind password (never on the command line)');
}

export function defaultSourceName(type: string): string {
  return type === 'ldif' ? 'hr-file' : `corp-${type}`;
}

/** A source connector from flags; missing flags are named in one usage error. */
export function sourceFromFlags(f: SourceFlags): RawSourceConnector {
  const type = f.sourceType;
  if (type !== 'ad' && type !== 'ldap' && type !== 'ldif') {
    throw usageError(`--source-type must be ad, ldap or ldif${type ? ` (got "${type}")` : ''}`, 'For example: --source-type ad.');
  }
  const name = f.sourceName ?? defaultSourceName(type);
  const scope = { include: f.sourceInclude ?? [], exclude: f.sourceExclude ?? [] };
  if (type === 'ldif') {
    if (!f.sourcePath) throw usageError('--source-path is required for an ldif source', 'Give the LDIF file, e.g. --source-path ./people.ldif.');
    return { type, name, path: f.sourcePath, scope };
  }
  const missing = [
    ['--source-url', f.sourceUrl],
    ['--source-bind-dn', f.sourceBindDn],
    ['--source-base-dn', f.sourceBaseDn],
  ].filter(([, v]) => !v).map(([k]) => k);
  if (missing.length) throw usageError(`missing ${missing.join(', ')} for the ${type} source`, 'See `idsync init --help` and docs/wizard.md.');
  return {
    type,
    name,
    url: f.sourceUrl!,
    bindDn: f.sourceBindDn!,
    baseDn: f.sourceBaseDn!,
    tls: { ca: f.sourceCa, serverName: f.sourceServerName, startTls: f.sourceStarttls ?? false },
    scope,
  };
}

export function sourceSecretFromFlags(c: RawSourceConnector, f: SourceFlags, env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (c.type === 'ldif') return undefined;
  if (!f.sourcePasswordEnv) throw usageError(`missing --source-password-env for the ${c.type} source "${c.name}"`, 'Put the bind password in an environment variable and name it: --source-password-env IDSYNC_SOURCE_PASSWORD.');
  return secretFromEnv(f.sourcePasswordEnv, `bind password of "${c.name}"`, env);
}

export function cloudAuthFrom(clientId: string | undefined, username: string | undefined): RawCloudAuth | undefined {
  if (clientId && username) throw usageError('give either --cloud-client-id or --cloud-username, not both', 'A client id uses client_credentials; a user name uses the password grant.');
  if (clientId) return { type: 'client_credentials', clientId };
  if (username) return { type: 'password', username };
  return undefined;
}

export function parseOnOff(v: string | undefined, flag: string): boolean | undefined {
  if (v === undefined) return undefined;
  if (/^(on|true|yes|enable|enabled|1)$/i.test(v)) return true;
  if (/^(off|false|no|disable|disabled|0)$/i.test(v)) return false;
  throw usageError(`${flag} must be on or off (got "${v}")`, `For example: ${flag} off.`);
}

/** A count ("500"), a percentage ("10%") or both ("500 or 10%"), as sync.deletionThreshold takes. */
export function parseThreshold(v: string | undefined): number | string | undefined {
  if (v === undefined) return undefined;
  if (/^\d+$/.test(v)) return Number(v);
  if (DELETION_THRESHOLD.test(v)) return v;
  throw usageError(`--deletion-threshold must be a count, a percentage or both (got "${v}")`, 'For example: --deletion-threshold 500, --deletion-threshold 10% or --deletion-threshold "500 or 10%".');
}
