import type { Command } from 'commander';
import { IdsyncError } from '../../core/errors.js';
import { RunLog } from '../../engine/runs.js';
import { withContext } from '../context.js';
import { printJson, println, table } from '../output.js';
import type { RegisterCommand } from '../context.js';
import { printRun } from './sync.js';

export const registerRunsCommands: RegisterCommand = (program) => {
  program
    .command('runs')
    .description('List sync run history (kept 7 days), or show one run with its steps and errors')
    .argument('[id]', 'show this run in detail')
    .option('-n, --limit <n>', 'how many runs to list', '20')
    .option('--json', 'machine-readable output')
    .action(async (id: string | undefined, opts: { limit: string; json?: boolean }, cmd: Command) => {
      await withContext(cmd, async (ctx) => {
        const log = new RunLog(ctx.db);
        if (id !== undefined) {
          const run = log.get(Number(id), 1000);
          if (!run) throw new IdsyncError('CONFIG_INVALID', `no run with id ${id}`, { hint: 'List runs with `idsync runs`.' });
          if (opts.json) printJson(run);
          else printRun(run);
          return;
        }
        const runs = log.list(Math.max(1, Number(opts.limit) || 20));
        if (opts.json) {
          printJson(runs);
          return;
        }
        if (runs.length === 0) {
          println('no runs yet: start one with `idsync sync`');
          return;
        }
        const total = (r: (typeof runs)[number], k: 'adds' | 'updates' | 'deletes' | 'errors') =>
          r.steps.filter((s) => s.step === 'export').reduce((n, s) => n + s[k], 0);
        println(
          table(
            runs.map((r) => ({
              id: r.id,
              profile: r.profile,
              status: r.status,
              started: r.startedAt,
              exported: `+${total(r, 'adds')} ~${total(r, 'updates')} -${total(r, 'deletes')}`,
              errors: r.errorCount,
            })),
            ['id', 'profile', 'status', 'started', 'exported', 'errors'],
          ),
        );
      }, { readOnly: true });
    });
};
