/**
 * A connection's automatic WAL checkpoint (`PRAGMA wal_autocheckpoint`), raised while a worker
 * thread checkpoints its writes off the event loop: the password intake's
 * (passwords/checkpoints.ts) and a sync cycle's (store/checkpoints.ts). Both may hold one
 * connection at once (`idsync serve`): the setting is then the highest either asked for, a raised
 * value is never taken for the connection's own, and the own one comes back when the last holder
 * lets go — also after a restore that failed once (the record is kept for the next).
 */
import type { Database } from './database.js';

const holds = new WeakMap<Database, { own: number; pages: number[] }>();

/** The connection's own `wal_autocheckpoint` (not a raised one). */
export function ownAutocheckpoint(db: Database): number {
  const h = holds.get(db);
  if (h) return h.own;
  const pages = Number(db.pragma('wal_autocheckpoint', { simple: true }));
  return Number.isInteger(pages) && pages >= 0 ? pages : 1000;
}

/**
 * With db.pragma, which prepares and runs the statement each time: SQLite applies
 * `PRAGMA wal_autocheckpoint = N` while it prepares it, so a statement prepared once and run again
 * changes nothing (it did so only when a schema change made SQLite prepare it again: the setting
 * then depended on which ran last).
 */
function setAutocheckpoint(db: Database, pages: number): void {
  db.pragma(`wal_autocheckpoint = ${pages}`);
}

/**
 * One more holder wants the connection to checkpoint on commit only past `pages` pages. Throws on
 * a closed or busy connection, with nothing recorded.
 */
export function raiseAutocheckpoint(db: Database, pages: number): void {
  const own = ownAutocheckpoint(db);
  const held = holds.get(db)?.pages ?? [];
  setAutocheckpoint(db, Math.max(pages, ...held));
  holds.set(db, { own, pages: [...held, pages] });
}

/** A holder of `pages` lets go: the highest of the others' again, or the connection's own. */
export function lowerAutocheckpoint(db: Database, pages: number): void {
  const h = holds.get(db);
  if (!h) return;
  const at = h.pages.indexOf(pages);
  if (at >= 0) h.pages.splice(at, 1);
  try {
    if (!db.open) return; // closing with the process: nothing to restore
    setAutocheckpoint(db, h.pages.length > 0 ? Math.max(...h.pages) : h.own);
    if (h.pages.length === 0) holds.delete(db);
  } catch {
    // busy (a statement still iterating): the record stays, so the own value is not taken for
    // a raised one; the next holder's lowering restores it
  }
}
