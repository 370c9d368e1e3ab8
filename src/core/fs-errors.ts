/**
 * File-system failures (a folder idsync creates, a file it writes) as errors with a stable code, the
 * path and a hint that names the fix, instead of a bare `ENOTDIR: not a directory, mkdir ...`
 * reported as INTERNAL; likewise SQLite's "database or disk is full". The hint depends on the errno
 * or SQLite result code: each one has a different fix.
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

/**
 * What to do about a failed SQLite call, per its result code (better-sqlite3 puts it in `code`).
 * `file` is the database file, when known.
 */
export function sqliteHint(code: string | undefined, file?: string): string {
  const dir = file === undefined ? 'the data directory' : path.dirname(file);
  const df = file === undefined ? '`df -h`' : `\`df -h ${dir}\``;
  if (code === 'SQLITE_FULL') return `Free space on the file system of ${dir} (${df}), then run the command again; nothing that was committed is lost.`;
  if (code?.startsWith('SQLITE_READONLY') || code === 'SQLITE_PERM') {
    return `Make ${dir} and the idsync.db* files in it writable by the user idsync runs as (and the file system read-write), then run the command again.`;
  }
  if (code?.startsWith('SQLITE_CANTOPEN')) return `Check that ${dir} exists, is readable and writable by the user idsync runs as, and is on a file system mounted read-write.`;
  if (code === 'SQLITE_CORRUPT' || code === 'SQLITE_NOTADB') return `Restore ${file ?? 'the database'} from its backup, or check that dataDir points at the right folder.`;
  // A full disk shows as an I/O error too when SQLite grows its shared-memory file (SQLITE_IOERR_SHMSIZE).
  if (code?.startsWith('SQLITE_IOERR')) return `Check free space (${df}) and the disk of ${dir} (dmesg); then run the command again.`;
  return 'Check that the data directory exists, is writable by this user and the disk is not full.';
}

/** A SQLite failure (on `file`, when known) as STORE_FAILED, naming the cause and the fix. */
export function sqliteError(err: unknown, what: string, file?: string): IdsyncError {
  if (err instanceof IdsyncError) return err;
  const code = (err as { code?: unknown }).code;
  const sqliteCode = typeof code === 'string' ? code : undefined;
  return new IdsyncError('STORE_FAILED', `${what}${file === undefined ? '' : ` ${file}`}: ${(err as Error).message}`, {
    hint: sqliteHint(sqliteCode, file),
    details: { ...(file === undefined ? {} : { file }), ...(sqliteCode ? { sqliteCode } : {}) },
    cause: err,
  });
}

/** How the command line and the store warn about what does not stop them: a line on stderr. */
export function warnOnStderr(message: string): void {
  process.stderr.write(`warning: ${message}\n`);
}

/**
 * For the command line's last resort (an error nobody mapped): a SQLite failure becomes
 * STORE_FAILED and a file-system call that names its path PATH_UNUSABLE, each with its hint, instead
 * of INTERNAL. Anything else: undefined.
 */
export function fromFileSystemFailure(err: unknown): IdsyncError | undefined {
  if (err instanceof IdsyncError || !(err instanceof Error)) return undefined;
  const { code, syscall, path: file } = err as NodeJS.ErrnoException;
  if (typeof code === 'string' && code.startsWith('SQLITE_')) return sqliteError(err, 'the database failed');
  if (typeof code === 'string' && typeof syscall === 'string' && typeof file === 'string' && code !== 'ENOENT') {
    return fileSystemError(err, `cannot ${syscall}`, file);
  }
  return undefined;
}
