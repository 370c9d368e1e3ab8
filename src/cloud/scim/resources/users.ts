/** Users: storage columns and filter mapping. */
import { badRequest } from '../errors.js';
import { jsonMulti, jsonSingular, type SqlMapping } from '../filter.js';
import { refName, USER_TYPE } from '../schema.js';
import type { Doc } from '../validate.js';
import { commonColumn, type ResourceKind } from './kind.js';

const lower = (v: unknown): string | null => (typeof v === 'string' ? v.toLowerCase() : null);

const sql: SqlMapping = {
  singular(ref) {
    if (!ref.ext) {
      const common = commonColumn(ref.attr.name, ref.sub?.name, 'User');
      if (common) return common;
      if (ref.attr.name === 'meta') throw badRequest('invalidFilter', `${refName(ref)} cannot be used in a filter`);
      if (ref.attr.name === 'userName') return { sql: 'r.user_name_lc', lowered: true };
      if (ref.attr.name === 'displayName') return { sql: 'r.display_name_lc', lowered: true };
      if (ref.attr.name === 'active') return { sql: 'r.active' };
    }
    return jsonSingular(ref);
  },
  multi(ref) {
    if (!ref.ext && ref.attr.name === 'groups') {
      // Group membership lives in scim_group_members, not in the user's document.
      return {
        from: 'scim_group_members AS gm JOIN scim_groups AS gg ON gg.id = gm.group_id',
        where: 'gm.member_id = r.id',
        sub: (sub) => {
          switch (sub?.name) {
            case 'value':
              return { sql: 'gm.group_id' };
            case 'display':
              return { sql: 'gg.display_name_lc', lowered: true };
            case 'type':
              return { sql: `'direct'` };
            default:
              return { sql: 'NULL' };
          }
        },
      };
    }
    return jsonMulti(ref);
  },
};

export const USERS: ResourceKind = {
  type: USER_TYPE,
  table: 'scim_users',
  columns: ['external_id', 'user_name', 'user_name_lc', 'display_name', 'display_name_lc', 'active'],
  columnValues(doc: Doc) {
    const active = doc.active;
    return [
      doc.externalId ?? null,
      doc.userName,
      lower(doc.userName),
      doc.displayName ?? null,
      lower(doc.displayName),
      active === undefined ? null : active ? 1 : 0,
    ];
  },
  sql,
  uniqueColumns: { user_name_lc: 'userName', external_id: 'externalId' },
};
