/**
 * Finding a user in the connector spaces by the names people use: the anchor (the cloud externalId),
 * sAMAccountName, userPrincipalName, LDAP uid, or the DN. Used by password change notifications and
 * by `idsync passwords status`.
 */
import { tryNormalizeDn } from '../ldap/dn.js';
import type { Database } from '../store/database.js';

export interface KnownUser {
  connector: string;
  anchor: string;
  dn: string;
}

export class UserDirectory {
  private readonly byAnchor;
  private readonly byDn;
  private readonly byName;
  private readonly dnOf;

  constructor(db: Database) {
    const cols = 'connector, anchor, dn';
    this.byAnchor = db.prepare<[string], KnownUser>(`SELECT ${cols} FROM cs_objects WHERE anchor = ? AND object_type = 'user' AND (pending IS NULL OR pending <> 'delete')`);
    this.byDn = db.prepare<[string], KnownUser>(`SELECT ${cols} FROM cs_objects WHERE dn_norm = ? AND object_type = 'user' AND (pending IS NULL OR pending <> 'delete')`);
    // The expressions match the indexes created by passwords/001; one indexed SELECT per name kind
    // (SQLite's planner scans the table for the same three tests joined with OR), and the anchor in
    // the same statement: one round trip per notification. `k` ranks the matches (anchor first).
    const byExpr = (attr: string, k: number): string =>
      `SELECT ${cols}, ${k} AS k FROM cs_objects WHERE object_type = 'user' AND lower(json_extract(attrs, '$.${attr}[0]')) = ? AND (pending IS NULL OR pending <> 'delete')`;
    this.byName = db.prepare<[string, string, string, string], KnownUser & { k: number }>(
      `SELECT ${cols}, 0 AS k FROM cs_objects WHERE anchor = ? AND object_type = 'user' AND (pending IS NULL OR pending <> 'delete')
       UNION ALL ${byExpr('samaccountname', 1)} UNION ALL ${byExpr('userprincipalname', 1)} UNION ALL ${byExpr('uid', 1)}`,
    );
    this.dnOf = db.prepare<[string, string], { dn: string }>('SELECT dn FROM cs_objects WHERE connector = ? AND anchor = ?');
  }

  /** Every connector-space user the name designates (usually one). */
  find(user: string): KnownUser[] {
    const name = user.trim();
    if (name === '') return [];
    if (name.includes('=')) {
      const exact = this.byAnchor.all(name);
      if (exact.length > 0) return exact;
      const norm = tryNormalizeDn(name);
      if (norm !== undefined) {
        const found = this.byDn.all(norm);
        if (found.length > 0) return found;
      }
    }
    // DOMAIN\sam as typed at a Windows sign-in prompt
    const bare = /^[^\\]+\\(.+)$/.exec(name)?.[1] ?? name;
    const lower = bare.toLowerCase();
    const rows = this.byName.all(name, lower, name.toLowerCase(), lower);
    // An exact anchor wins over names; one user found by several names is one user.
    const best = rows.some((r) => r.k === 0) ? 0 : 1;
    const out: KnownUser[] = [];
    const seen = new Set<string>();
    for (const r of rows) {
      const key = `${r.connector}\0${r.anchor}`;
      if (r.k !== best || seen.has(key)) continue;
      seen.add(key);
      out.push({ connector: r.connector, anchor: r.anchor, dn: r.dn });
    }
    return out;
  }

  /** The DN of an anchor in a connector space, for events. */
  dn(connector: string, anchor: string): string | undefined {
    return this.dnOf.get(connector, anchor)?.dn;
  }

  /** A connector holding the anchor, when the sender did not say which. */
  connectorOf(anchor: string): string | undefined {
    return this.byAnchor.get(anchor)?.connector;
  }
}
