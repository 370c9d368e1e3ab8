/**
 * A stand-in for bin/idsync.js until `init` and `configure` are wired into src/cli/commands/index.ts:
 * the same root program (--config, exit codes, error printing) with only the wizard's commands.
 *   node --import tsx test/wizard/cli-runner.ts [--config FILE] init|configure ...
 */
import { Command, CommanderError } from 'commander';
import { registerConfigureCommands } from '../../src/cli/commands/configure.js';
import { registerInitCommands } from '../../src/cli/commands/init.js';
import { reportError } from '../../src/cli/output.js';

const program = new Command('idsync').option('-c, --config <file>', 'configuration file').exitOverride();
registerInitCommands(program);
registerConfigureCommands(program);
let code = 0;
try {
  await program.parseAsync(process.argv);
  code = typeof process.exitCode === 'number' ? process.exitCode : 0;
} catch (err) {
  code = err instanceof CommanderError ? (err.exitCode === 0 ? 0 : 2) : reportError(err, process.argv.includes('--json'));
}
process.exitCode = code;
