/**
 * Running the real `idsync` binary from tests, as an administrator would: child processes with
 * their output captured (for assertions and secret scans), and small polling helpers. Always
 * asynchronous: a cloud directory started by the test runs in the test's own process and must keep
 * answering while a child talks to it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { connect } from 'node:net';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { request } from 'undici';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const BIN = path.join(ROOT, 'bin/idsync.js');
/**
 * Node arguments that run the CLI from source through tsx (`node <these> -c <config> serve ...`):
 * for a service started by startDaemon({ nodeArgs }) without a build.
 */
export const CLI_FROM_SOURCE_ARGS = [
  '--import',
  import.meta.resolve('tsx'),
  '--input-type=module',
  '-e',
  `import { main } from ${JSON.stringify(pathToFileURL(path.join(ROOT, 'src/cli/main.ts')).href)};
   main(['node', 'idsync', ...process.argv.slice(1)]).then((c) => { process.exitCode = c; });`,
  '--',
];

export interface Proc {
  child: ChildProcess;
  /** stdout and stderr as they arrive. */
  out: { text: string };
  exited: Promise<number | null>;
}

/** Everything every child process printed in this test file, for secret scans. */
export const captured: { what: string; text: string }[] = [];

export function spawnIdsync(args: string[], input?: string, env: NodeJS.ProcessEnv = {}): Proc {
  const child = spawn(process.execPath, [BIN, ...args], { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, NO_COLOR: '1', ...env } });
  const out = { text: '' };
  const record = { what: `idsync ${args.filter((a) => !a.startsWith('/')).join(' ')}`, text: '' };
  captured.push(record);
  const add = (d: Buffer): void => {
    out.text += d.toString('utf8');
    record.text = out.text;
  };
  child.stdout?.on('data', add);
  child.stderr?.on('data', add);
  child.stdin?.end(input ?? '');
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, out, exited };
}

/** Runs a command to completion. */
export async function idsync(args: string[], input?: string, env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; out: string }> {
  const p = spawnIdsync(args, input, env);
  const code = await p.exited;
  return { code, out: p.out.text };
}

/** Polls fn until it returns something other than undefined/false, or fails after ms. */
export async function until<T>(what: string, fn: () => Promise<T | undefined | false> | T | undefined | false, ms: number, every = 100): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(every);
  }
}

/** Stops a child (SIGTERM, SIGKILL after 15 s) and returns its exit code. */
export async function stopProc(p: Proc | undefined, signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
  if (!p) return null;
  if (p.child.exitCode !== null || p.child.signalCode !== null) return p.child.exitCode;
  p.child.kill(signal);
  const t = setTimeout(() => p.child.kill('SIGKILL'), 15_000);
  const code = await p.exited;
  clearTimeout(t);
  return code;
}

/** A password sign-in at the cloud's token endpoint; returns the HTTP status (200 = signed in). */
export async function signIn(cloudUrl: string, username: string, password: string): Promise<number> {
  const res = await request(`${cloudUrl}/oauth2/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'password', username, password }).toString(),
  });
  await res.body.dump();
  return res.statusCode;
}

/** Polls the token endpoint until the password works; returns how long it took (ms). */
export async function signsInWithin(cloudUrl: string, username: string, password: string, ms: number): Promise<number> {
  const t0 = Date.now();
  await until(`${username} to sign in`, async () => (await signIn(cloudUrl, username, password)) === 200 || undefined, ms, 50);
  return Date.now() - t0;
}

/** Stores credentials through `idsync -c <config> credentials set <name> [extra]` (secret on stdin). */
export async function setCredentials(config: string, entries: readonly (readonly [name: string, secret: string, extra?: readonly string[]])[]): Promise<void> {
  for (const [name, secret, extra = []] of entries) {
    const r = await idsync(['-c', config, 'credentials', 'set', name, ...extra], `${secret}\n`);
    if (r.code !== 0) throw new Error(`credentials set ${name} exited ${r.code}: ${r.out}`);
  }
}

/** True when something accepts TCP connections on 127.0.0.1:port. */
export function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/** Module source for `node --import tsx -e`: buildProgram() with src/cli/commands/<file>.ts's `register` added when missing. */
export function commandGroupCode(file: string, register: string): string {
  const src = (p: string) => JSON.stringify(pathToFileURL(path.join(ROOT, p)).href);
  return `
    import { buildProgram } from ${src('src/cli/main.ts')};
    import { reportError } from ${src('src/cli/output.ts')};
    import { ${register} as register } from ${src(`src/cli/commands/${file}.ts`)};
    const program = await buildProgram();
    if (!program.commands.some((c) => c.name() === '${file}')) register(program);
    try {
      await program.parseAsync(['node', 'idsync', ...process.argv.slice(1)]);
    } catch (err) {
      process.exitCode = reportError(err, process.argv.includes('--json'));
    }`;
}

/**
 * Module source for `node --import tsx -e` (cwd = the repository): a bare commander program with one
 * command group; `setup` runs first, `register` is the statement that registers the group.
 */
export function commanderRunner(setup: string, register: string): string {
  return `
const { Command, CommanderError } = await import('commander');
const { reportError } = await import('./src/cli/output.ts');
${setup}
const program = new Command('idsync').option('-c, --config <file>').exitOverride();
${register};
let code = 0;
try {
  await program.parseAsync(process.argv.slice(1), { from: 'user' });
  code = typeof process.exitCode === 'number' ? process.exitCode : 0;
} catch (err) {
  code = err instanceof CommanderError ? (err.exitCode === 0 ? 0 : 2) : reportError(err, process.argv.includes('--json'));
}
process.exitCode = code;
`;
}

/** Runs module source through `node --import tsx -e <code> -- <args>` (async; IDSYNC_CONFIG unset). */
export function runTsxCode(code: string, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', import.meta.resolve('tsx'), '--input-type=module', '-e', code, '--', ...args], {
      env: { ...process.env, IDSYNC_CONFIG: '' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('close', (c) => resolve({ code: c, stdout, stderr }));
  });
}
