/**
 * What the repository needs to know about one resource type: its table, the indexed columns derived
 * from the document, and how filter attributes map to SQL (columns where indexed, JSON otherwise).
 */
import type { SqlMapping } from '../filter.js';
import type { ResourceTypeDef } from '../schema.js';
import type { Doc } from '../validate.js';

export interface ResourceKind {
  type: ResourceTypeDef;
  table: 'scim_users' | 'scim_groups';
  /** Indexed columns, in the order `columnValues` returns them. */
  columns: string[];
  columnValues(doc: Doc): unknown[];
  sql: SqlMapping;
  /** Unique column → attribute name, for 409 uniqueness messages. */
  uniqueColumns: Record<string, string>;
}

/** Shared column mappings for id, externalId and meta.*. */
export function commonColumn(attr: string, sub: string | undefined, resourceType: string): { sql: string } | undefined {
  switch (attr) {
    case 'id':
      return { sql: 'r.id' };
    case 'externalId':
      return { sql: 'r.external_id' };
    case 'meta':
      switch (sub) {
        case 'created':
          return { sql: 'r.created' };
        case 'lastModified':
          return { sql: 'r.last_modified' };
        case 'version':
          return { sql: `('W/"' || r.version || '"')` };
        case 'resourceType':
          return { sql: `'${resourceType}'` };
        default:
          return undefined;
      }
    default:
      return undefined;
  }
}
