/**
 * The interactive wizard (@clack/prompts), for administrators who know the incumbent's configuration
 * wizard: `idsync init` walks through a new installation, `idsync configure` offers tasks on an
 * existing one. Every secret is asked for hidden and tested against its directory before the wizard
 * goes on; a refusal shows the directory's reason and offers to try again or go back.
 */
import * as p from '@clack/prompts';
import type { LoadedConfig } from '../config/load.js';
import { DEFAULT_DELETION_THRESHOLD, DELETION_THRESHOLD } from '../config/schema.js';
import { toIdsyncError } from '../core/errors.js';
import { CONSOLE_USERNAME, MIN_CONSOLE_PASSWORD_LENGTH } from '../console/account.js';
import {
  assertCanCreate,
  passwordHashSyncSupported,
  renderConfigYaml,
  validateConfigText,
  type RawCloudAuth,
  type RawConfig,
  type RawSourceConnector,
} from './config-file.js';
import {
  CLOUD,
  addSource,
  currentPasswordHashSync,
  defaultDataDir,
  runInit,
  securityWarnings,
  setUpConsoleAccount,
  testSecret,
  setPasswordHashSync,
  setScope,
  updateCloudCredentials,
  updateSourceCredentials,
  viewConfig,
  type InitResult,
  type SecretTester,
  type TaskResult,
} from './operations.js';
import { defaultSourceName, parseThreshold } from './flags.js';

/** Thrown when the administrator cancels (Ctrl-C / Esc): nothing further is changed. */
export class WizardCancelled extends Error {
  constructor() {
    super('cancelled');
  }
}

async function ask<T>(prompt: Promise<T>): Promise<Exclude<T, symbol>> {
  const v = await prompt;
  if (p.isCancel(v)) throw new WizardCancelled();
  return v as Exclude<T, symbol>;
}

const NAME_RE = /^[a-z][a-z0-9-]{0,62}$/;
const required = (what: string) => (v: string | undefined) => (v && v.trim() ? undefined : `${what} is required`);

function showError(err: unknown): void {
  const e = toIdsyncError(err);
  p.log.error(e.message);
  if (e.hint) p.log.info(`Fix: ${e.hint}`);
}

/** A configuration around `connectors` and `cloud`, good enough to test one connection. */
function candidate(file: string, dataDir: string, connectors: RawSourceConnector[], cloud?: RawConfig['cloud']): LoadedConfig {
  const raw: RawConfig = { dataDir, connectors, cloud: cloud ?? { url: 'http://127.0.0.1', auth: { type: 'client_credentials', clientId: 'idsync' } } };
  return validateConfigText(renderConfigYaml(raw), file);
}

async function askDns(message: string, initial: string[]): Promise<string[]> {
  const v = await ask(
    p.text({
      message,
      placeholder: 'e.g. OU=Staff,DC=corp,DC=example,DC=com ; OU=IT,DC=corp,DC=example,DC=com',
      initialValue: initial.join(' ; '),
    }),
  );
  return (v ?? '').split(';').map((s) => s.trim()).filter(Boolean);
}

/** Asks a connector's settings (prefilled with `prev`). */
async function askSourceFields(prev: RawSourceConnector | undefined, taken: string[]): Promise<RawSourceConnector> {
  const type = await ask(
    p.select<'ad' | 'ldap' | 'ldif'>({
      message: 'Source directory type',
      initialValue: prev?.type ?? 'ad',
      options: [
        { value: 'ad', label: 'Active Directory / Samba AD' },
        { value: 'ldap', label: 'LDAP (OpenLDAP, 389 DS, ...)' },
        { value: 'ldif', label: 'LDIF file (an export, for tests and migrations)' },
      ],
    }),
  );
  const name = await ask(
    p.text({
      message: 'Connector name',
      initialValue: prev?.name ?? defaultSourceName(type),
      validate: (v) =>
        !v || !NAME_RE.test(v) ? 'lower-case letters, digits and dashes, starting with a letter' : v === CLOUD || taken.includes(v) ? `"${v}" is taken` : undefined,
    }),
  );
  if (type === 'ldif') {
    const path = await ask(p.text({ message: 'LDIF file (relative to the configuration file)', initialValue: prev?.type === 'ldif' ? prev.path : '', validate: required('the file') }));
    const include = await askDns('Subtrees to include (DNs separated by ";"; empty = everything)', prev?.scope?.include ?? []);
    return { type, name, path, scope: { include, exclude: prev?.scope?.exclude ?? [] } };
  }
  const ldapPrev = prev && prev.type !== 'ldif' ? prev : undefined;
  const url = await ask(
    p.text({
      message: 'Directory URL',
      placeholder: type === 'ad' ? 'ldaps://dc1.corp.example.com' : 'ldaps://ldap.example.com',
      initialValue: ldapPrev?.url ?? '',
      validate: (v) => (v && /^ldaps?:\/\/\S+$/.test(v) ? undefined : 'must start with ldap:// or ldaps://'),
    }),
  );
  const bindDn = await ask(
    p.text({
      message: type === 'ad' ? 'Account idsync signs in as (DN or user@domain)' : 'Bind DN idsync signs in as',
      initialValue: ldapPrev?.bindDn ?? '',
      validate: required('the account'),
    }),
  );
  const baseDn = await ask(p.text({ message: 'Base DN to read users and groups from', initialValue: ldapPrev?.baseDn ?? '', validate: required('the base DN') }));
  let startTls = false;
  if (url.startsWith('ldap://')) {
    startTls = await ask(p.confirm({ message: 'Upgrade the connection with StartTLS? (recommended: passwords cross the network)', initialValue: ldapPrev?.tls?.startTls ?? true }));
  }
  let ca: string | undefined;
  let serverName: string | undefined;
  if (url.startsWith('ldaps://') || startTls) {
    ca = (await ask(p.text({ message: 'PEM file of the CA that signed the directory\'s certificate (empty = system CAs)', initialValue: ldapPrev?.tls?.ca ?? '' }))) || undefined;
    serverName = (await ask(p.text({ message: 'Certificate name to check, if not the URL\'s host (empty = the host)', initialValue: ldapPrev?.tls?.serverName ?? '' }))) || undefined;
  }
  const include = await askDns('OUs to include (DNs separated by ";"; empty = the whole base DN)', ldapPrev?.scope?.include ?? []);
  const exclude = await askDns('OUs to exclude (DNs separated by ";"; empty = none)', ldapPrev?.scope?.exclude ?? []);
  if (type === 'ldap') {
    // Without the accesslog overlay a delta import cannot see deletions (docs/delta-import.md).
    const accesslogBase = (
      await ask(
        p.text({
          message: 'Base of the accesslog database, if the server runs the accesslog overlay (e.g. cn=accesslog; empty = none: deletions then reach the cloud only at a daily full import; set-up in docs/delta-import.md)',
          initialValue: ldapPrev?.delta?.accesslogBase ?? '',
        }),
      )
    ).trim();
    const delta = accesslogBase ? { ...ldapPrev?.delta, accesslogBase } : ldapPrev?.delta?.fullImportInterval ? { fullImportInterval: ldapPrev.delta.fullImportInterval } : undefined;
    return { type, name, url, bindDn, baseDn, tls: { ca, serverName, startTls }, scope: { include, exclude }, ...(delta ? { delta } : {}) };
  }
  return { type, name, url, bindDn, baseDn, tls: { ca, serverName, startTls }, scope: { include, exclude } };
}

/** The spinner's verdict and the menu's default for a failed check, by its real cause. */
export function failureChoice(err: unknown, what: string): { headline: string; next: 'retry' | 'edit' } {
  const e = toIdsyncError(err);
  switch (e.code) {
    case 'LDAP_TLS_FAILED':
      // The secret was never tried: typing it again cannot help, the connection settings can.
      return { headline: `TLS to ${what} failed, so the secret was not tried; nothing was saved.`, next: 'edit' };
    case 'LDAP_UNREACHABLE':
    case 'CLOUD_UNREACHABLE':
      return { headline: `Could not reach ${what}, so the secret was not tried; nothing was saved.`, next: 'edit' };
    default:
      return { headline: `${what[0]!.toUpperCase()}${what.slice(1)} refused the credential; nothing was saved.`, next: 'retry' };
  }
}

/**
 * Asks a secret and tests it with `test` until the directory accepts it. Returns the secret, or
 * 'edit' when the administrator wants to change the settings first. The menu's default follows the
 * failure: "enter the secret again" after a refusal, "change the settings" after a TLS or network
 * failure (where the secret was never tried).
 */
async function askValidatedSecret(message: string, test: (secret: string) => Promise<void>, canEdit: boolean, what = 'the directory'): Promise<string | 'edit'> {
  for (;;) {
    const secret = await ask(p.password({ message, mask: '*', validate: required('the secret') }));
    const s = p.spinner();
    s.start(`Checking it with ${what}`);
    try {
      await test(secret);
      s.stop(`${what[0]!.toUpperCase()}${what.slice(1)} accepted the credential.`);
      return secret;
    } catch (err) {
      const choice = failureChoice(err, what);
      s.error(choice.headline);
      showError(err);
      const next = await ask(
        p.select<'retry' | 'edit' | 'cancel'>({
          message: 'What now?',
          initialValue: canEdit ? choice.next : 'retry',
          options: [
            { value: 'retry', label: 'Enter the secret again' },
            ...(canEdit ? [{ value: 'edit' as const, label: choice.next === 'edit' ? 'Go back and change the connection settings (recommended)' : 'Go back and change the connection settings' }] : []),
            { value: 'cancel', label: 'Cancel (nothing is saved)' },
          ],
        }),
      );
      if (next === 'cancel') throw new WizardCancelled();
      if (next === 'edit') return 'edit';
    }
  }
}

async function askSource(file: string, dataDir: string, taken: string[], tester: SecretTester): Promise<{ connector: RawSourceConnector; secret?: string }> {
  let connector: RawSourceConnector | undefined;
  for (;;) {
    connector = await askSourceFields(connector, taken);
    const c = connector;
    let loaded: LoadedConfig;
    try {
      loaded = candidate(file, dataDir, [c]);
    } catch (err) {
      showError(err);
      continue;
    }
    if (c.type === 'ldif') {
      try {
        await tester(loaded, c.name, '');
        return { connector: c };
      } catch (err) {
        showError(err);
        continue;
      }
    }
    const secret = await askValidatedSecret(`Password of ${c.bindDn} (hidden)`, (s) => testSecret(loaded, c.name, s, tester), true);
    if (secret !== 'edit') return { connector: c, secret };
  }
}

async function askCloudAuth(prev?: RawCloudAuth): Promise<RawCloudAuth> {
  const type = await ask(
    p.select<'client_credentials' | 'password'>({
      message: 'How does idsync sign in to the cloud directory?',
      initialValue: prev?.type ?? 'client_credentials',
      options: [
        { value: 'client_credentials', label: 'OAuth client (client id + client secret)', hint: 'recommended' },
        { value: 'password', label: 'Sync account (user name + password)' },
      ],
    }),
  );
  if (type === 'client_credentials') {
    const clientId = await ask(p.text({ message: 'Client id', initialValue: prev?.type === 'client_credentials' ? prev.clientId : 'idsync', validate: required('the client id') }));
    return { type, clientId };
  }
  const username = await ask(p.text({ message: 'Sync account user name', initialValue: prev?.type === 'password' ? prev.username : '', validate: required('the user name') }));
  return { type, username };
}

export async function interactiveInit(file: string, force: boolean, tester: SecretTester): Promise<InitResult | undefined> {
  p.intro('idsync init: set up a new installation');
  assertCanCreate(file, force);
  const dataDir = await ask(
    p.text({
      message: 'Where should idsync keep its data (database, encryption key)? Relative paths are relative to the configuration file.',
      initialValue: defaultDataDir(file),
      validate: required('the data directory'),
    }),
  );
  p.log.step('Source directories');
  const connectors: RawSourceConnector[] = [];
  const secrets: Record<string, string> = {};
  do {
    const { connector, secret } = await askSource(file, dataDir, connectors.map((c) => c.name), tester);
    connectors.push(connector);
    if (secret !== undefined) secrets[connector.name] = secret;
  } while (await ask(p.confirm({ message: 'Add another source directory?', initialValue: false })));

  p.log.step('Cloud directory');
  let cloud: RawConfig['cloud'] | undefined;
  for (;;) {
    const url = await ask(
      p.text({
        message: 'Cloud directory URL',
        placeholder: 'https://cloud.example.com',
        initialValue: cloud?.url ?? '',
        validate: (v) => (v && /^https?:\/\/\S+$/.test(v) ? undefined : 'must start with https:// (or http:// for a lab)'),
      }),
    );
    const auth = await askCloudAuth(cloud?.auth);
    cloud = { url, auth };
    const loaded = candidate(file, dataDir, connectors, cloud);
    const secret = await askValidatedSecret(
      auth.type === 'client_credentials' ? 'Client secret (hidden)' : 'Password (hidden)',
      (s) => testSecret(loaded, CLOUD, s, tester),
      true,
      'the cloud directory',
    );
    if (secret === 'edit') continue;
    secrets[CLOUD] = secret;
    break;
  }

  // The sync console's sign-in, as `init --console-user/--console-password-env` sets it up.
  p.log.step('Sync console');
  let consoleAccount: { username: string; password: string } | undefined;
  if (await ask(p.confirm({ message: 'Set up the sign-in of the sync console (the web console `idsync serve` serves) now?', initialValue: true }))) {
    const username = await ask(p.text({ message: 'Console user name', initialValue: 'admin', validate: (v) => (v && CONSOLE_USERNAME.test(v) ? undefined : '1 to 64 letters, digits, ".", "_", "@" or "-"') }));
    for (;;) {
      const password = await ask(
        p.password({ message: `Console password (hidden, at least ${MIN_CONSOLE_PASSWORD_LENGTH} characters)`, mask: '*', validate: (v) => (v && v.length >= MIN_CONSOLE_PASSWORD_LENGTH ? undefined : `at least ${MIN_CONSOLE_PASSWORD_LENGTH} characters`) }),
      );
      const again = await ask(p.password({ message: 'The same console password again (hidden)', mask: '*' }));
      if (again === password) {
        consoleAccount = { username, password };
        break;
      }
      p.log.error('The two passwords differ: enter the password again.');
    }
  } else {
    p.log.info('Set it up later with `idsync console set-password`.');
  }

  p.log.step('Options');
  let phs = true;
  if (passwordHashSyncSupported()) {
    phs = await ask(p.confirm({ message: 'Turn on password hash sync (people sign in to the cloud with their on-premises password)?', initialValue: true }));
  } else {
    p.log.warn('This version has no password hash sync setting in its configuration file; it is left to the service defaults.');
  }
  const threshold = await ask(
    p.text({
      message: 'Deletion threshold: stop an export that would delete more than this many cloud objects (a count, a percentage like 10%, or both: 500 or 10%)',
      initialValue: DEFAULT_DELETION_THRESHOLD,
      validate: (v) => (v && (/^\d+$/.test(v) || DELETION_THRESHOLD.test(v)) ? undefined : 'a count such as 500, a percentage such as 10%, or both: 500 or 10%'),
    }),
  );
  const config: RawConfig = { dataDir, connectors, cloud, sync: { deletionThreshold: parseThreshold(threshold) ?? DEFAULT_DELETION_THRESHOLD }, passwordHashSync: { enabled: phs } };
  p.note(renderConfigYaml(config), `${file} (no secrets)`);
  for (const w of securityWarnings(config)) p.log.warn(w);
  if (!(await ask(p.confirm({ message: `Write ${file} and save the credentials in the encrypted store?`, initialValue: true })))) throw new WizardCancelled();
  // Every secret was accepted by its directory moments ago: do not ask the directories twice.
  const accepted: SecretTester = async (loaded, name, secret) => {
    if (secrets[name] !== secret) await tester(loaded, name, secret);
  };
  const result = await runInit({ file, force, config, secrets }, accepted);
  if (consoleAccount) await setUpConsoleAccount(result, consoleAccount.username, consoleAccount.password);
  p.log.success(`Configuration written to ${result.file}; credentials saved for ${result.credentialsSaved.join(', ')}${consoleAccount ? `; the sync console's account "${consoleAccount.username}" is set up` : ''}.`);
  p.note(result.nextSteps.join('\n'), 'Next steps');
  p.outro('Setup complete.');
  return result;
}

const TASK_OPTIONS = [
  { value: 'update-cloud-credentials', label: 'Update cloud credentials' },
  { value: 'update-source-credentials', label: 'Update source directory credentials' },
  { value: 'scope', label: 'Change what is synced (OUs to include or exclude)' },
  { value: 'password-hash-sync', label: 'Turn password hash sync on or off' },
  { value: 'add-source', label: 'Add a source directory' },
  { value: 'view', label: 'View current configuration' },
  { value: 'exit', label: 'Exit' },
] as const;
type MenuValue = (typeof TASK_OPTIONS)[number]['value'];

async function pickConnector(loaded: LoadedConfig, withSecretOnly: boolean): Promise<string> {
  const list = loaded.config.connectors.filter((c) => !withSecretOnly || c.type !== 'ldif');
  if (list.length === 1) return list[0]!.name;
  return ask(p.select<string>({ message: 'Which source directory?', options: list.map((c) => ({ value: c.name, label: c.name, hint: c.type === 'ldif' ? c.path : c.url })) }));
}

async function runTask(task: Exclude<MenuValue, 'exit'>, load: () => LoadedConfig, tester: SecretTester): Promise<TaskResult | undefined> {
  const loaded = load();
  switch (task) {
    case 'update-cloud-credentials': {
      const auth = await askCloudAuth(loaded.config.cloud.auth);
      let result: TaskResult | undefined;
      // The test saves: the store validates first and keeps the working credential on a refusal.
      const secret = await askValidatedSecret(auth.type === 'client_credentials' ? 'New client secret (hidden)' : 'New password (hidden)', async (s) => {
        result = await updateCloudCredentials(loaded, s, auth, tester);
      }, false, 'the cloud directory');
      return secret === 'edit' ? undefined : result;
    }
    case 'update-source-credentials': {
      const name = await pickConnector(loaded, true);
      const cfg = loaded.config.connectors.find((c) => c.name === name)!;
      const bindDn = cfg.type === 'ldif' ? undefined : await ask(p.text({ message: 'Account idsync signs in as', initialValue: cfg.bindDn, validate: required('the account') }));
      let result: TaskResult | undefined;
      await askValidatedSecret(`New password of ${bindDn ?? name} (hidden)`, async (s) => {
        result = await updateSourceCredentials(loaded, name, s, bindDn, tester);
      }, false);
      return result;
    }
    case 'scope': {
      const name = await pickConnector(loaded, false);
      const cfg = loaded.config.connectors.find((c) => c.name === name)!;
      for (;;) {
        const include = await askDns('OUs to include (DNs separated by ";"; empty = the whole base DN)', cfg.scope.include);
        const exclude = await askDns('OUs to exclude (DNs separated by ";"; empty = none)', cfg.scope.exclude);
        try {
          return setScope(loaded, name, { include, exclude });
        } catch (err) {
          showError(err);
        }
      }
    }
    case 'password-hash-sync': {
      const now = currentPasswordHashSync(loaded);
      const enabled = await ask(p.confirm({ message: `Password hash sync is ${now ? 'ON' : 'OFF'}. Turn it ${now ? 'off' : 'on'}?`, initialValue: false }));
      if (!enabled) return undefined;
      return setPasswordHashSync(loaded, !now);
    }
    case 'add-source': {
      const { connector, secret } = await askSource(loaded.file, loaded.config.dataDir, loaded.config.connectors.map((c) => c.name), tester);
      const accepted: SecretTester = async (l, n, x) => {
        if (x !== secret) await tester(l, n, x);
      };
      return addSource(loaded, connector, secret, accepted);
    }
    case 'view': {
      const v = await viewConfig(loaded);
      p.note(v.text.trimEnd(), v.file);
      const creds = (v.credentials as { name: string; changedAt: string; lastTestOk: boolean | null }[])
        .map((c) => `${c.name}: changed ${c.changedAt}${c.lastTestOk === null ? '' : c.lastTestOk ? ', last test ok' : ', last test FAILED'}`)
        .join('\n');
      p.note(creds || '(none)', 'Credentials (encrypted store; secrets never shown)');
      return undefined;
    }
  }
}

export async function interactiveConfigure(load: () => LoadedConfig, tester: SecretTester): Promise<TaskResult[]> {
  const first = load();
  p.intro(`idsync configure: ${first.file}`);
  const done: TaskResult[] = [];
  for (;;) {
    const task = await ask(p.select<MenuValue>({ message: 'What do you want to do?', options: [...TASK_OPTIONS] }));
    if (task === 'exit') break;
    try {
      const result = await runTask(task, load, tester);
      if (result) {
        done.push(result);
        p.log.success(describeResult(result));
        p.log.info(result.takesEffect);
      }
    } catch (err) {
      if (err instanceof WizardCancelled) {
        p.log.warn('Task cancelled; nothing more was changed.');
        continue;
      }
      showError(err);
    }
  }
  p.outro(done.length ? `${done.length} change(s) saved.` : 'Nothing was changed.');
  return done;
}

export function describeResult(r: TaskResult): string {
  switch (r.task) {
    case 'update-cloud-credentials':
      return 'The cloud directory accepted the new credential; it is saved.';
    case 'update-source-credentials':
      return `The directory accepted the new credential for "${r.connector}"; it is saved.`;
    case 'scope':
      return `Scope of "${r.connector}" saved${r.changed ? '' : ' (unchanged)'}.`;
    case 'password-hash-sync':
      return `Password hash sync is now ${r.enabled ? 'ON' : 'OFF'}.`;
    case 'add-source':
      return `Source directory "${r.connector}" added${r.credentialSaved ? ' and its credential saved' : ''}.`;
    case 'view':
      return 'Configuration shown.';
  }
}
