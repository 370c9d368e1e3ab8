/**
 * The agent's durable state: the DirSync cookie, in `<state dir>/dirsync-<hash of base>.cookie`.
 * Written to a temporary file, fsync'ed, renamed over the old one (then the directory fsync'ed):
 * a crash leaves either the old cookie or the new one, never a torn file. The cookie is saved only
 * after the changes it covers were forwarded, so a crash re-reads (and re-sends) at worst one round.
 */
import { createHash } from 'node:crypto';
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import path from 'node:path';
import { passwordError } from '../passwords/errors.js';

export class CookieFile {
  readonly file: string;

  constructor(
    readonly dir: string,
    base: string,
  ) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const id = createHash('sha256').update(base.toLowerCase()).digest('hex').slice(0, 16);
    this.file = path.join(dir, `dirsync-${id}.cookie`);
  }

  read(): Buffer {
    try {
      const text = readFileSync(this.file, 'utf8').trim();
      if (text === '') return Buffer.alloc(0);
      if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text)) throw new Error('not base64');
      return Buffer.from(text, 'base64');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return Buffer.alloc(0);
      throw passwordError('AGENT_STATE_INVALID', `the DirSync cookie file ${this.file} cannot be read: ${(err as Error).message}`, {
        hint: 'Delete the file to start over with a full password sync (every user is sent again, which is harmless).',
        details: { file: this.file },
        cause: err,
      });
    }
  }

  write(cookie: Buffer): void {
    const tmp = `${this.file}.${process.pid}.tmp`;
    const fd = openSync(tmp, 'w', 0o600);
    try {
      writeSync(fd, cookie.toString('base64') + '\n');
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, this.file);
    try {
      const dfd = openSync(this.dir, 'r');
      try {
        fsyncSync(dfd);
      } finally {
        closeSync(dfd);
      }
    } catch {
      // some filesystems refuse fsync on a directory; the rename is still atomic
    }
  }
}
