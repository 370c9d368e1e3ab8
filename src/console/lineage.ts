/**
 * One metaverse object's lineage for the console: source entry → connector-space object →
 * metaverse object (with the connector each attribute came from) → cloud resource, with the pending
 * changes, the last export and the password sync status. Read-only: nothing here writes.
 */
import type { EngineContext } from '../engine/context.js';
import { EngineQueries } from '../engine/queries.js';
import type { ConnectorKind } from '../engine/sync.js';
import { StatusLog } from '../passwords/status.js';
import type { AttrMap, Lineage } from './api-types.js';
import { withoutSecrets } from '../web/security.js';
import { parseJsonAttrs } from './attrs.js';

const same = (a: unknown, b: unknown): boolean => JSON.stringify(a) === JSON.stringify(b);

export function buildLineage(ctx: EngineContext, id: number): Lineage | undefined {
  const { db } = ctx;
  const engine = new EngineQueries(db);
  const mv = engine.metaverseObject(id);
  if (!mv) return undefined;
  const cs = engine.connectorObjectsOf(id);
  const exp = engine.exportOf(id);
  const mvAttrs = parseJsonAttrs(mv.attrs);

  // Which connector contributed each metaverse attribute: the inbound flows evaluated again on each
  // connector-space object (the rules the sync used), matched against the merged value.
  const kinds = new Map<string, ConnectorKind>(ctx.loaded.config.connectors.map((c) => [c.name, c.type]));
  const flowed: { connector: string; attrs: AttrMap }[] = [];
  for (const c of cs) {
    try {
      flowed.push({ connector: c.connector, attrs: ctx.loaded.rules.inbound(c.connector, kinds.get(c.connector) ?? 'ldap', { anchor: c.anchor, objectType: c.object_type as 'user' | 'group', dn: c.dn, attributes: JSON.parse(c.attrs) }) as AttrMap });
    } catch {
      /* a flow that fails on this object is reported by the sync run; here it contributes nothing */
    }
  }
  const contributedBy: Record<string, string | null> = {};
  for (const [k, v] of Object.entries(withoutSecrets(mvAttrs))) contributedBy[k] = flowed.find((f) => same(f.attrs[k], v))?.connector ?? null;

  // Password sync status of the user (any of its source anchors), newest first: the status log,
  // by anchor (indexed), as `idsync passwords status` reads it.
  const log = new StatusLog(db);
  const passwords = mv.object_type === 'user' ? cs.flatMap((c) => log.forAnchor(c.anchor)).sort((a, b) => Date.parse(b.at) - Date.parse(a.at)).slice(0, 10) : [];

  return {
    metaverse: {
      id: mv.id,
      objectType: mv.object_type,
      sourceAnchor: mv.source_anchor,
      attrs: withoutSecrets(mvAttrs),
      contributedBy,
      deleted: mv.deleted === 1,
      pendingExport: mv.pending_export === 1,
      updatedAt: mv.updated_at,
    },
    connectorSpace: cs.map((c) => ({ connector: c.connector, anchor: c.anchor, dn: c.dn, objectType: c.object_type, pending: c.pending, attrs: withoutSecrets(parseJsonAttrs(c.attrs)) })),
    cloud: exp ? { resourceId: exp.cloud_id, objectType: exp.object_type, lastError: exp.last_error, updatedAt: exp.updated_at } : null,
    passwords: passwords.map((r) => ({ at: r.at, status: r.status, reason: r.reason ?? null, source: r.source ?? null })),
  };
}
