/**
 * `idsync console set-password|status`: the sync console's own account. The console is served by
 * `idsync serve` at /console (loopback, or any address under TLS); this sets who may sign in.
 * Only an scrypt hash of the password is stored (<dataDir>/console-account.json, 0600).
 */
import type { Readable } from 'node:stream';
import { mkdirSync } from 'node:fs';
import type { Command } from 'commander';
import { consoleAccountPath, MIN_CONSOLE_PASSWORD_LENGTH, readConsoleAccount, writeConsoleAccount } from '../../console/account.js';
import { IdsyncError } from '../../core/errors.js';
import { EVENTS } from '../../events/catalog.js';
import { loadFor, withContext } from '../context.js';
import { printJson, println } from '../output.js';
import { readLines } from '../../passwords/input.js';
import type { RegisterCommand } from '../context.js';

/** Hidden prompt (twice) on a terminal, otherwise the first line of standard input. */
async function readPassword(stdin: Readable): Promise<string> {
  if ((stdin as Readable & { isTTY?: boolean }).isTTY) {
    const prompts = await import('@clack/prompts');
    const first = await prompts.password({ message: `Console password (at least ${MIN_CONSOLE_PASSWORD_LENGTH} characters)`, mask: '*' });
    if (prompts.isCancel(first)) throw new IdsyncError('CONFIG_INVALID', 'cancelled: the console account was not changed', { hint: 'Run the command again.' });
    const again = await prompts.password({ message: 'Again', mask: '*' });
    if (prompts.isCancel(again) || again !== first) throw new IdsyncError('CONFIG_INVALID', 'the two passwords differ: the console account was not changed', { hint: 'Run the command again.' });
    return first;
  }
  for await (const item of readLines(stdin, 4096)) {
    if ('error' in item) throw new IdsyncError('CONFIG_INVALID', 'the password on standard input is not UTF-8 text or is too long', { hint: 'Pipe the password alone, on one line.' });
    if (item.text.length > 0) return item.text;
    break;
  }
  throw new IdsyncError('CONFIG_INVALID', 'no password on standard input (the first line is empty)', {
    hint: "Pipe it in, e.g. `printf '%s\\n' \"$PASSWORD\" | idsync console set-password`, or run the command on a terminal to be prompted.",
  });
}

export const registerConsoleCommands: RegisterCommand = (program) => {
  const group = program.command('console').description('The web console of `idsync serve` (at /console): its sign-in account');
  group
    .command('set-password')
    .description('Create or replace the console account (password from a hidden prompt or the first line of stdin; only its hash is stored)')
    .option('--user <name>', 'the user name to sign in with', 'admin')
    .action(async (opts: { user: string }, cmd: Command) => {
      const loaded = loadFor(cmd);
      const password = await readPassword(process.stdin);
      mkdirSync(loaded.dataDir, { recursive: true, mode: 0o700 });
      const account = await writeConsoleAccount(loaded.dataDir, opts.user, password);
      // A running service re-reads the file at each sign-in; the event records who was set.
      await withContext(cmd, async (ctx) => {
        ctx.events.emit(EVENTS.CONSOLE_ACCOUNT_SET, { user: account.username });
      });
      println(`console account "${account.username}" saved (${consoleAccountPath(loaded.dataDir)}); sign in at <service URL>/console/`);
    });
  group
    .command('status')
    .description('Show the console account (name and when it was set; never the hash)')
    .option('--json', 'machine-readable output')
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      const loaded = loadFor(cmd);
      const a = readConsoleAccount(loaded.dataDir);
      const out = a ? { configured: true, username: a.username, changedAt: a.changedAt } : { configured: false };
      if (opts.json) printJson(out);
      else println(a ? `console account "${a.username}", set ${a.changedAt}` : 'no console account yet: run `idsync console set-password`');
    });
};
