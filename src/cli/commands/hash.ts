/**
 * `idsync hash nt|orgid|verify`: the password hash sync transform on the command line, for checks,
 * migrations and support cases. Passwords come from standard input, one per line, and are never
 * taken from arguments (the process list shows arguments to every user).
 *
 * Input is streamed: lines are read in chunks, hashed with bounded concurrency (PBKDF2 runs on
 * libuv's thread pool) and printed in input order, so a million lines need no more memory than one.
 */
import { Readable, Writable } from 'node:stream';
import { availableParallelism } from 'node:os';
import type { Command } from 'commander';
import { IdsyncError, isIdsyncError } from '../../core/errors.js';
import {
  assertPasswordUsable,
  ntHash,
  ORGID_ITERATIONS,
  ORGID_SALT_BYTES,
  orgIdHash,
  orgIdHashFromNt,
  parseOrgIdHash,
  verifyOrgIdHash,
} from '../../passwords/hash.js';
import { readLines, type InputLine } from '../../passwords/input.js';
import { EXIT } from '../exit-codes.js';

const MAX_ITERATIONS = 100_000;
/** Salts longer than this are refused by verifiers (parseOrgIdHash). */
const MAX_SALT_BYTES = 64;

interface Slot {
  settled: boolean;
  value?: string;
  error?: unknown;
}

/**
 * Applies `work` to every line with at most `concurrency` in flight and writes the results, one per
 * line, in input order. Results are written as soon as they and all before them are ready (batched
 * per event-loop turn), and reading pauses when the output cannot keep up. The first failing line
 * (invalid input or a failed hash) stops the run after everything before it has been written, and its
 * error is thrown.
 */
export async function mapLinesOrdered(
  lines: AsyncIterable<InputLine>,
  work: (text: string, line: number) => Promise<string>,
  output: Writable,
  concurrency = defaultConcurrency(),
): Promise<number> {
  const slots: Slot[] = [];
  let out = '';
  let count = 0;
  let failed: { error: unknown } | undefined;
  let flushScheduled = false;
  let blocked = false;
  let wake: (() => void) | undefined;
  const notify = () => {
    const w = wake;
    wake = undefined;
    w?.();
  };
  const flush = () => {
    flushScheduled = false;
    if (out.length === 0) return;
    const text = out;
    out = '';
    if (!output.write(text)) {
      blocked = true;
      output.once('drain', () => {
        blocked = false;
        notify();
      });
    }
  };
  const emit = () => {
    while (!failed && slots.length > 0 && slots[0]!.settled) {
      const slot = slots.shift()!;
      if ('error' in slot) {
        failed = { error: slot.error };
        break;
      }
      out += slot.value + '\n';
      count++;
    }
    if (out.length > 0 && !flushScheduled) {
      flushScheduled = true;
      setImmediate(flush);
    }
    notify();
  };
  const waitFor = async (done: () => boolean) => {
    while (!done()) await new Promise<void>((resolve) => (wake = resolve));
  };

  for await (const item of lines) {
    if ('error' in item) {
      slots.push({ settled: true, error: item.error });
    } else {
      const slot: Slot = { settled: false };
      slots.push(slot);
      work(item.text, item.line).then(
        (value) => {
          slot.value = value;
          slot.settled = true;
          emit();
        },
        (error: unknown) => {
          slot.error = error;
          slot.settled = true;
          emit();
        },
      );
    }
    emit();
    await waitFor(() => failed !== undefined || (slots.length < concurrency && !blocked));
    if (failed) break;
  }
  await waitFor(() => failed !== undefined || slots.length === 0);
  flush();
  await new Promise<void>((resolve, reject) => output.write('', (err) => (err ? reject(err) : resolve())));
  if (failed) throw failed.error;
  return count;
}

function defaultConcurrency(): number {
  const pool = Number(process.env.UV_THREADPOOL_SIZE) || 4;
  return Math.max(16, 4 * Math.max(pool, availableParallelism()));
}

/** Adds the line number to a password check's error (its message never holds the password). */
function atLine(err: unknown, line: number): unknown {
  if (!isIdsyncError(err)) return err;
  return new IdsyncError(err.code, `line ${line}: ${err.message}`, { hint: err.hint, details: { ...err.details, line }, cause: err });
}

/** Password → NT hash, upper-case hex (as the vectors and most tools print it). */
export async function ntHashLine(password: string, line: number): Promise<string> {
  try {
    assertPasswordUsable(password);
  } catch (err) {
    throw atLine(err, line);
  }
  return (await ntHash(password)).toString('hex').toUpperCase();
}

export function parseNtHash(text: string, where = 'the NT hash'): Buffer {
  const t = text.trim();
  if (!/^[0-9a-fA-F]{32}$/.test(t)) {
    throw new IdsyncError('HASH_INPUT_INVALID', `${where} must be 32 hexadecimal characters`, {
      hint: 'Pass the 16-byte NT hash as hex, e.g. 8846F7EAEE8FB117AD06BDD830B7586C.',
    });
  }
  return Buffer.from(t, 'hex');
}

export function parseSalt(text: string): Buffer {
  if (!/^(?:[0-9a-fA-F]{2})+$/.test(text) || text.length / 2 > MAX_SALT_BYTES) {
    throw new IdsyncError('HASH_INPUT_INVALID', `--salt must be hexadecimal with an even number of digits, 1 to ${MAX_SALT_BYTES} bytes`, {
      hint: `The incumbent uses ${ORGID_SALT_BYTES} random bytes (${ORGID_SALT_BYTES * 2} hex digits); leave --salt out to get a random one per password.`,
    });
  }
  return Buffer.from(text, 'hex');
}

export function parseIterations(text: string): number {
  if (!/^\d{1,6}$/.test(text) || Number(text) < 1 || Number(text) > MAX_ITERATIONS) {
    throw new IdsyncError('HASH_INPUT_INVALID', `--iterations must be an integer from 1 to ${MAX_ITERATIONS}`, {
      hint: `The incumbent uses ${ORGID_ITERATIONS} (older builds 100).`,
    });
  }
  return Number(text);
}

interface OrgIdCliOptions {
  salt?: string;
  iterations: string;
  ntHash?: string;
}

async function runNt(stdin: Readable, stdout: Writable): Promise<void> {
  await mapLinesOrdered(readLines(stdin), ntHashLine, stdout);
}

async function runOrgId(opts: OrgIdCliOptions, stdin: () => Readable, stdout: Writable): Promise<void> {
  const iterations = parseIterations(opts.iterations);
  const salt = opts.salt === undefined ? undefined : parseSalt(opts.salt);
  const options = () => ({ iterations, ...(salt ? { salt } : {}) });
  if (opts.ntHash !== undefined && opts.ntHash !== '-') {
    stdout.write((await orgIdHashFromNt(parseNtHash(opts.ntHash, '--nt-hash'), options())) + '\n');
    return;
  }
  if (opts.ntHash === '-') {
    await mapLinesOrdered(
      readLines(stdin()),
      async (text, line) => orgIdHashFromNt(parseNtHash(text, `line ${line}`), options()),
      stdout,
    );
    return;
  }
  await mapLinesOrdered(
    readLines(stdin()),
    async (password, line) => {
      try {
        assertPasswordUsable(password);
      } catch (err) {
        throw atLine(err, line);
      }
      return orgIdHash(password, options());
    },
    stdout,
  );
}

/** Reads the first line of a stream (the rest is ignored). */
async function firstLine(stdin: Readable): Promise<InputLine | undefined> {
  for await (const item of readLines(stdin)) return item;
  return undefined;
}

export interface HashCommandIo {
  stdin?: Readable;
  stdout?: Writable;
}

export function registerHashCommands(program: Command, io: HashCommandIo = {}): void {
  const stdin = () => {
    const input = io.stdin ?? process.stdin;
    if ((input as Readable & { isTTY?: boolean }).isTTY) {
      process.stderr.write('Reading passwords from the terminal, one per line (they are shown as typed); end with Ctrl-D.\n');
    }
    return input;
  };
  const stdout = () => io.stdout ?? process.stdout;
  const hash = program
    .command('hash')
    .description('Compute password hash sync values: NT hashes and OrgId hashes (passwords on stdin, one per line)');

  hash
    .command('nt')
    .description('print the NT hash (MD4 of UTF-16LE, upper-case hex) of each password read from stdin')
    .addHelpText('after', '\nExample:\n  printf \'%s\\n\' \'Pa$$w0rd\' | idsync hash nt\n  92937945B518814341DE3F726500D4FF')
    .action(async () => {
      await runNt(stdin(), stdout());
    });

  hash
    .command('orgid')
    .description('print the OrgId hash (v1;PPH1_MD4,<salt>,<iterations>,<hash>;) of each password read from stdin')
    .option('--salt <hex>', `use this salt for every line instead of ${ORGID_SALT_BYTES} random bytes per line`)
    .option('--iterations <n>', 'PBKDF2 iterations, 1 to 100000', String(ORGID_ITERATIONS))
    .option('--nt-hash <hex>', 'start from this NT hash (32 hex digits) instead of reading passwords; "-" reads NT hashes from stdin, one per line')
    .addHelpText(
      'after',
      '\nExamples:\n  printf \'%s\\n\' \'Pa$$w0rd\' | idsync hash orgid --salt a42b92067e4b8123101a\n  idsync hash orgid --nt-hash 92937945B518814341DE3F726500D4FF\n  cut -d: -f4 hashes.txt | idsync hash orgid --nt-hash -',
    )
    .action(async (opts: OrgIdCliOptions) => {
      await runOrgId(opts, stdin, stdout());
    });

  hash
    .command('verify')
    .description('check the password on the first line of stdin against an OrgId hash; exit 0 if it matches, 1 if not')
    .argument('<orgid-hash>', 'the stored value, v1;PPH1_MD4,<salt>,<iterations>,<hash>;')
    .option('--json', 'print {"match": true|false}')
    .action(async (stored: string, opts: { json?: boolean }) => {
      const item = await firstLine(stdin());
      if (item === undefined) {
        throw new IdsyncError('HASH_INPUT_INVALID', 'no password on standard input', { hint: 'Pipe the password in: `printf "%s\\n" "$PW" | idsync hash verify ...`.' });
      }
      if ('error' in item) throw item.error;
      assertPasswordUsable(item.text);
      if (!parseOrgIdHash(stored)) {
        throw new IdsyncError('HASH_INPUT_INVALID', 'the OrgId hash is malformed', {
          hint: 'Expected v1;PPH1_MD4,<salt hex>,<iterations 1-100000>,<64 hex digits>; in lower-case hex (quote it: it contains semicolons).',
        });
      }
      const match = await verifyOrgIdHash(item.text, stored);
      stdout().write(opts.json ? JSON.stringify({ match }) + '\n' : (match ? 'match' : 'no match') + '\n');
      if (!match) process.exitCode = EXIT.FAILED;
    });
}
