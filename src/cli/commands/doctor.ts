/**
 * `idsync doctor`: checks connectivity, TLS, credentials, the last cycle, connector state the
 * configuration no longer names, password sync, the clock,
 * certificates and disk space, and names the fix for each problem. See docs/doctor.md.
 */
import type { Command } from 'commander';
import { parseDuration } from '../../config/duration.js';
import { formatFindings, runDoctor } from '../../doctor/index.js';
import { loadFor } from '../context.js';
import { EXIT } from '../exit-codes.js';
import { printJson, println, progress, endProgress } from '../output.js';
import type { RegisterCommand } from '../context.js';

export const registerDoctorCommands: RegisterCommand = (program) => {
  program
    .command('doctor')
    .description('Troubleshoot: connectivity, TLS and certificates, credentials, last cycle, connectors the configuration no longer names, password sync heartbeat and outbox, clock, disk')
    .option('--json', 'machine-readable output: {ok, findings: [{check, target, status, eventId, message, cause, fix}]}')
    .option('--interval <duration>', 'the cycle interval to judge the last cycle\'s age by (default: the running service\'s, else sync.interval in the configuration)')
    .option('--cert-warn-days <n>', 'warn about certificates expiring within this many days', '30')
    .addHelpText(
      'after',
      `
Exit codes: 0 every check passed; 1 at least one warning or error.
Each problem names its event ID (as in \`idsync events\`), the cause and the command that fixes it.
No secret is ever printed.`,
    )
    .action(async (opts: { json?: boolean; interval?: string; certWarnDays: string }, cmd: Command) => {
      const loaded = loadFor(cmd);
      if (!opts.json) progress('checking…');
      const report = await runDoctor(loaded, {
        ...(opts.interval ? { intervalMs: parseDuration(opts.interval) } : {}),
        certWarnDays: Number.isFinite(Number(opts.certWarnDays)) ? Math.max(0, Number(opts.certWarnDays)) : 30,
      });
      if (opts.json) printJson(report);
      else {
        endProgress();
        println(formatFindings(report.findings));
      }
      process.exitCode = report.ok ? EXIT.OK : EXIT.FAILED;
    });
};
