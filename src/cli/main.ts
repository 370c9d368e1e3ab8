#!/usr/bin/env node
/**
 * The `idsync` command line: `idsync <noun> <verb>`. Each command group lives in
 * src/cli/commands/<group>.ts and registers itself here; commands are thin (parse, call the
 * library, print).
 */
import { readFileSync } from 'node:fs';
import { Command, CommanderError } from 'commander';
import { commandGroups, type CommandGroup } from './commands/index.js';
import { reportError } from './output.js';
import { SYSTEM_CONFIG_FILE } from '../config/load.js';
import { EXIT } from './exit-codes.js';

/** package.json's version: two folders up from this module, in src/cli/ and in dist/cli/ alike. */
export function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

/**
 * The program with the command groups `argv` needs (all of them without `argv`): the one its
 * top-level command names, none for a bare `--version`, all for `--help`, `help` or a command
 * that is not one (its error lists the commands).
 */
export async function buildProgram(argv?: readonly string[]): Promise<Command> {
  const program = new Command('idsync')
    .description('Hybrid identity synchronization: on-premises directories to a cloud directory, with password hash sync.')
    .version(packageVersion())
    .option('-c, --config <file>', `configuration file (default: $IDSYNC_CONFIG, else ./idsync.yaml, else ${SYSTEM_CONFIG_FILE})`)
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();
  const groups = argv ? groupsFor(argv) : commandGroups;
  for (const register of await Promise.all(groups.map((g) => g.load()))) register(program);
  return program;
}

/** The groups a command line runs (see buildProgram). */
export function groupsFor(argv: readonly string[]): readonly CommandGroup[] {
  const args = argv.slice(2);
  const flags: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === '--') break;
    if (arg === '-c' || arg === '--config') {
      i++; // its value, even one that looks like a flag (`-c --version` is a usage error, as before)
      continue;
    }
    if (arg.startsWith('-')) {
      flags.push(arg); // --config=FILE, -cFILE, --help, --version
      continue;
    }
    const group = commandGroups.find((g) => g.name === arg);
    return group ? [group] : commandGroups;
  }
  return flags.some((a) => a === '-V' || a === '--version') && !flags.some((a) => a === '-h' || a === '--help') ? [] : commandGroups;
}

/**
 * Process-wide settings of the command line, in one place:
 *  - files it creates (database, keys, event logs, configuration) are private to the owner;
 *  - a reader that goes away (`idsync runs --json | head`) ends the command quietly: EPIPE on
 *    stdout or stderr is not an error of ours, and nothing more can be printed anyway.
 */
export function setUpProcess(): void {
  process.umask(0o077);
  const quietOnEpipe = (err: NodeJS.ErrnoException): void => {
    if (err.code === 'EPIPE') process.exit(process.exitCode ?? EXIT.OK);
    throw err;
  };
  process.stdout.on('error', quietOnEpipe);
  process.stderr.on('error', quietOnEpipe);
}

export async function main(argv = process.argv): Promise<number> {
  setUpProcess();
  try {
    const program = await buildProgram(argv);
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
