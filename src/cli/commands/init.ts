/**
 * `idsync init`: sets up a new installation — the configuration file (no secrets) and the
 * encrypted credential store — interactively on a terminal, or from flags and environment
 * variables with `--non-interactive` (docs/wizard.md). Every secret is tested against its directory
 * before anything is written; a refusal writes nothing (exit code 3).
 */
import type { Command } from 'commander';
import type { Readable } from 'node:stream';
import { interactiveInit, WizardCancelled } from '../../wizard/interactive.js';
import { addSourceOptions, cloudAuthFrom, parseOnOff, parseThreshold, sourceFromFlags, sourceSecretFromFlags, type SourceFlags } from '../../wizard/flags.js';
import { CLOUD, defaultDataDir, liveTest, runInit, secretFromEnv, setUpConsoleAccount, usageError, type InitResult, type SecretTester } from '../../wizard/operations.js';
import { MIN_CONSOLE_PASSWORD_LENGTH } from '../../console/account.js';
import { configFile } from '../context.js';
import { EXIT } from '../exit-codes.js';
import { printJson, println } from '../output.js';

export interface WizardCommandDeps {
  tester: SecretTester;
  stdin: Readable & { isTTY?: boolean };
  env: NodeJS.ProcessEnv;
}

interface InitOptions extends SourceFlags {
  nonInteractive?: boolean;
  force?: boolean;
  json?: boolean;
  dataDir?: string;
  cloudUrl?: string;
  cloudClientId?: string;
  cloudUsername?: string;
  cloudCa?: string;
  cloudSecretEnv?: string;
  phs?: string;
  deletionThreshold?: string;
  consoleUser?: string;
  consolePasswordEnv?: string;
}

function printInit(r: InitResult, json: boolean): void {
  for (const w of r.warnings) process.stderr.write(`warning: ${w}\n`);
  if (json) {
    printJson(r);
    return;
  }
  println(`Configuration written to ${r.file} (no secrets in it).`);
  println(`Credentials tested and saved in the encrypted store for: ${r.credentialsSaved.join(', ')}.`);
  println(`Data directory: ${r.dataDir}`);
  println('');
  println('Next steps:');
  for (const s of r.nextSteps) println(`  ${s}`);
}

export function registerInitCommands(program: Command, overrides: Partial<WizardCommandDeps> = {}): void {
  const deps: WizardCommandDeps = { tester: liveTest, stdin: process.stdin, env: process.env, ...overrides };
  const cmd = program
    .command('init')
    .description('Set up a new installation: source directories, cloud directory, credentials (tested live), options')
    .option('--non-interactive', 'take everything from flags and environment variables (for automation)')
    .option('--force', 'replace an existing configuration file')
    .option('--data-dir <dir>', 'where idsync keeps its data (default /var/lib/idsync for a configuration in /etc, else ./idsync-data beside it; the interactive wizard proposes the same)');
  addSourceOptions(cmd)
    .option('--cloud-url <url>', 'base URL of the cloud directory')
    .option('--cloud-client-id <id>', 'OAuth client id (client_credentials)')
    .option('--cloud-username <name>', 'sync account user name (password grant), instead of a client id')
    .option('--cloud-ca <file>', 'PEM CA for an https:// cloud URL with a private CA')
    .option('--cloud-secret-env <var>', 'environment variable holding the client secret or password (never on the command line)')
    .option('--phs <on|off>', 'password hash sync (default on)')
    .option('--deletion-threshold <n>', 'stop an export that would delete more cloud objects than this: a count, a percentage, or both (default "500 or 10%")')
    .option('--console-user <name>', 'the web console\'s account (`idsync console set-password`), with --console-password-env', 'admin')
    .option('--console-password-env <var>', 'environment variable holding the web console\'s password: set up its account too (only a hash is stored)')
    .option('--json', 'print the result as JSON (never secrets)')
    .addHelpText(
      'after',
      `
On a terminal, \`idsync init\` asks its questions. For automation:
  IDSYNC_SOURCE_PASSWORD=... IDSYNC_CLOUD_SECRET=... idsync init --non-interactive \\
    --source-type ldap --source-url ldaps://ldap.example.com --source-bind-dn cn=idsync,dc=example,dc=com \\
    --source-base-dn dc=example,dc=com --source-password-env IDSYNC_SOURCE_PASSWORD \\
    --cloud-url https://cloud.example.com --cloud-client-id idsync --cloud-secret-env IDSYNC_CLOUD_SECRET
Exit codes: 0 done, 2 usage (nothing written), 3 a directory refused a credential or is unreachable (nothing written).`,
    )
    .action(async (opts: InitOptions, command: Command) => {
      const file = configFile(command);
      if (!opts.nonInteractive) {
        if (!deps.stdin.isTTY || !process.stdout.isTTY) {
          throw usageError(
            'standard input or output is not a terminal: `idsync init` cannot ask its questions',
            'For automation run `idsync init --non-interactive` with flags (see `idsync init --help` and docs/wizard.md).',
          );
        }
        try {
          const r = await interactiveInit(file, Boolean(opts.force), deps.tester);
          if (r && opts.json) printJson(r);
        } catch (err) {
          if (!(err instanceof WizardCancelled)) throw err;
          const p = await import('@clack/prompts');
          p.cancel('Cancelled: nothing was written.');
          process.exitCode = EXIT.FAILED;
        }
        return;
      }
      const source = sourceFromFlags(opts);
      const secrets: Record<string, string> = {};
      const sourceSecret = sourceSecretFromFlags(source, opts, deps.env);
      if (sourceSecret !== undefined) secrets[source.name] = sourceSecret;
      if (!opts.cloudUrl) throw usageError('missing --cloud-url', 'Give the cloud directory\'s base URL, e.g. --cloud-url https://cloud.example.com.');
      const auth = cloudAuthFrom(opts.cloudClientId, opts.cloudUsername);
      if (!auth) throw usageError('missing --cloud-client-id (or --cloud-username)', 'Give the OAuth client id idsync signs in with, e.g. --cloud-client-id idsync.');
      if (!opts.cloudSecretEnv) throw usageError('missing --cloud-secret-env', 'Put the cloud secret in an environment variable and name it: --cloud-secret-env IDSYNC_CLOUD_SECRET.');
      secrets[CLOUD] = secretFromEnv(opts.cloudSecretEnv, 'cloud secret', deps.env);
      const consolePassword = opts.consolePasswordEnv ? secretFromEnv(opts.consolePasswordEnv, 'console password', deps.env) : undefined;
      if (consolePassword !== undefined && consolePassword.length < MIN_CONSOLE_PASSWORD_LENGTH) {
        throw usageError(`the console password in ${opts.consolePasswordEnv} is too short (at least ${MIN_CONSOLE_PASSWORD_LENGTH} characters)`, 'Choose a longer one; nothing was written.');
      }
      const phs = parseOnOff(opts.phs, '--phs') ?? true;
      const threshold = parseThreshold(opts.deletionThreshold);
      const result = await runInit(
        {
          file,
          force: Boolean(opts.force),
          secrets,
          config: {
            dataDir: opts.dataDir ?? defaultDataDir(file),
            connectors: [source],
            cloud: { url: opts.cloudUrl, auth, ...(opts.cloudCa ? { ca: opts.cloudCa } : {}) },
            ...(threshold !== undefined ? { sync: { deletionThreshold: threshold } } : {}),
            passwordHashSync: { enabled: phs },
          },
        },
        deps.tester,
      );
      // The web console's own account (src/console/account.ts), as `idsync console set-password` sets it.
      if (consolePassword !== undefined) await setUpConsoleAccount(result, opts.consoleUser ?? 'admin', consolePassword);
      printInit(result, Boolean(opts.json));
    });
}
