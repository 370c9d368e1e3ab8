/**
 * Frames of the current WAL generation of an SQLite file, read from the `-wal` file itself (a
 * checkpoint call to ask would itself checkpoint): the frames after the 32-byte header whose salts
 * match the header's (frames of an earlier generation, left behind a restart, carry other salts).
 * Page size 4096.
 */
import { readFileSync } from 'node:fs';

export function walFrames(walFile: string): number {
  let wal: Buffer;
  try {
    wal = readFileSync(walFile);
  } catch {
    return 0;
  }
  if (wal.length < 32) return 0;
  const salt = wal.subarray(16, 24);
  let n = 0;
  for (let at = 32; at + 24 + 4096 <= wal.length; at += 24 + 4096, n++) if (!wal.subarray(at + 8, at + 16).equals(salt)) break;
  return n;
}
