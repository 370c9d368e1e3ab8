/**
 * File-system faults that permission bits cannot make for a test running as root (root writes
 * through 0500): a read-only bind mount and a small full tmpfs, each made in a private mount
 * namespace (`unshare -m`) of one child process, so nothing outside that child sees the mount.
 */
import { spawn, spawnSync } from 'node:child_process';
import { childResult } from './run-cli.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

let probed: string | false | undefined;

/** Why no private mount namespace can be made here (not root, no unshare), or false when it can. */
export function mountNamespaceUnavailable(): string | false {
  if (probed !== undefined) return probed;
  const dir = mkdtempSync(path.join(tmpdir(), 'idsync-mountns-'));
  try {
    const r = spawnSync('unshare', ['-m', 'sh', '-c', `mount -t tmpfs -o size=16k tmpfs '${dir}'`], { encoding: 'utf8' });
    probed = r.status === 0 ? false : `cannot make a private mount namespace (unshare -m): ${(r.stderr || r.error?.message || 'failed').trim()}`;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return probed;
}

/** Shell words, single-quoted. */
export const sh = (s: string): string => `'${s.replaceAll("'", `'\\''`)}'`;

/** `dir` read-only inside the namespace (a read-only bind mount of itself). */
export const readOnlyMount = (dir: string): string => `mount --bind ${sh(dir)} ${sh(dir)} && mount -o remount,bind,ro ${sh(dir)}`;

/** A tmpfs of `kib` KiB on `dir`, with `fillKib` KiB of it taken by a file. */
export const smallTmpfs = (dir: string, kib: number, fillKib = 0): string =>
  `mount -t tmpfs -o size=${kib}k tmpfs ${sh(dir)}` + (fillKib ? ` && dd if=/dev/zero of=${sh(path.join(dir, 'fill'))} bs=1k count=${fillKib} 2>/dev/null` : '');

/** Runs `argv` in a new mount namespace after the shell commands of `setup`. */
export function runInMountNamespace(setup: string, argv: string[], opts: { cwd?: string } = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  const child = spawn('unshare', ['-m', 'sh', '-c', `${setup} && exec "$@"`, 'sh', ...argv], { cwd: opts.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  return childResult(child);
}
