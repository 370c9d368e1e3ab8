/**
 * The password tables' part of `idsync connectors rename` and `forget` (engine/connector-identity.ts
 * runs them inside its one transaction). A connector's password state is keyed by its name: the
 * keyed NT-hash fingerprints (phs_state, so an unchanged password is not sent again), the outbox,
 * the per-user history and the MS-DRSR replication state.
 */
import type { Database } from '../store/database.js';

/** How many users' password state a connector holds. */
export function passwordStateCount(db: Database, connector: string): number {
  return db.prepare<[string], { n: number }>('SELECT COUNT(*) AS n FROM phs_state WHERE connector = ?').get(connector)?.n ?? 0;
}

/** Moves every password row of `from` to `to`. A clash (rows of `to` left over) throws: the caller's transaction undoes it all. */
export function renamePasswordConnector(db: Database, from: string, to: string): void {
  db.prepare('UPDATE phs_state SET connector = ? WHERE connector = ?').run(to, from);
  db.prepare('UPDATE phs_outbox SET connector = ? WHERE connector = ?').run(to, from);
  db.prepare('UPDATE phs_status SET connector = ? WHERE connector = ?').run(to, from);
  db.prepare('UPDATE phs_drs_state SET connector = ? WHERE connector = ?').run(to, from);
}

/**
 * Forgets a connector's password state: its fingerprints, queued changes and replication state.
 * Its users' history (phs_status) stays until it ages out (7 days), like run history.
 */
export function forgetPasswordConnector(db: Database, connector: string): { state: number; queued: number } {
  const state = db.prepare('DELETE FROM phs_state WHERE connector = ?').run(connector).changes;
  const queued = db.prepare('DELETE FROM phs_outbox WHERE connector = ?').run(connector).changes;
  db.prepare('DELETE FROM phs_drs_state WHERE connector = ?').run(connector);
  return { state, queued };
}
