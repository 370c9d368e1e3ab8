/**
 * File-system failures (a folder idsync creates, a file it writes) as errors with a stable code, the
 * path and a hint that names the fix, instead of a bare `ENOTDIR: not a directory, mkdir ...`
 * reported as INTERNAL. The hint depends on the errno: each one has a different fix.
 */
import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { IdsyncError, type ErrorCode } from './errors.js';

/** What went wrong, in words, and what to do, per errno. `path` is the path that failed. */
export function fileSystemHint(errno: string | undefined, file: string): { why: string; hint: string } {
  switch (errno) {
    case 'ENOTDIR':
      return { why: 'a part of the path is a regular file, not a folder', hint: `Fix the path in the configuration, or move the file that is in the way of ${file}.` };
    case 'EEXIST':
      return { why: 'it exists and is not a folder', hint: `Fix the path in the configuration, or move ${file} away.` };
    case 'EACCES':
    case 'EPERM':
      return { why: 'permission denied', hint: `Make ${file} (or its parent folder) writable by the user idsync runs as, or choose another path.` };
    case 'EROFS':
      return { why: 'the file system is read-only', hint: `Remount the file system of ${file} read-write, or choose a path on a writable one.` };
    case 'ENOSPC':
    case 'EDQUOT':
      return { why: 'no space left on the device (or the quota is used up)', hint: `Free space on the file system of ${file} (\`df -h\` shows it), then run the command again.` };
    case 'ELOOP':
    case 'ENAMETOOLONG':
    case 'EINVAL':
      return { why: 'the path is not usable', hint: `Fix the path ${file} in the configuration.` };
    default:
      return { why: errno ?? 'unknown error', hint: `Check that ${file} is a folder this user can write to, on a writable file system with free space.` };
  }
}

/**
 * An IdsyncError for a failed file-system call on `path`. `what` says what was being done, e.g.
 * "cannot create the data directory".
 */
export function fileSystemError(err: unknown, what: string, file: string, code: ErrorCode = 'PATH_UNUSABLE'): IdsyncError {
  if (err instanceof IdsyncError) return err;
  const errno = (err as NodeJS.ErrnoException | undefined)?.code;
  const { why, hint } = fileSystemHint(errno, file);
  return new IdsyncError(code, `${what} ${file}: ${why}${errno && errno !== why ? ` (${errno})` : ''}`, {
    hint,
    details: { path: file, ...(errno ? { errno } : {}) },
    cause: err,
  });
}

/**
 * Creates `dir` and its missing parents, owner-only (0700), as `mkdir -p` does. Returns the first
 * folder it created (undefined when `dir` already existed); throws PATH_UNUSABLE naming `dir`.
 */
export function makeDirectory(dir: string, what: string): string | undefined {
  try {
    return mkdirSync(dir, { recursive: true, mode: 0o700 });
  } catch (err) {
    throw fileSystemError(mkdirFailure(dir, err), what, dir);
  }
}

/**
 * The real reason a recursive mkdir failed. Node's recursive mkdir answers ENOENT where a folder
 * cannot be made for another reason (a read-only file system), so the first missing folder is tried
 * alone, which reports the errno that names the fix.
 */
function mkdirFailure(dir: string, err: unknown): unknown {
  if ((err as NodeJS.ErrnoException).code !== 'ENOENT') return err;
  let first = path.resolve(dir);
  while (path.dirname(first) !== first && !existsSync(path.dirname(first))) first = path.dirname(first);
  try {
    mkdirSync(first, { mode: 0o700 });
  } catch (again) {
    return again;
  }
  return err;
}
