/**
 * The real `idsync` command line in a child process (from the sources, through
 * test/helpers/idsync-main.ts), spawned asynchronously so that servers in the test process keep
 * answering while it runs.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const RUNNER = path.join(repoRoot, 'test/helpers/idsync-main.ts');

export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

export function runCli(args: string[], opts: { env?: Record<string, string | undefined>; stdin?: string; cwd?: string } = {}): Promise<CliRun> {
  const child = spawn(process.execPath, ['--import', 'tsx', RUNNER, ...args], {
    cwd: opts.cwd ?? repoRoot,
    env: { ...process.env, ...opts.env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  return childResult(child, opts.stdin ?? '');
}

/** A child's exit code (-1 when killed) and all it printed; `stdin` is written to it and closed. */
export function childResult(child: ChildProcess, stdin?: string): Promise<CliRun> {
  return new Promise((resolve, reject) => {
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
    if (stdin !== undefined) child.stdin?.end(stdin);
  });
}
