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
    // The expressions match the indexes created by passwords/001.
    this.byNameStmt = db.prepare<[string, string, string], ConnectorSpaceUser>(
      `SELECT ${cols} FROM cs_objects WHERE ${LIVE_USER} AND (
         lower(json_extract(attrs, '$.samaccountname[0]')) = ? OR
         lower(json_extract(attrs, '$.userprincipalname[0]')) = ? OR
         lower(json_extract(attrs, '$.uid[0]')) = ?)`,
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

  /** The users whose sAMAccountName, userPrincipalName or uid is this (each compared lower-case). */
  byLoginName(sam: string, upn: string, uid: string): ConnectorSpaceUser[] {
    return this.byNameStmt.all(sam, upn, uid);
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
