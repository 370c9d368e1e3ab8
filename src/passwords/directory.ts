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
    // The expressions match the indexes created by passwords/001.
    this.byName = db.prepare<[string, string, string], KnownUser>(
      `SELECT ${cols} FROM cs_objects WHERE object_type = 'user' AND (pending IS NULL OR pending <> 'delete') AND (
         lower(json_extract(attrs, '$.samaccountname[0]')) = ? OR
         lower(json_extract(attrs, '$.userprincipalname[0]')) = ? OR
         lower(json_extract(attrs, '$.uid[0]')) = ?)`,
    );
    this.dnOf = db.prepare<[string, string], { dn: string }>('SELECT dn FROM cs_objects WHERE connector = ? AND anchor = ?');
  }

  /** Every connector-space user the name designates (usually one). */
  find(user: string): KnownUser[] {
    const name = user.trim();
    if (name === '') return [];
    const exact = this.byAnchor.all(name);
    if (exact.length > 0) return exact;
    if (name.includes('=')) {
      const norm = tryNormalizeDn(name);
      if (norm !== undefined) {
        const found = this.byDn.all(norm);
        if (found.length > 0) return found;
      }
    }
    // DOMAIN\sam as typed at a Windows sign-in prompt
    const bare = /^[^\\]+\\(.+)$/.exec(name)?.[1] ?? name;
    const lower = bare.toLowerCase();
    return this.byName.all(lower, name.toLowerCase(), lower);
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
