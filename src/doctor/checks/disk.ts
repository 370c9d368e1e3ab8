/** Free space of the data directory (the SQLite database grows with the directory and its history). */
import { statfs } from 'node:fs/promises';
import type { DoctorCheck, Finding } from '../types.js';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

export function diskStatus(free: number, total: number): 'ok' | 'warning' | 'error' {
  if (free < 100 * MiB) return 'error';
  if (free < GiB || (total > 0 && free / total < 0.1)) return 'warning';
  return 'ok';
}

const fmt = (n: number) => (n >= GiB ? `${(n / GiB).toFixed(1)} GiB` : `${Math.round(n / MiB)} MiB`);

export const diskCheck: DoctorCheck = {
  name: 'disk-space',
  async run(d): Promise<Finding[]> {
    const dir = d.loaded.dataDir;
    let s;
    try {
      s = await statfs(dir);
    } catch (err) {
      return [{ check: 'disk-space', target: dir, status: 'warning', message: `cannot read the free space of ${dir}: ${(err as NodeJS.ErrnoException).code ?? String(err)}` }];
    }
    const free = s.bavail * s.bsize;
    const total = s.blocks * s.bsize;
    const status = diskStatus(free, total);
    const what = `${fmt(free)} free of ${fmt(total)} (${total ? Math.round((free / total) * 100) : 0} %) in ${dir}`;
    if (status === 'ok') return [{ check: 'disk-space', target: dir, status, message: `disk space: ${what}` }];
    return [{
      check: 'disk-space',
      target: dir,
      status,
      message: `disk space is low: ${what}`,
      cause: 'SQLite needs free space to write (and twice the database size for a VACUUM); a full disk stops every sync.',
      fix: `Free space on that file system (\`du -sh ${dir}/*\`), or move dataDir to a larger one.`,
    }];
  },
};
