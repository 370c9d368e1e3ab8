/**
 * What `idsync init` and `idsync configure` do, without any prompt: the interactive wizard and the
 * non-interactive flags both call these. Every secret is validated against its directory before
 * anything is saved; YAML changes are validated with the schema and written atomically; secrets go
 * to the encrypted credential store only (never the YAML, never the output).
 */
import { readFileSync } from 'node:fs';
import type { Readable } from 'node:stream';
import type { LoadedConfig } from '../config/load.js';
import { IdsyncError, isIdsyncError, toIdsyncError } from '../core/errors.js';
import { openContext, type EngineContext } from '../engine/context.js';
import { EVENTS } from '../events/catalog.js';
import { isDnUnder, tryNormalizeDn } from '../ldap/dn.js';
import { readLines } from '../cli/commands/hash.js';
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

/** Refusal of a candidate secret: exit code 3, the directory's reason, never the secret. */
export function refusal(name: string, err: unknown, secret: string, saved: boolean): IdsyncError {
  const e = toIdsyncError(err);
  const scrub = (t: string) => (secret ? t.split(secret).join('[redacted]') : t);
  if (e.code === 'CREDENTIAL_INVALID' && e.details.connector === name) return e; // already worded by the store
  return new IdsyncError('CREDENTIAL_INVALID', `the credential for connector "${name}" was not accepted: ${scrub(e.message)} (${saved ? 'the saved credential is kept' : 'nothing was saved'})`, {
    hint: (e.hint ? scrub(e.hint) + ' ' : '') + 'Check the account and the secret and try again.',
    details: { connector: name, causeCode: e.code },
    cause: err,
  });
}

/** Tests a candidate secret against a candidate configuration (nothing saved either way). */
export async function testSecret(loaded: LoadedConfig, name: string, secret: string, tester: SecretTester = liveTest): Promise<void> {
  if (!secret) throw usageError(`the secret for connector "${name}" is empty`, 'Provide the password or client secret.');
  try {
    await tester(loaded, name, secret);
  } catch (err) {
    throw refusal(name, err, secret, false);
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
    const e = isIdsyncError(err) ? err : refusal(name, err, secret, ctx.credentials.has(name));
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
  nextSteps: string[];
}

/** Validates the configuration and every secret, then writes the YAML and saves the secrets. */
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
  writeFileAtomic(loaded.file, text);
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
  return {
    file: loaded.file,
    dataDir: loaded.dataDir,
    connectors: loaded.config.connectors.map((c) => c.name),
    cloud: { url: input.config.cloud.url, auth: input.config.cloud.auth },
    credentialsSaved: needing,
    passwordHashSync: { enabled: input.config.passwordHashSync?.enabled ?? true, written: passwordHashSyncSupported() },
    deletionThreshold: loaded.config.sync.deletionThreshold,
    nextSteps: nextSteps(loaded.file),
  };
}

export function nextSteps(file: string): string[] {
  const c = file === `${process.cwd()}/idsync.yaml` ? '' : ` --config ${file}`;
  return [
    `idsync${c} credentials test      # check every connection again`,
    `idsync${c} sync                  # run one sync cycle now and see what it did`,
    `idsync${c} serve                 # run the service in the foreground (or: idsync service start)`,
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
