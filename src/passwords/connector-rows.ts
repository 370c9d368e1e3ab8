/**
 * The password tables' part of `idsync connectors rename` and `forget` (engine/connector-identity.ts
 * runs them inside its one transaction). A connector's password state is keyed by its name: its
 * users' rows (phs_users: the last known hash, the keyed NT-hash fingerprint, so an unchanged
 * password is not sent again, and what waits for the cloud), the per-user history and the MS-DRSR
 * replication state. phs_users has no index by connector (the intake never asks): these admin
 * commands read the table once.
 */
import type { Database } from '../store/database.js';

/** How many users' password state a connector holds. */
export function passwordStateCount(db: Database, connector: string): number {
  return db.prepare<[string], { n: number }>('SELECT COUNT(*) AS n FROM phs_users WHERE connector = ?').get(connector)?.n ?? 0;
}

/** The connectors that hold password rows (phs_users): one read of the table (`idsync doctor`). */
export function passwordConnectorNames(db: Database): string[] {
  return db
    .prepare<[], { connector: string }>('SELECT DISTINCT connector FROM phs_users')
    .all()
    .map((r) => r.connector);
}

/** Moves every password row of `from` to `to`. A clash (rows of `to` left over) throws: the caller's transaction undoes it all. */
export function renamePasswordConnector(db: Database, from: string, to: string): void {
  db.prepare('UPDATE phs_users SET connector = ? WHERE connector = ?').run(to, from);
  db.prepare('UPDATE phs_status SET connector = ? WHERE connector = ?').run(to, from);
  db.prepare('UPDATE phs_drs_state SET connector = ? WHERE connector = ?').run(to, from);
}

/**
 * Forgets a connector's password state: its fingerprints, queued changes and replication state.
 * Its users' history (phs_status) stays until it ages out (7 days), like run history.
 */
export function forgetPasswordConnector(db: Database, connector: string): { state: number; queued: number } {
  const queued = db.prepare('SELECT COUNT(*) AS n FROM phs_users WHERE connector = ? AND next_attempt_at IS NOT NULL').pluck().get(connector) as number;
  const state = db.prepare('DELETE FROM phs_users WHERE connector = ?').run(connector).changes;
  db.prepare('DELETE FROM phs_drs_state WHERE connector = ?').run(connector);
  return { state, queued };
}
