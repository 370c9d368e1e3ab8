/**
 * `idsync configure`: changes an existing installation — tasks in a menu on a terminal, or one task
 * with `--task` for automation (docs/wizard.md). Secrets are tested against their directory before
 * they are saved (a refusal keeps the working one, exit code 3); YAML changes are validated and
 * written atomically.
 */
import type { Command } from 'commander';
import { IdsyncError } from '../../core/errors.js';
import { describeResult, interactiveConfigure, WizardCancelled } from '../../wizard/interactive.js';
import { addSourceOptions, cloudAuthFrom, collect, sourceFromFlags, sourceSecretFromFlags, type SourceFlags } from '../../wizard/flags.js';
import {
  TASKS,
  addSource,
  liveTest,
  secretFromEnv,
  secretFromStdin,
  setPasswordHashSync,
  setScope,
  updateCloudCredentials,
  updateSourceCredentials,
  usageError,
  viewConfig,
  type Task,
  type TaskResult,
} from '../../wizard/operations.js';
import { loadFor } from '../context.js';
import { EXIT } from '../exit-codes.js';
import { printJson, println } from '../output.js';
import type { WizardCommandDeps } from './init.js';

interface ConfigureOptions extends SourceFlags {
  task?: string;
  connector?: string;
  passwordStdin?: boolean;
  passwordEnv?: string;
  cloudClientId?: string;
  cloudUsername?: string;
  bindDn?: string;
  include?: string[];
  exclude?: string[];
  clearInclude?: boolean;
  clearExclude?: boolean;
  enable?: boolean;
  disable?: boolean;
  json?: boolean;
}

export function registerConfigureCommands(program: Command, overrides: Partial<WizardCommandDeps> = {}): void {
  const deps: WizardCommandDeps = { tester: liveTest, stdin: process.stdin, env: process.env, ...overrides };
  const cmd = program
    .command('configure')
    .description('Change an installation: credentials, what is synced, password hash sync, source directories (menu, or --task)')
    .option('--task <task>', `run one task without questions: ${TASKS.join(', ')}`)
    .option('--connector <name>', 'source connector the task applies to')
    .option('--password-stdin', 'read the new secret from the first line of standard input')
    .option('--password-env <var>', 'read the new secret from this environment variable')
    .option('--cloud-client-id <id>', 'update-cloud-credentials: switch to this OAuth client id')
    .option('--cloud-username <name>', 'update-cloud-credentials: switch to this sync account (password grant)')
    .option('--bind-dn <dn>', 'update-source-credentials: switch to this bind account')
    .option('--include <dn>', 'scope: subtree to sync; repeat for several (replaces the include list)', collect)
    .option('--exclude <dn>', 'scope: subtree to leave out; repeat for several (replaces the exclude list)', collect)
    .option('--clear-include', 'scope: sync the whole base DN again')
    .option('--clear-exclude', 'scope: exclude nothing')
    .option('--enable', 'password-hash-sync: turn it on')
    .option('--disable', 'password-hash-sync: turn it off');
  addSourceOptions(cmd)
    .option('--json', 'print the result as JSON (never secrets)')
    .addHelpText(
      'after',
      `
Examples:
  printf '%s\\n' "$SECRET" | idsync configure --task update-cloud-credentials --password-stdin
  printf '%s\\n' "$PW" | idsync configure --task update-source-credentials --connector corp-ad --password-stdin
  idsync configure --task scope --connector corp-ad --include OU=Staff,DC=corp,DC=example,DC=com
  idsync configure --task password-hash-sync --disable
  idsync configure --task view --json
Exit codes: 0 done, 2 usage (nothing changed), 3 the directory refused the secret (the working one is kept).`,
    )
    .action(async (opts: ConfigureOptions, command: Command) => {
      const load = () => loadFor(command);
      if (opts.task === undefined) {
        if (!deps.stdin.isTTY || !process.stdout.isTTY) {
          throw usageError(
            'standard input or output is not a terminal: `idsync configure` cannot show its menu',
            `For automation run one task: \`idsync configure --task TASK ...\` (tasks: ${TASKS.join(', ')}; see docs/wizard.md).`,
          );
        }
        try {
          const results = await interactiveConfigure(load, deps.tester);
          if (opts.json) printJson({ results });
        } catch (err) {
          if (!(err instanceof WizardCancelled)) throw err;
          const p = await import('@clack/prompts');
          p.cancel('Cancelled.');
          process.exitCode = EXIT.FAILED;
        }
        return;
      }
      if (!(TASKS as readonly string[]).includes(opts.task)) {
        throw usageError(`unknown task "${opts.task}"`, `Tasks: ${TASKS.join(', ')}.`);
      }
      const result = await runTask(opts.task as Task, opts, load, deps);
      if (result === undefined) return;
      if (opts.json) printJson(result);
      else {
        println(describeResult(result));
        println(result.takesEffect);
      }
    });
}

async function newSecret(opts: ConfigureOptions, deps: WizardCommandDeps, what: string): Promise<string> {
  if (opts.passwordStdin && opts.passwordEnv) throw usageError('give either --password-stdin or --password-env, not both', 'Pick one source for the secret.');
  if (opts.passwordEnv) return secretFromEnv(opts.passwordEnv, what, deps.env);
  if (opts.passwordStdin) return secretFromStdin(deps.stdin, what);
  throw usageError(`this task needs the new ${what}: pass --password-stdin (or --password-env VAR)`, `printf '%s\\n' "$SECRET" | idsync configure --task ${opts.task} ... --password-stdin`);
}

function needConnector(opts: ConfigureOptions): string {
  if (!opts.connector) throw usageError(`--task ${opts.task} needs --connector NAME`, 'Name the source connector as in the configuration file (`idsync configure --task view`).');
  return opts.connector;
}

async function runTask(task: Task, opts: ConfigureOptions, load: () => ReturnType<typeof loadFor>, deps: WizardCommandDeps): Promise<TaskResult | undefined> {
  const loaded = load();
  switch (task) {
    case 'update-cloud-credentials': {
      const auth = cloudAuthFrom(opts.cloudClientId, opts.cloudUsername);
      return updateCloudCredentials(loaded, await newSecret(opts, deps, 'cloud secret'), auth, deps.tester);
    }
    case 'update-source-credentials': {
      const name = needConnector(opts);
      return updateSourceCredentials(loaded, name, await newSecret(opts, deps, `bind password of "${name}"`), opts.bindDn, deps.tester);
    }
    case 'scope': {
      const name = needConnector(opts);
      const include = opts.clearInclude ? [] : opts.include;
      const exclude = opts.clearExclude ? [] : opts.exclude;
      if (include === undefined && exclude === undefined) {
        throw usageError('--task scope needs --include DN, --exclude DN, --clear-include or --clear-exclude', 'Each --include/--exclude list given replaces the one in the file.');
      }
      return setScope(loaded, name, { ...(include ? { include } : {}), ...(exclude ? { exclude } : {}) });
    }
    case 'password-hash-sync': {
      if (Boolean(opts.enable) === Boolean(opts.disable)) throw usageError('--task password-hash-sync needs exactly one of --enable or --disable', 'For example: --task password-hash-sync --disable.');
      return setPasswordHashSync(loaded, Boolean(opts.enable));
    }
    case 'add-source': {
      const connector = sourceFromFlags(opts);
      let secret: string | undefined;
      if (connector.type !== 'ldif') {
        secret = opts.sourcePasswordEnv ? sourceSecretFromFlags(connector, opts, deps.env) : await newSecret(opts, deps, `bind password of "${connector.name}"`);
      }
      return addSource(loaded, connector, secret, deps.tester);
    }
    case 'view': {
      const v = await viewConfig(loaded);
      if (opts.json) printJson({ file: v.file, config: v.config, credentials: v.credentials });
      else {
        println(`# ${v.file}`);
        println(v.text.trimEnd());
        println('');
        println('# credentials (encrypted store; secrets never shown)');
        for (const c of v.credentials as { name: string; changedAt: string; lastTestOk: boolean | null }[]) {
          println(`#   ${c.name}: changed ${c.changedAt}${c.lastTestOk === null ? '' : c.lastTestOk ? ', last test ok' : ', last test FAILED'}`);
        }
      }
      return undefined;
    }
  }
  throw new IdsyncError('INTERNAL', `unhandled task ${String(task)}`);
}
