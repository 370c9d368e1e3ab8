/**
 * `idsync credentials set|test|list|delete`: the connectors' secrets, kept in the encrypted
 * credential store (docs/credentials.md). A new secret is tested against its directory before it is
 * saved; once saved, every component of a running service uses it on its next call.
 */
import { AGENT_TOKEN_CREDENTIAL } from '../../passwords/handlers.js';
import type { Readable } from 'node:stream';
import type { Command } from 'commander';
import { configPathFrom, loadConfig, type LoadedConfig } from '../../config/load.js';
import { IdsyncError, toIdsyncError } from '../../core/errors.js';
import { CredentialStore, credentialMigrations, openCredentialStore } from '../../credentials/store.js';
import { updateCredential } from '../../credentials/update.js';
import { openContext, type EngineContext } from '../../engine/context.js';
import { openStore, type Database } from '../../store/database.js';
import { storeLocation } from '../../config/store.js';
import { exitCodeFor, EXIT } from '../exit-codes.js';
import { printJson, println, table } from '../output.js';
import { readLines } from '../../passwords/input.js';

/** Name under which the cloud connector's credential is stored (as in connectors/registry.ts). */
const CLOUD = 'cloud';

/** What the commands need from the connectors; injectable for tests, loaded lazily otherwise. */
export interface CredentialsCommandDeps {
  /**
   * Throws an IdsyncError when the directory refuses `secret` (nothing is saved). With the store, a
   * cloud secret already refused is not presented again, and the cloud's answer is recorded.
   */
  testConnectorSecret(loaded: LoadedConfig, name: string, secret: string, store?: CredentialStore): Promise<void>;
  /** Tests the stored secret and records the outcome in the store. */
  testConnector(loaded: LoadedConfig, name: string, store: CredentialStore): Promise<void>;
  /** Where a piped secret is read from (default: process.stdin). */
  stdin?: Readable;
}

const defaultDeps: CredentialsCommandDeps = {
  // Imported on use: listing credentials should not load LDAP and HTTP clients.
  async testConnectorSecret(loaded, name, secret, store) {
    const registry = await import('../../connectors/registry.js');
    return registry.testConnectorSecret(loaded, name, secret, store);
  },
  async testConnector(loaded, name, store) {
    const registry = await import('../../connectors/registry.js');
    return registry.testConnector(loaded, name, store);
  },
};

interface Context {
  loaded: LoadedConfig;
  db: Database;
  store: CredentialStore;
}

/** The shortest agent token accepted (`openssl rand -base64 32` gives 44 characters). */
const MIN_AGENT_TOKEN_CHARS = 24;

function globalConfig(cmd: Command): string | undefined {
  return (cmd.optsWithGlobals() as { config?: string }).config;
}

function loadFor(cmd: Command): LoadedConfig {
  return loadConfig(configPathFrom(globalConfig(cmd)));
}

/**
 * For the commands that only read or delete (test, list, delete): they never write a key file. (A
 * `credentials list` run without the service's $IDSYNC_SECRET_KEY wrote a new secret.key, and the
 * next `credentials set` encrypted with it: the service could read no secret any more.)
 */
async function withStore<T>(loaded: LoadedConfig, fn: (ctx: Context) => Promise<T>): Promise<T> {
  const db = openStore(storeLocation(loaded), [...credentialMigrations]);
  try {
    const store = openCredentialStore(db, loaded.dataDir, process.env, { create: false });
    return await fn({ loaded, db, store });
  } finally {
    db.close();
  }
}

/**
 * Opens the engine context (database, store, event log with the configured sinks): for commands
 * that change a credential and say so in the event log, as the wizard does.
 */
async function withContext<T>(loaded: LoadedConfig, fn: (ctx: EngineContext) => Promise<T>): Promise<T> {
  const ctx = openContext(loaded);
  try {
    return await fn(ctx);
  } finally {
    ctx.close();
  }
}

/** Connectors that authenticate with a secret: every configured AD/LDAP connector, and the cloud. */
export function connectorsWithSecrets(loaded: LoadedConfig): string[] {
  return [...loaded.config.connectors.filter((c) => c.type !== 'ldif').map((c) => c.name), CLOUD];
}

function assertKnownConnector(loaded: LoadedConfig, name: string): void {
  if (name === CLOUD || name === AGENT_TOKEN_CREDENTIAL) return;
  const cfg = loaded.config.connectors.find((c) => c.name === name);
  if (!cfg) {
    throw new IdsyncError('CONFIG_INVALID', `no connector named "${name}" in ${loaded.file}`, {
      hint: `Known connectors with a credential: ${connectorsWithSecrets(loaded).join(', ')}.`,
      details: { connector: name },
    });
  }
  if (cfg.type === 'ldif') {
    throw new IdsyncError('CONFIG_INVALID', `connector "${name}" reads an LDIF file and has no credential`, {
      hint: `Known connectors with a credential: ${connectorsWithSecrets(loaded).join(', ')}.`,
      details: { connector: name },
    });
  }
}

/** Hidden prompt on a terminal, otherwise the first line of standard input. */
async function readSecret(name: string, stdin: Readable): Promise<string> {
  if ((stdin as Readable & { isTTY?: boolean }).isTTY) {
    const prompts = await import('@clack/prompts');
    const value = await prompts.password({ message: `Secret for connector "${name}"`, mask: '*' });
    if (prompts.isCancel(value)) {
      throw new IdsyncError('CREDENTIAL_MISSING', 'cancelled: no credential was changed', { hint: 'Run the command again to set it.' });
    }
    return value;
  }
  for await (const item of readLines(stdin, 64 * 1024)) {
    if ('error' in item) {
      throw new IdsyncError('CREDENTIAL_INVALID', 'the secret on standard input is not UTF-8 text or is too long', {
        hint: 'Pipe the secret alone, on one line, in UTF-8.',
      });
    }
    if (item.text.length > 0) return item.text;
    break;
  }
  throw new IdsyncError('CREDENTIAL_MISSING', 'no secret on standard input (the first line is empty)', {
    hint: `Pipe it in, e.g. \`printf '%s\\n' "$SECRET" | idsync credentials set ${name}\`, or run the command on a terminal to be prompted.`,
  });
}

export function registerCredentialsCommands(program: Command, overrides: Partial<CredentialsCommandDeps> = {}): void {
  const deps: CredentialsCommandDeps = { ...defaultDeps, ...overrides };
  const credentials = program
    .command('credentials')
    .description('Manage the connectors\' credentials (encrypted; a change takes effect without a restart)');

  credentials
    .command('set')
    .description('save a connector\'s secret, after testing it against its directory ("cloud" for the cloud directory)')
    .argument('<connector>', 'connector name from the configuration, or "cloud"')
    .option('--no-validate', 'save without testing it first (e.g. when the directory is unreachable)')
    .option('--json', 'print the result as JSON')
    .addHelpText(
      'after',
      '\nThe secret is asked for on a terminal (hidden), or read from the first line of standard input:\n  printf \'%s\\n\' "$SECRET" | idsync credentials set corp-ad\n' +
        '\nWrites event 6201 when the credential is saved, 6202 when its directory refused it (the working one is kept).\n' +
        'A cloud secret the cloud already refused is not presented again until it changes (cloud.refusedCredentialRecheck).',
    )
    .action(async (name: string, opts: { validate: boolean; json?: boolean }, cmd: Command) => {
      const loaded = loadFor(cmd);
      assertKnownConnector(loaded, name);
      const secret = await readSecret(name, deps.stdin ?? process.stdin);
      // The agent token is the whole of the agent's authentication, and nothing tests it here.
      if (name === AGENT_TOKEN_CREDENTIAL && secret.length < MIN_AGENT_TOKEN_CHARS) {
        throw new IdsyncError('CREDENTIAL_INVALID', `the agent token is shorter than ${MIN_AGENT_TOKEN_CHARS} characters`, {
          hint: 'Use a random token, e.g. `openssl rand -base64 32`, and give the agent the same one (--token-file).',
        });
      }
      const validated = opts.validate && name !== AGENT_TOKEN_CREDENTIAL;
      await withContext(loaded, async (ctx) => {
        const store = ctx.credentials;
        // The agent token is a shared secret the service checks itself: there is no directory to ask.
        // The same function as the console's form (credentials/update.ts): events 6201 / 6202.
        await updateCredential(store, ctx.events, name, secret, { validate: validated, test: (s) => deps.testConnectorSecret(loaded, name, s, store) });
        const info = store.info(name);
        if (opts.json) {
          printJson({ connector: name, saved: true, validated, changedAt: info?.changedAt ?? null });
        } else {
          println(
            validated
              ? `Credential for "${name}" verified against its directory and saved.`
              : name === AGENT_TOKEN_CREDENTIAL
                ? 'Agent token saved (the service checks each agent request against it).'
                : `Credential for "${name}" saved (not tested; run \`idsync credentials test ${name}\`).`,
          );
          println('Every component uses it from its next call; no restart is needed.');
        }
      });
    });

  credentials
    .command('test')
    .description('test the stored credential of one connector, or of every connector that has one')
    .argument('[connector]', 'connector name, or "cloud"; default: all')
    .option('--json', 'print the results as JSON')
    .action(async (name: string | undefined, opts: { json?: boolean }, cmd: Command) => {
      await withStore(loadFor(cmd), async ({ loaded, store }) => {
        if (name !== undefined) assertKnownConnector(loaded, name);
        const names = name !== undefined ? [name] : connectorsWithSecrets(loaded);
        const results: { connector: string; ok: boolean; code?: string; message?: string; hint?: string }[] = [];
        for (const n of names) {
          try {
            await deps.testConnector(loaded, n, store);
            results.push({ connector: n, ok: true });
          } catch (err) {
            const e = toIdsyncError(err);
            results.push({ connector: n, ok: false, code: e.code, message: e.message, ...(e.hint ? { hint: e.hint } : {}) });
          }
        }
        const firstFailure = results.find((r) => !r.ok);
        if (opts.json) {
          printJson({ ok: !firstFailure, results });
        } else {
          for (const r of results) {
            println(r.ok ? `ok      ${r.connector}` : `FAILED  ${r.connector}: [${r.code}] ${r.message}`);
            if (!r.ok && r.hint) println(`        fix: ${r.hint}`);
          }
        }
        if (firstFailure) process.exitCode = exitCodeFor(firstFailure.code as IdsyncError['code']);
      });
    });

  credentials
    .command('list')
    .description('show which connectors have a credential, when it changed and how its last test went (never the secrets)')
    .option('--json', 'print as JSON')
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      await withStore(loadFor(cmd), async ({ loaded, store }) => {
        const stored = new Map(store.list().map((c) => [c.name, c]));
        // The agent token is configured by being set (the service checks it; no connector names it).
        const configured = [...connectorsWithSecrets(loaded), ...(stored.has(AGENT_TOKEN_CREDENTIAL) ? [AGENT_TOKEN_CREDENTIAL] : [])];
        const names = [...configured, ...[...stored.keys()].filter((n) => !configured.includes(n)).sort()];
        const rows = names.map((n) => {
          const c = stored.get(n);
          return {
            connector: n,
            configured: configured.includes(n),
            set: c !== undefined,
            changedAt: c?.changedAt ?? null,
            lastTestAt: c?.lastTestAt ?? null,
            lastTestOk: c?.lastTestOk ?? null,
            lastErrorCode: c?.lastErrorCode ?? null,
          };
        });
        if (opts.json) {
          printJson({ credentials: rows });
          return;
        }
        println(
          table(
            rows.map((r) => ({
              connector: r.configured ? r.connector : `${r.connector} (not configured)`,
              set: r.set ? 'yes' : 'NO',
              changed: r.changedAt ?? '',
              'last test': r.lastTestAt ?? '',
              result: r.lastTestOk === null ? '' : r.lastTestOk ? 'ok' : `failed ${r.lastErrorCode ?? ''}`.trim(),
            })),
            ['connector', 'set', 'changed', 'last test', 'result'],
          ),
        );
        const missing = rows.filter((r) => r.configured && !r.set).map((r) => r.connector);
        if (missing.length > 0) println(`\nNo credential yet for: ${missing.join(', ')} — set it with \`idsync credentials set NAME\`.`);
      });
    });

  credentials
    .command('delete')
    .description('remove a connector\'s stored credential')
    .argument('<connector>', 'connector name, or "cloud"')
    .option('--json', 'print the result as JSON')
    .action(async (name: string, opts: { json?: boolean }, cmd: Command) => {
      await withStore(loadFor(cmd), async ({ store }) => {
        const deleted = store.delete(name);
        if (opts.json) printJson({ connector: name, deleted });
        else println(deleted ? `Credential for "${name}" removed.` : `No credential was stored for "${name}".`);
        if (!deleted) process.exitCode = EXIT.FAILED;
      });
    });
}
