/**
 * Finding a user in the connector spaces by the names people use: the anchor (the cloud externalId),
 * sAMAccountName, userPrincipalName, LDAP uid, or the DN. Used by password change notifications and
 * by `idsync passwords status`. The engine owns the connector spaces and answers the queries.
 */
import { ConnectorSpaceUsers } from '../engine/connector-space-users.js';
import { tryNormalizeDn } from '../ldap/dn.js';
import type { Database } from '../store/database.js';

export interface KnownUser {
  connector: string;
  anchor: string;
  dn: string;
}

export class UserDirectory {
  private readonly users;

  constructor(db: Database) {
    this.users = new ConnectorSpaceUsers(db);
  }

  /** Every connector-space user the name designates (usually one). */
  find(user: string): KnownUser[] {
    const name = user.trim();
    if (name === '') return [];
    if (name.includes('=')) {
      const exact = this.users.byAnchor(name);
      if (exact.length > 0) return exact;
      const norm = tryNormalizeDn(name);
      if (norm !== undefined) {
        const found = this.users.byDn(norm);
        if (found.length > 0) return found;
      }
    }
    // DOMAIN\sam as typed at a Windows sign-in prompt
    const bare = /^[^\\]+\\(.+)$/.exec(name)?.[1] ?? name;
    const lower = bare.toLowerCase();
    return this.users.byAnchorOrLoginName(name, lower, name.toLowerCase(), lower);
  }

  /** The DN of an anchor in a connector space, for events. */
  dn(connector: string, anchor: string): string | undefined {
    return this.users.dn(connector, anchor);
  }

  /** A connector holding the anchor, when the sender did not say which. */
  connectorOf(anchor: string): string | undefined {
    return this.users.byAnchor(anchor)[0]?.connector;
  }
}
