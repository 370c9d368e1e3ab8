import type { Command } from 'commander';
import { runCycle } from '../../engine/cycle.js';
import { syncOneObject, type ObjectTrace } from '../../engine/single-object.js';
import type { PlannedExport } from '../../engine/export.js';
import type { RunRecord } from '../../engine/runs.js';
import { withContext } from '../context.js';
import { EXIT, exitCodeFor } from '../exit-codes.js';
import { endProgress, escapeControl, printJson, println, table, throttledProgress } from '../output.js';
import type { RegisterCommand } from '../context.js';

export const registerSyncCommands: RegisterCommand = (program) => {
  program
    .command('sync')
    .description('Run one sync cycle now: import from every source, sync the metaverse, export to the cloud')
    .option('--full', 'full import and full sync: re-read and re-evaluate every object, not only changes')
    .option('--preview', 'import and sync, then show what the export would do (adds, updates with before/after, deletes) without writing to the cloud')
    .option('--object <dn>', 'sync one object through every step (import, sync, export) and show what each step did')
    .option('--allow-deletes', 'let this export through even if it exceeds the deletion threshold')
    .option('--json', 'print the run record as JSON')
    .addHelpText(
      'after',
      `
Exit codes: 0 success, 1 the run had errors or failed (also: the deletion threshold stopped the
export), 2 bad usage, configuration or input data (a malformed LDIF file, checked whole before
anything is staged, or an invalid --object DN; also CONNECTOR_NOT_CONFIGURED: the store holds a
connector the configuration no longer names, see \`idsync connectors --help\`), 3 a directory or
the cloud could not be reached or refused the credential, 4 another run is in progress. Every
error code and its exit code: docs/errors.md. Control characters in DNs and values are printed escaped (\\x1b).

Examples:
  idsync sync                  # one cycle with the configuration in ./idsync.yaml
  idsync sync --preview        # what would change in the cloud, attribute by attribute
  idsync sync --object "CN=Ann Smith,OU=Staff,DC=corp,DC=example,DC=com"   # why is Ann (not) in the cloud?
  idsync sync --json | jq .steps
  idsync -c /etc/idsync/idsync.yaml sync --full`,
    )
    .action(async (opts: { full?: boolean; allowDeletes?: boolean; preview?: boolean; object?: string; json?: boolean }, cmd: Command) => {
      if (opts.object !== undefined) {
        const dn = opts.object;
        const trace = await withContext(cmd, (ctx) => syncOneObject(ctx, dn, { allowDeletes: opts.allowDeletes }));
        if (opts.json) printJson(trace);
        else printTrace(trace);
        process.exitCode = trace.export.result === 'error' ? EXIT.FAILED : EXIT.OK;
        return;
      }
      const run = await withContext(cmd, (ctx) =>
        runCycle(ctx, {
          full: opts.full,
          allowDeletes: opts.allowDeletes,
          preview: opts.preview,
          onProgress: opts.json ? undefined : throttledProgress(),
        }),
      );
      endProgress();
      if (opts.json) printJson(run);
      else {
        printRun(run);
        if (run.plan) printPlan(run.plan, opts.preview === true);
      }
      process.exitCode = run.status === 'success' ? EXIT.OK : exitForRun(run);
    });
};

/** A failed run ends like any command that stops on its error: the one mapping of exit-codes.ts. */
function exitForRun(run: RunRecord): number {
  return run.error ? exitCodeFor(run.error.code) : EXIT.FAILED;
}

function printTrace(t: ObjectTrace): void {
  const show = (v: unknown) => (v === null || v === undefined ? '(none)' : typeof v === 'string' ? escapeControl(v) : JSON.stringify(v));
  const changes = (d: ObjectTrace['import']['changes']) => {
    for (const c of d) println(`      ${c.attribute}: ${show(c.before)} → ${show(c.after)}`);
  };
  println(`${escapeControl(t.dn)} (run ${t.runId})`);
  if (t.why) println(`  why     ${escapeControl(t.why.message)}`);
  println(`  import  ${t.import.result}${t.import.connector ? ` from ${t.import.connector}` : ''}`);
  changes(t.import.changes);
  println(`  sync    ${t.sync.result}${t.sync.metaverseId ? ` (metaverse object ${t.sync.metaverseId})` : ''}`);
  changes(t.sync.changes);
  println(`  export  ${t.export.result}${t.export.cloudId ? ` (cloud id ${t.export.cloudId})` : ''}${t.export.error ? `: ${escapeControl(t.export.error)}` : ''}`);
  changes(t.export.changes);
}

export function printPlan(plan: PlannedExport[], preview: boolean): void {
  println(`\n${preview ? 'Preview' : 'Staging mode'}: nothing was written to the cloud directory. Pending exports: ${plan.length}`);
  const show = (v: unknown) => (v === null || v === undefined ? '(none)' : typeof v === 'string' ? escapeControl(v) : JSON.stringify(v));
  for (const p of plan) {
    const sign = p.op === 'add' ? '+' : p.op === 'delete' || p.op === 'disable' ? '-' : '~';
    println(`${sign} ${p.op} ${p.objectType} ${escapeControl(p.object)}${p.cloudId ? ` (cloud id ${p.cloudId})` : ''}`);
    if (p.op === 'update' || p.op === 'disable') for (const c of p.changes) println(`    ${c.attribute}: ${show(c.before)} → ${show(c.after)}`);
  }
}

export function printRun(run: RunRecord): void {
  const seconds = run.endedAt ? ((Date.parse(run.endedAt) - Date.parse(run.startedAt)) / 1000).toFixed(1) : '?';
  println(`run ${run.id} (${run.profile}): ${run.status} in ${seconds}s`);
  println(
    table(
      run.steps.map((s) => ({ ...s })),
      ['connector', 'step', 'profile', 'status', 'adds', 'updates', 'deletes', 'unchanged', 'errors'],
    ),
  );
  if (run.errors.length > 0) {
    println(`\nerrors (${run.errorCount}${run.errorCount > run.errors.length ? `, first ${run.errors.length} shown` : ''}):`);
    for (const e of run.errors) println(`  ${e.connector}/${e.step} [${e.code}] ${e.object ? `${escapeControl(e.object)}: ` : ''}${escapeControl(e.message)}`);
  }
}
