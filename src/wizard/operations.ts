/**
 * What `idsync init` and `idsync configure` do, without any prompt: the interactive wizard and the
 * non-interactive flags both call these. Every secret is validated against its directory before
 * anything is saved; YAML changes are validated with the schema and written atomically; secrets go
 * to the encrypted credential store only (never the YAML, never the output).
 */
import { writeConsoleAccount } from '../console/account.js';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';
import type { LoadedConfig } from '../config/load.js';
import { IdsyncError, isIdsyncError, toIdsyncError } from '../core/errors.js';
import { withoutSecret } from '../core/secret-text.js';
import { openContext, type EngineContext } from '../engine/context.js';
import { EVENTS } from '../events/catalog.js';
import { isDnUnder, tryNormalizeDn } from '../ldap/dn.js';
import { readLines } from '../passwords/input.js';
import {
  assertCanCreate,
  connectorIndex,
  editConfig,
  passwordHashSyncSupported,
  renderConfigYaml,
  setIn,
  validateConfigText,
  writeFileAtomic,
  type RawCloudAuth,
  type RawConfig,
  type RawSourceConnector,
} from './config-file.js';

/** Name under which the cloud connector's credential is stored (as connectors/registry.ts CLOUD_CONNECTOR). */
export const CLOUD = 'cloud';

export type SecretTester = (loaded: LoadedConfig, name: string, secret: string) => Promise<void>;

/** The real live test, loaded on use (the registry pulls in the LDAP and HTTP clients). */
export const liveTest: SecretTester = async (loaded, name, secret) => {
  const registry = await import('../connectors/registry.js');
  await registry.testConnectorSecret(loaded, name, secret);
};

export function usageError(message: string, hint: string): IdsyncError {
  return new IdsyncError('CONFIG_INVALID', message, { hint });
}

/** The failure under a wrapper (the credential store wraps its validator's error as CREDENTIAL_INVALID). */
function rootCause(err: unknown): unknown {
  if (isIdsyncError(err, 'CREDENTIAL_INVALID') && err.details.causeCode !== undefined && err.cause !== undefined) return err.cause;
  return err;
}

/** What to do when TLS to a source fails: its three ways out, the last one with its price. */
export const TLS_FIXES =
  'Fix it one of three ways: use ldaps:// (usually port 636) if the server offers TLS there; if the certificate comes from a private CA, give that CA (tls.ca, --source-ca); ' +
  'or, only on a network you trust, use plain LDAP without StartTLS (tls.startTls: false) — the bind password and password hashes then cross the network unencrypted, and idsync warns about it.';

function cloudAccountFix(loaded: LoadedConfig | undefined): { who: string; hint: string } {
  const auth = loaded?.config.cloud.auth;
  const url = loaded?.config.cloud.url;
  const at = url ? ` --url ${url}` : '';
  if (auth?.type === 'password') {
    return {
      who: `the sync account "${auth.username}"`,
      hint: `Check the user name and password. A cloud global administrator creates the account with \`idsync cloud admin create-account${at} --username ${auth.username} --role sync\` or resets its password with \`idsync cloud admin set-password${at} --username ${auth.username}\`.`,
    };
  }
  const id = auth?.clientId ?? 'idsync';
  return {
    who: `client "${id}"`,
    hint:
      `Check the client id and its secret. A cloud global administrator creates the sync client with \`idsync cloud admin create-client${at} --client-id ${id} --role sync\` (it prints the secret once); ` +
      `a lost secret cannot be shown again: \`idsync cloud admin delete-client${at} --client-id ${id}\`, then create-client again.`,
  };
}

/**
 * Refusal of a candidate secret, worded by its real cause: the cloud refusing its client (with how
 * to create or reset it), TLS failing before the secret was even tried (with the TLS fixes), the
 * directory being unreachable, or the directory refusing the credential. Never contains the secret.
 */
export function refusal(name: string, err: unknown, secret: string, saved: boolean, loaded?: LoadedConfig): IdsyncError {
  const cause = rootCause(err);
  const e = toIdsyncError(cause);
  const scrub = (t: string) => withoutSecret(t, secret);
  const kept = saved ? 'the saved credential is kept' : 'nothing was saved';
  if (e.code === 'LDAP_TLS_FAILED') {
    return new IdsyncError('LDAP_TLS_FAILED', `TLS to the directory of connector "${name}" failed, so its password was not tried: ${scrub(e.message)} (${kept})`, {
      hint: TLS_FIXES,
      details: { connector: name, causeCode: e.code },
      cause,
    });
  }
  if (e.code === 'LDAP_UNREACHABLE' || e.code === 'CLOUD_UNREACHABLE') {
    return new IdsyncError(e.code, `${scrub(e.message)}, so the secret for connector "${name}" was not tried (${kept})`, {
      ...(e.hint ? { hint: scrub(e.hint) } : {}),
      details: { connector: name, causeCode: e.code },
      cause,
    });
  }
  if (name === CLOUD && e.code === 'CLOUD_AUTH_FAILED') {
    const { who, hint } = cloudAccountFix(loaded);
    const url = loaded ? ` at ${loaded.config.cloud.url}` : '';
    return new IdsyncError('CREDENTIAL_INVALID', `the cloud directory${url} refused ${who}: unknown client or wrong secret (${kept})`, {
      hint,
      details: { connector: name, causeCode: e.code },
      cause,
    });
  }
  if (e.code === 'CREDENTIAL_INVALID' && e.details.connector === name) return e; // already worded by the store
  if (cause !== err && isIdsyncError(err)) return err; // the store's wording of a directory refusal
  return new IdsyncError('CREDENTIAL_INVALID', `the credential for connector "${name}" was not accepted: ${scrub(e.message)} (${kept})`, {
    hint: (e.hint ? scrub(e.hint) + ' ' : '') + 'Check the account and the secret and try again.',
    details: { connector: name, causeCode: e.code },
    cause,
  });
}

/** Tests a candidate secret against a candidate configuration (nothing saved either way). */
export async function testSecret(loaded: LoadedConfig, name: string, secret: string, tester: SecretTester = liveTest): Promise<void> {
  if (!secret) throw usageError(`the secret for connector "${name}" is empty`, 'Provide the password or client secret.');
  try {
    await tester(loaded, name, secret);
  } catch (err) {
    throw refusal(name, err, secret, false, loaded);
  }
}

/**
 * Validates and saves a secret in the store of `ctx`, with its event: CREDENTIAL_CHANGED when
 * saved, CREDENTIAL_REFUSED (the working credential kept) when the directory refuses it.
 */
export async function saveCredential(ctx: EngineContext, name: string, secret: string, tester: SecretTester = liveTest, loaded = ctx.loaded): Promise<void> {
  try {
    await ctx.credentials.setValidated(name, secret, (s) => tester(loaded, name, s));
  } catch (err) {
    // The store's own checks (empty secret, bad name) carry no causeCode: they are already worded.
    const e = isIdsyncError(err, 'CREDENTIAL_INVALID') && err.details.causeCode === undefined ? err : refusal(name, err, secret, ctx.credentials.has(name), loaded);
    if (e.code === 'CREDENTIAL_INVALID') ctx.events.emit(EVENTS.CREDENTIAL_REFUSED, { connector: name, error: e.message });
    throw e;
  }
  ctx.events.emit(EVENTS.CREDENTIAL_CHANGED, { connector: name });
}

// ---------------------------------------------------------------------------------------------
// Secrets from the environment and standard input (never from argv)
// ---------------------------------------------------------------------------------------------

export function secretFromEnv(variable: string, what: string, env: NodeJS.ProcessEnv = process.env): string {
  const v = env[variable];
  if (v === undefined || v === '') {
    throw usageError(`the environment variable ${variable} (${what}) is not set or empty`, `Export it before running the command, e.g. \`export ${variable}=...\` from your secret manager.`);
  }
  return v;
}

/** First line of standard input. */
export async function secretFromStdin(stdin: Readable, what: string): Promise<string> {
  for await (const item of readLines(stdin, 64 * 1024)) {
    if ('error' in item) throw usageError(`${what} on standard input is not UTF-8 text or is too long`, 'Pipe the secret alone, on one line, in UTF-8.');
    if (item.text.length > 0) return item.text;
    break;
  }
  throw usageError(`no ${what} on standard input (the first line is empty)`, `Pipe it in, e.g. \`printf '%s\\n' "$SECRET" | idsync configure ... --password-stdin\`.`);
}

// ---------------------------------------------------------------------------------------------
// init
// ---------------------------------------------------------------------------------------------

/**
 * The data directory `init` proposes, the same in both modes (it used to depend on the mode and on
 * root): /var/lib/idsync for a configuration in /etc (a server, where the systemd unit's
 * StateDirectory= manages it), else ./idsync-data beside the configuration file.
 */
export function defaultDataDir(file: string): string {
  const abs = path.resolve(file);
  return abs.startsWith('/etc/') ? '/var/lib/idsync' : './idsync-data';
}

/** Warnings about a configuration that works but sends secrets in clear text. */
export function securityWarnings(config: RawConfig): string[] {
  const out: string[] = [];
  for (const c of config.connectors) {
    if (c.type === 'ldif' || !c.url.startsWith('ldap://') || c.tls?.startTls) continue;
    out.push(
      `connector "${c.name}" uses plain ${c.url} without StartTLS: the bind password and every password hash cross the network unencrypted. Use ldaps:// (with --source-ca), or --source-starttls; keep plain LDAP to a trusted network (or the same host).`,
    );
  }
  const cloud = /^http:\/\/([^/:]+|\[[^\]]+\])/.exec(config.cloud.url);
  if (cloud && !/^(127\.\d+\.\d+\.\d+|\[::1\]|localhost)$/i.test(cloud[1]!)) {
    out.push(`the cloud URL ${config.cloud.url} is plain HTTP to another machine: the client secret and password hashes cross the network unencrypted. Use https://.`);
  }
  return out;
}

export interface InitInput {
  file: string;
  force: boolean;
  config: RawConfig;
  /** Secrets by connector name (every AD/LDAP connector and "cloud"). */
  secrets: Record<string, string>;
}

export interface InitResult {
  file: string;
  dataDir: string;
  connectors: string[];
  cloud: { url: string; auth: RawCloudAuth };
  credentialsSaved: string[];
  passwordHashSync: { enabled: boolean; written: boolean };
  deletionThreshold: number | string;
  /** Things that work but are unsafe (plain LDAP, plain HTTP): printed on stderr. */
  warnings: string[];
  nextSteps: string[];
}

/** Validates the configuration and every secret, then saves the secrets and writes the YAML. */
export async function runInit(input: InitInput, tester: SecretTester = liveTest): Promise<InitResult> {
  const text = renderConfigYaml(input.config);
  const loaded = validateConfigText(text, input.file);
  assertCanCreate(loaded.file, input.force);
  const needing = [...loaded.config.connectors.filter((c) => c.type !== 'ldif').map((c) => c.name), CLOUD];
  for (const name of needing) {
    const secret = input.secrets[name];
    if (!secret) throw usageError(`no secret given for connector "${name}"`, name === CLOUD ? 'Pass --cloud-secret-env VAR.' : 'Pass --source-password-env VAR.');
  }
  // Every secret is tested before anything is written: a refusal leaves no file and no store.
  for (const name of needing) await testSecret(loaded, name, input.secrets[name]!, tester);
  // The store (data directory, database, key) and the secrets first, the file last: a data
  // directory that cannot be made, a full disk... leaves no configuration file behind (the next
  // `init` would say "already exists"), and `init --force` leaves the old file as it was.
  const ctx = openContext(loaded);
  try {
    for (const name of needing) {
      // Tested seconds ago above; setValidated records the successful test with the secret.
      await ctx.credentials.setValidated(name, input.secrets[name]!, async () => {});
      ctx.events.emit(EVENTS.CREDENTIAL_CHANGED, { connector: name });
    }
  } finally {
    ctx.close();
  }
  writeFileAtomic(loaded.file, text);
  return {
    file: loaded.file,
    dataDir: loaded.dataDir,
    connectors: loaded.config.connectors.map((c) => c.name),
    cloud: { url: input.config.cloud.url, auth: input.config.cloud.auth },
    credentialsSaved: needing,
    passwordHashSync: { enabled: input.config.passwordHashSync?.enabled ?? true, written: passwordHashSyncSupported() },
    deletionThreshold: loaded.config.sync.deletionThreshold,
    warnings: securityWarnings(input.config),
    nextSteps: nextSteps(loaded.file),
  };
}

/**
 * Sets up the sync console's account after `init` wrote the configuration (as `idsync console
 * set-password` does: only an scrypt hash is stored), and says where to sign in.
 */
export async function setUpConsoleAccount(result: InitResult, username: string, password: string): Promise<void> {
  const account = await writeConsoleAccount(result.dataDir, username, password);
  result.nextSteps = result.nextSteps.filter((x) => !x.includes('idsync console set-password'));
  result.nextSteps.push(`Open the web console at http://127.0.0.1:7443/console/ once \`idsync serve\` runs (account "${account.username}").`);
}

export function nextSteps(file: string): string[] {
  const c = file === `${process.cwd()}/idsync.yaml` ? '' : ` --config ${file}`;
  return [
    `idsync${c} credentials test      # check every connection again`,
    `idsync${c} sync                  # run one sync cycle now and see what it did`,
    `idsync${c} serve                 # run the service in the foreground (or: idsync service start)`,
    `idsync${c} console set-password  # an account for the web console at http://127.0.0.1:7443/console/`,
  ];
}

// ---------------------------------------------------------------------------------------------
// configure tasks
// ---------------------------------------------------------------------------------------------

export const TASKS = [
  'update-cloud-credentials',
  'update-source-credentials',
  'scope',
  'password-hash-sync',
  'add-source',
  'view',
] as const;
export type Task = (typeof TASKS)[number];

/** What a YAML change means for a running service (it reads the file at start only). */
export const YAML_TAKES_EFFECT = 'A running service picks up the changed configuration before its next cycle (within a minute), no restart needed.';
export const SECRET_TAKES_EFFECT = 'A running service uses the new credential from its next call; no restart is needed.';

export interface TaskResult {
  task: Task;
  changed: boolean;
  connector?: string;
  credentialSaved?: string;
  configWritten?: boolean;
  [key: string]: unknown;
  takesEffect: string;
}

function readText(loaded: LoadedConfig): string {
  return readFileSync(loaded.file, 'utf8');
}

/** Runs fn with a context on `loaded`, closing it afterwards. */
async function withCtx<T>(loaded: LoadedConfig, fn: (ctx: EngineContext) => Promise<T>): Promise<T> {
  const ctx = openContext(loaded);
  try {
    return await fn(ctx);
  } finally {
    ctx.close();
  }
}

/** New cloud secret (and optionally another account/client id): validated, saved, YAML updated if the id changed. */
export async function updateCloudCredentials(loaded: LoadedConfig, secret: string, auth: RawCloudAuth | undefined, tester: SecretTester = liveTest): Promise<TaskResult> {
  const current = loaded.config.cloud.auth;
  const changesAuth = auth !== undefined && JSON.stringify(auth) !== JSON.stringify(current);
  const edited = changesAuth ? editConfig(loaded, readText(loaded), (doc) => setIn(doc, ['cloud', 'auth'], auth)) : undefined;
  const candidate = edited?.loaded ?? loaded;
  await withCtx(loaded, (ctx) => saveCredential(ctx, CLOUD, secret, tester, candidate));
  if (edited) writeFileAtomic(loaded.file, edited.text);
  return {
    task: 'update-cloud-credentials',
    changed: true,
    connector: CLOUD,
    credentialSaved: CLOUD,
    configWritten: Boolean(edited),
    auth: candidate.config.cloud.auth,
    takesEffect: edited ? `${SECRET_TAKES_EFFECT} The account changed in the file: ${YAML_TAKES_EFFECT}` : SECRET_TAKES_EFFECT,
  };
}

/** New bind password (and optionally bind DN) of a source connector. */
export async function updateSourceCredentials(loaded: LoadedConfig, name: string, secret: string, bindDn: string | undefined, tester: SecretTester = liveTest): Promise<TaskResult> {
  const i = connectorIndex(loaded, name, false);
  const cfg = loaded.config.connectors[i]!;
  const changesDn = bindDn !== undefined && cfg.type !== 'ldif' && bindDn !== cfg.bindDn;
  const edited = changesDn ? editConfig(loaded, readText(loaded), (doc) => setIn(doc, ['connectors', i, 'bindDn'], bindDn)) : undefined;
  const candidate = edited?.loaded ?? loaded;
  await withCtx(loaded, (ctx) => saveCredential(ctx, name, secret, tester, candidate));
  if (edited) writeFileAtomic(loaded.file, edited.text);
  return {
    task: 'update-source-credentials',
    changed: true,
    connector: name,
    credentialSaved: name,
    configWritten: Boolean(edited),
    takesEffect: edited ? `${SECRET_TAKES_EFFECT} The bind DN changed in the file: ${YAML_TAKES_EFFECT}` : SECRET_TAKES_EFFECT,
  };
}

/** Checks that scope DNs parse and lie under the connector's base DN (LDAP/AD). */
export function checkScopeDns(loaded: LoadedConfig, name: string, dns: string[]): void {
  const cfg = loaded.config.connectors[connectorIndex(loaded, name)]!;
  for (const dn of dns) {
    if (tryNormalizeDn(dn) === undefined) throw usageError(`"${dn}" is not a valid DN`, 'Write it like OU=Staff,DC=corp,DC=example,DC=com.');
    if (cfg.type !== 'ldif' && !isDnUnder(dn, cfg.baseDn)) {
      throw usageError(`"${dn}" is not under the base DN ${cfg.baseDn} of connector "${name}"`, 'Scope subtrees must be inside the connector\'s baseDn.');
    }
  }
}

/** Replaces the include and/or exclude lists of a connector's scope. */
export function setScope(loaded: LoadedConfig, name: string, change: { include?: string[]; exclude?: string[] }): TaskResult {
  const i = connectorIndex(loaded, name);
  checkScopeDns(loaded, name, [...(change.include ?? []), ...(change.exclude ?? [])]);
  const before = loaded.config.connectors[i]!.scope;
  const edited = editConfig(loaded, readText(loaded), (doc) => {
    if (change.include) setIn(doc, ['connectors', i, 'scope', 'include'], change.include);
    if (change.exclude) setIn(doc, ['connectors', i, 'scope', 'exclude'], change.exclude);
  });
  writeFileAtomic(loaded.file, edited.text);
  const after = edited.loaded.config.connectors[i]!.scope;
  return {
    task: 'scope',
    changed: JSON.stringify(before) !== JSON.stringify(after),
    connector: name,
    configWritten: true,
    scope: after,
    takesEffect: `${YAML_TAKES_EFFECT} The next full import (\`idsync sync --full\`) applies the new scope.`,
  };
}

export function currentPasswordHashSync(loaded: LoadedConfig): boolean {
  const v = (loaded.config as unknown as { passwordHashSync?: { enabled?: boolean } }).passwordHashSync;
  return v?.enabled ?? true;
}

export function setPasswordHashSync(loaded: LoadedConfig, enabled: boolean): TaskResult {
  if (!passwordHashSyncSupported()) {
    throw usageError(
      'this version of idsync has no passwordHashSync setting in its configuration schema; nothing was changed',
      'Upgrade idsync; until then password hash sync follows the service\'s defaults.',
    );
  }
  const before = currentPasswordHashSync(loaded);
  const edited = editConfig(loaded, readText(loaded), (doc) => setIn(doc, ['passwordHashSync', 'enabled'], enabled));
  writeFileAtomic(loaded.file, edited.text);
  return { task: 'password-hash-sync', changed: before !== enabled, configWritten: true, enabled, takesEffect: YAML_TAKES_EFFECT };
}

/** Adds a source connector: secret validated against the new directory, then YAML + store. */
export async function addSource(loaded: LoadedConfig, connector: RawSourceConnector, secret: string | undefined, tester: SecretTester = liveTest): Promise<TaskResult> {
  if (loaded.config.connectors.some((c) => c.name === connector.name)) {
    throw usageError(`a connector named "${connector.name}" already exists`, 'Pick another name (lower-case letters, digits and dashes).');
  }
  const n = loaded.config.connectors.length;
  const edited = editConfig(loaded, readText(loaded), (doc) => setIn(doc, ['connectors', n], connector));
  if (connector.type !== 'ldif') {
    if (!secret) throw usageError(`no bind password given for "${connector.name}"`, 'Pass --source-password-env VAR or --password-stdin.');
    await withCtx(edited.loaded, (ctx) => saveCredential(ctx, connector.name, secret, tester, edited.loaded));
  } else {
    // An LDIF file has no secret: its test reads the file.
    await tester(edited.loaded, connector.name, '');
  }
  writeFileAtomic(loaded.file, edited.text);
  return {
    task: 'add-source',
    changed: true,
    connector: connector.name,
    configWritten: true,
    ...(connector.type !== 'ldif' ? { credentialSaved: connector.name } : {}),
    takesEffect: YAML_TAKES_EFFECT,
  };
}

/** The configuration as loaded (with defaults) and the credentials' metadata: never a secret. */
export async function viewConfig(loaded: LoadedConfig): Promise<{ file: string; config: unknown; credentials: unknown[]; text: string }> {
  const credentials = await withCtx(loaded, async (ctx) => ctx.credentials.list());
  return { file: loaded.file, config: loaded.config, credentials, text: readText(loaded) };
}
