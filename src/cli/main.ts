#!/usr/bin/env node
/**
 * The `idsync` command line: `idsync <noun> <verb>`. Each command group lives in
 * src/cli/commands/<group>.ts and registers itself here; commands are thin (parse, call the
 * library, print).
 */
import { Command, CommanderError } from 'commander';
import { commands } from './commands/index.js';
import { reportError } from './output.js';
import { EXIT } from './exit-codes.js';

export function buildProgram(): Command {
  const program = new Command('idsync')
    .description('Hybrid identity synchronization: on-premises directories to a cloud directory, with password hash sync.')
    .version(process.env.npm_package_version ?? '0.1.0')
    .option('-c, --config <file>', 'configuration file (default: $IDSYNC_CONFIG or ./idsync.yaml)')
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();
  for (const register of commands) register(program);
  return program;
}

export async function main(argv = process.argv): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
    return typeof process.exitCode === 'number' ? process.exitCode : EXIT.OK;
  } catch (err) {
    if (err instanceof CommanderError) {
      // help and version "errors" are successes
      return err.exitCode === 0 ? EXIT.OK : EXIT.USAGE;
    }
    const json = argv.includes('--json');
    return reportError(err, json);
  }
}
