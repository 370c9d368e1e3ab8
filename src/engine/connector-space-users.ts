/**
 * Questions other modules ask about the users in the connector spaces: password sync finds a user by
 * the names people type, the DRS source checks an account, status shows a user's history. The
 * engine owns cs_objects, so the SQL is here; the callers keep their own logic.
 *
 * A user counts while it is staged and not pending deletion.
 */
import type { Database } from '../store/database.js';

export interface ConnectorSpaceUser {
  connector: string;
  anchor: string;
  dn: string;
}

const LIVE_USER = "object_type = 'user' AND (pending IS NULL OR pending <> 'delete')";

export class ConnectorSpaceUsers {
  private readonly byAnchorStmt;
  private readonly byDnStmt;
  private readonly byNameStmt;
  private readonly dnStmt;
  private readonly accountStmt;

  constructor(db: Database) {
    const cols = 'connector, anchor, dn';
    this.byAnchorStmt = db.prepare<[string], ConnectorSpaceUser>(`SELECT ${cols} FROM cs_objects WHERE anchor = ? AND ${LIVE_USER}`);
    this.byDnStmt = db.prepare<[string], ConnectorSpaceUser>(`SELECT ${cols} FROM cs_objects WHERE dn_norm = ? AND ${LIVE_USER}`);
    // The expressions match the indexes created by passwords/001; one indexed SELECT per name kind
    // (SQLite's planner scans the table for the same three tests joined with OR), and the anchor in
    // the same statement: one round trip per notification. `k` ranks the matches (anchor first).
    const byExpr = (attr: string): string =>
      `SELECT ${cols}, 1 AS k FROM cs_objects WHERE object_type = 'user' AND lower(json_extract(attrs, '$.${attr}[0]')) = ? AND (pending IS NULL OR pending <> 'delete')`;
    this.byNameStmt = db.prepare<[string, string, string, string], ConnectorSpaceUser & { k: number }>(
      `SELECT ${cols}, 0 AS k FROM cs_objects WHERE anchor = ? AND ${LIVE_USER}
       UNION ALL ${byExpr('samaccountname')} UNION ALL ${byExpr('userprincipalname')} UNION ALL ${byExpr('uid')}`,
    );
    this.dnStmt = db.prepare<[string, string], { dn: string }>('SELECT dn FROM cs_objects WHERE connector = ? AND anchor = ?');
    this.accountStmt = db.prepare<[string, string], { uac: number | string | null; sam: string | null }>(
      `SELECT json_extract(attrs, '$.useraccountcontrol[0]') AS uac, json_extract(attrs, '$.samaccountname[0]') AS sam
         FROM cs_objects WHERE connector = ? AND anchor = ? AND ${LIVE_USER}`,
    );
  }

  /** The users with this anchor, in every connector space. */
  byAnchor(anchor: string): ConnectorSpaceUser[] {
    return this.byAnchorStmt.all(anchor);
  }

  /** The users at this normalized DN. */
  byDn(dnNorm: string): ConnectorSpaceUser[] {
    return this.byDnStmt.all(dnNorm);
  }

  /**
   * The users with this anchor or, when none has it, those whose sAMAccountName, userPrincipalName
   * or uid is one of these (each compared lower-case). One user found by several names is one user.
   */
  byAnchorOrLoginName(anchor: string, sam: string, upn: string, uid: string): ConnectorSpaceUser[] {
    const rows = this.byNameStmt.all(anchor, sam, upn, uid);
    const best = rows.some((r) => r.k === 0) ? 0 : 1;
    const out: ConnectorSpaceUser[] = [];
    const seen = new Set<string>();
    for (const r of rows) {
      const key = `${r.connector}\0${r.anchor}`;
      if (r.k !== best || seen.has(key)) continue;
      seen.add(key);
      out.push({ connector: r.connector, anchor: r.anchor, dn: r.dn });
    }
    return out;
  }

  /** The DN of an anchor in a connector space (also of one pending deletion: events still name it). */
  dn(connector: string, anchor: string): string | undefined {
    return this.dnStmt.get(connector, anchor)?.dn;
  }

  /** True when the connector space holds this user. */
  exists(connector: string, anchor: string): boolean {
    return this.accountStmt.get(connector, anchor) !== undefined;
  }

  /** An AD user's userAccountControl and sAMAccountName, as imported. */
  adAccount(connector: string, anchor: string): { uac: number | string | null; sam: string | null } | undefined {
    return this.accountStmt.get(connector, anchor);
  }
}
