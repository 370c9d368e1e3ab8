import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline/promises';
import type { Command } from 'commander';
import { IdsyncError } from '../../core/errors.js';
import { forgetConnector, listConnectors, planForget, renameConnector, type ForgetPlan } from '../../engine/connector-identity.js';
import { daemonState } from '../../service/daemon.js';
import { renameConnectorInConfig, writeFileAtomic } from '../../wizard/config-file.js';
import { loadFor, withContext } from '../context.js';
import type { RegisterCommand } from '../context.js';
import { printJson, println, table } from '../output.js';

export const registerConnectorsCommands: RegisterCommand = (program) => {
  const group = program
    .command('connectors')
    .description('Source connectors as the configuration and the store know them: list, rename, forget')
    .addHelpText(
      'after',
      `
A source connector's identity is its name in idsync.yaml: its connector space, watermarks, password
state, credential and run history are kept under that name. A cycle refuses to run
(CONNECTOR_NOT_CONFIGURED, exit 2) while the store holds objects of a connector the configuration
no longer names: rename it or forget it with the commands below. docs/sync-rules.md ("Renaming or
removing a connector") explains both.`,
    );

  group
    .command('list')
    .description('The configured source connectors and those only the store knows, with their object counts')
    .option('--json', 'machine-readable output')
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      const list = await withContext(cmd, async (ctx) => listConnectors(ctx), { readOnly: true });
      if (opts.json) {
        printJson(list);
        return;
      }
      if (list.length === 0) {
        println('no source connectors: add one with `idsync configure --task add-source`');
        return;
      }
      println(
        table(
          list.map((c) => ({
            name: c.name,
            type: c.type ?? '-',
            configured: c.configured ? 'yes' : 'NO (store only)',
            objects: c.objects,
            users: c.users,
            groups: c.groups,
            passwords: c.passwordState,
            credential: c.credential ? 'yes' : 'no',
          })),
          ['name', 'type', 'configured', 'objects', 'users', 'groups', 'passwords', 'credential'],
        ),
      );
      const orphans = list.filter((c) => !c.configured);
      if (orphans.length > 0) {
        println(`\n${orphans.map((c) => c.name).join(', ')}: not in the configuration. Renamed? \`idsync connectors rename OLD NEW\`. Removed on purpose? \`idsync connectors forget OLD\`.`);
      }
    });

  group
    .command('rename')
    .description('Rename a source connector: its store rows in one transaction, and its name in idsync.yaml (comments kept)')
    .argument('<old>', 'the name the store knows')
    .argument('<new>', 'the new name (lower-case letters, digits and dashes)')
    .option('--json', 'machine-readable output')
    .addHelpText(
      'after',
      `
Moves everything kept under OLD to NEW in one store transaction: connector space, watermarks, run
history, password state (so people keep signing in and unchanged passwords are not sent again) and
the credential (re-encrypted: the name is bound into its encryption). Then rewrites the connector's
name: in idsync.yaml, and the rules that name it. If idsync.yaml already names NEW (you edited it
first), only the store moves. The cloud sees no change: the next cycle adds and deletes nothing.

Refused, with nothing changed: OLD unknown to the store (CONNECTOR_UNKNOWN), NEW already holding
state or OLD and NEW both configured (CONNECTOR_NAME_IN_USE), NEW not a valid name (CONFIG_INVALID),
the service running or a cycle in progress (RUN_IN_PROGRESS, exit 4: stop it with
\`idsync service stop\`, rename, start it again).

Examples:
  idsync connectors rename ad corp
  idsync connectors rename ad corp --json`,
    )
    .action(async (from: string, to: string, opts: { json?: boolean }, cmd: Command) => {
      const loaded = loadFor(cmd);
      // The service keeps the configuration it loaded and may start a cycle at any time: the rename
      // waits until it is stopped (a cycle of another process in progress is refused in the store too).
      const service = daemonState(loaded.dataDir);
      if (service.running) {
        throw new IdsyncError('RUN_IN_PROGRESS', `the idsync service is running (pid ${service.info!.pid}); nothing was changed`, {
          hint: `Stop it (\`idsync service stop\`), run \`idsync connectors rename ${from} ${to}\`, then start it again.`,
        });
      }
      const names = loaded.config.connectors.map((c) => c.name);
      if (names.includes(from) && names.includes(to)) {
        throw new IdsyncError('CONNECTOR_NAME_IN_USE', `${loaded.file} names both "${from}" and "${to}"; nothing was changed`, {
          hint: `Remove one of them from the file first.`,
          details: { from, to, file: loaded.file },
        });
      }
      if (!names.includes(from) && !names.includes(to)) {
        throw new IdsyncError('CONFIG_INVALID', `${loaded.file} names neither "${from}" nor "${to}"; nothing was changed`, {
          hint: `Rename the connector that the file names (connectors: ${names.join(', ') || 'none'}), or forget one removed on purpose with \`idsync connectors forget ${from}\`.`,
          details: { from, to, file: loaded.file },
        });
      }
      // The file's edit is made and validated first (an invalid NEW stops here), written last.
      const edited = names.includes(from) ? renameConnectorInConfig(loaded, readFileSync(loaded.file, 'utf8'), from, to) : undefined;
      const cfg = (edited?.loaded ?? loaded).config.connectors.find((c) => c.name === to);
      const result = await withContext(cmd, async (ctx) => renameConnector(ctx, from, to, cfg ? { config: cfg } : {}));
      if (edited) {
        try {
          writeFileAtomic(loaded.file, edited.text);
        } catch (err) {
          const e = err instanceof IdsyncError ? err : new IdsyncError('CONFIG_INVALID', String(err));
          throw new IdsyncError(e.code, `the store now knows the connector as "${to}", but ${loaded.file} could not be written: ${e.message}`, {
            hint: `Change \`name: ${from}\` to \`name: ${to}\` in ${loaded.file} by hand (and in the rules that name it); nothing else is needed.`,
            cause: err,
          });
        }
      }
      const expressions = /connector\s*[=!]=/.test(edited?.text ?? '');
      if (opts.json) {
        printJson({ from, to, configRewritten: edited !== undefined, moved: result.moved, credential: result.credential });
        return;
      }
      const m = result.moved;
      println(`renamed source connector "${from}" to "${to}"`);
      println(`  store: ${m.objects} objects (${m.users} users, ${m.groups} groups), ${m.passwordState} users' password state${m.watermark ? ', the watermark' : ''}${result.credential === 'moved' ? ', the credential' : ''} and the run history moved`);
      if (result.credential === 'kept-new') println(`  credential: the one already set for "${to}" is kept; the one of "${from}" was removed`);
      println(edited ? `  ${loaded.file}: name and rules now say "${to}" (comments kept)` : `  ${loaded.file} already named "${to}": left as it is`);
      if (expressions) println(`  note: a CEL expression in the rules compares \`connector\` to a name: check that it says "${to}"`);
      println('The next cycle adds and deletes nothing in the cloud for this connector.');
    });

  group
    .command('forget')
    .description('Forget a source connector removed from idsync.yaml on purpose: the next cycle deletes from the cloud what only it contributed')
    .argument('<name>', 'the connector the store knows and the configuration no longer names')
    .option('--yes', 'do not ask for confirmation (required when standard input is not a terminal)')
    .option('--json', 'machine-readable output')
    .addHelpText(
      'after',
      `
Removes the connector's connector space, as if every object had been deleted in its source: a
metaverse object only it contributed becomes a deletion that the NEXT cycle exports, through the
deletion threshold like any deletion (a large one stops with DELETION_THRESHOLD_EXCEEDED until you
run \`idsync sync --allow-deletes\`); one other connectors contribute to is recomputed from them.
Its watermark, password state and credential are forgotten too. Says what it will do (counts)
first, then asks; --yes answers for scripts. Recorded as a run (profile forget) in \`idsync runs\`.

Examples:
  idsync connectors forget old-forest
  idsync connectors forget old-forest --yes && idsync sync --preview`,
    )
    .action(async (name: string, opts: { yes?: boolean; json?: boolean }, cmd: Command) => {
      await withContext(cmd, async (ctx) => {
        const plan = planForget(ctx, name);
        if (!opts.json) printForgetPlan(plan);
        if (!opts.yes) {
          if (!process.stdin.isTTY) {
            throw new IdsyncError('CONFIG_INVALID', 'forgetting a connector needs --yes when standard input is not a terminal; nothing was changed', {
              hint: `Review the counts above, then run \`idsync connectors forget ${name} --yes\`.`,
            });
          }
          if (!(await confirmed(name))) {
            println('nothing was changed');
            return;
          }
        }
        const result = forgetConnector(ctx, name);
        if (opts.json) {
          printJson({ ...result, connector: name });
          return;
        }
        println(`forgot source connector "${name}" (run ${result.runId}): ${result.objects} objects removed from its connector space`);
        println(`The next cycle deletes ${result.deletes} object(s) from the cloud and updates ${result.updates}; the deletion threshold applies (\`idsync sync --preview\` shows them).`);
      });
    });
};

function printForgetPlan(p: ForgetPlan): void {
  println(`connector "${p.name}" holds ${p.objects} objects (${p.users} users, ${p.groups} groups) in the store.`);
  println(`Forgetting it:`);
  println(`  - deletes from the cloud at the next cycle the ${p.onlyHere} object(s) only it contributes (under the deletion threshold)`);
  if (p.shared > 0) println(`  - recomputes ${p.shared} object(s) that other connectors contribute to (they stay)`);
  println(`  - forgets its password state (${p.passwordState} users)${p.watermark ? ', its watermark' : ''}${p.credential ? ' and its credential' : ''}`);
}

async function confirmed(name: string): Promise<boolean> {
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    const answer = await rl.question(`Type the connector name (${name}) to forget it: `);
    return answer.trim() === name;
  } finally {
    rl.close();
  }
}
