/** Groups: storage columns and filter mapping; members live in scim_group_members. */
import { badRequest } from '../errors.js';
import { jsonMulti, jsonSingular, type SqlMapping } from '../filter.js';
import { GROUP_TYPE, refName } from '../schema.js';
import type { Doc } from '../validate.js';
import { commonColumn, type ResourceKind } from './kind.js';

/** Display of a member, computed at read time so a renamed user shows its current name. */
export const MEMBER_DISPLAY_SQL = 'COALESCE(mu.display_name, mu.user_name, mg.display_name)';
export const MEMBER_JOINS =
  "LEFT JOIN scim_users AS mu ON gm.member_type = 'User' AND mu.id = gm.member_id " +
  "LEFT JOIN scim_groups AS mg ON gm.member_type = 'Group' AND mg.id = gm.member_id";

const sql: SqlMapping = {
  singular(ref) {
    if (!ref.ext) {
      const common = commonColumn(ref.attr.name, ref.sub?.name, 'Group');
      if (common) return common;
      if (ref.attr.name === 'meta') throw badRequest('invalidFilter', `${refName(ref)} cannot be used in a filter`);
      if (ref.attr.name === 'displayName') return { sql: 'r.display_name_lc', lowered: true };
    }
    return jsonSingular(ref);
  },
  multi(ref) {
    if (!ref.ext && ref.attr.name === 'members') {
      return {
        from: `scim_group_members AS gm ${MEMBER_JOINS}`,
        where: 'gm.group_id = r.id',
        sub: (sub) => {
          switch (sub?.name) {
            case 'value':
              return { sql: 'gm.member_id' };
            case 'type':
              return { sql: 'gm.member_type' };
            case 'display':
              return { sql: MEMBER_DISPLAY_SQL };
            default:
              return { sql: 'NULL' };
          }
        },
      };
    }
    return jsonMulti(ref);
  },
};

export const GROUPS: ResourceKind = {
  type: GROUP_TYPE,
  table: 'scim_groups',
  columns: ['external_id', 'display_name', 'display_name_lc'],
  columnValues(doc: Doc) {
    const name = doc.displayName as string;
    return [doc.externalId ?? null, name, name.toLowerCase()];
  },
  sql,
  uniqueColumns: { external_id: 'externalId' },
};
