#!/usr/bin/env node
/**
 * The `idsync` command line: `idsync <noun> <verb>`. Each command group lives in
 * src/cli/commands/<group>.ts and registers itself here; commands are thin (parse, call the
 * library, print).
 */
import { readFileSync } from 'node:fs';
import { Command, CommanderError } from 'commander';
import { commands } from './commands/index.js';
import { reportError } from './output.js';
import { SYSTEM_CONFIG_FILE } from '../config/load.js';
import { EXIT } from './exit-codes.js';

/** package.json's version: two folders up from this module, in src/cli/ and in dist/cli/ alike. */
export function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

export function buildProgram(): Command {
  const program = new Command('idsync')
    .description('Hybrid identity synchronization: on-premises directories to a cloud directory, with password hash sync.')
    .version(packageVersion())
    .option('-c, --config <file>', `configuration file (default: $IDSYNC_CONFIG, else ./idsync.yaml, else ${SYSTEM_CONFIG_FILE})`)
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
