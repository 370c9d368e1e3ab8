/**
 * Import: stages what a source connector streams into its connector space. An object whose content
 * did not change is not written (a run that changes nothing writes nothing); changed objects get a
 * pending import change for the sync step. Objects not seen by a complete full import become
 * pending deletes — only after the whole stream succeeded, so a failed import never deletes. A
 * delta import stages whole changed objects and explicit deletions the same way.
 */
import type { DeltaChange, SourceObject } from '../connectors/types.js';
import { cleanAttributeValues, stripControlCharacters } from '../core/attribute-values.js';
import { dropSecretAttributes } from '../core/secret-attributes.js';
import { normalizeDn } from '../ldap/dn.js';
import type { Database } from '../store/database.js';
import { contentHash } from './stable-hash.js';
import type { StepCounts } from './runs.js';

const MEMBER_ATTRIBUTES = ['member', 'uniquemember'] as const;

export function safeNormalizeDn(dn: string): string {
  try {
    return normalizeDn(dn);
  } catch {
    return dn.toLowerCase();
  }
}

export function memberDns(o: SourceObject): string[] {
  const out = new Set<string>();
  for (const a of MEMBER_ATTRIBUTES) for (const dn of o.attributes[a] ?? []) out.add(safeNormalizeDn(dn));
  return [...out];
}

/** What the control-character rule removed during one staging (event 6006). */
export interface CleanedValues {
  objects: number;
  values: number;
  first?: { dn: string; attribute: string };
}

export class ImportStager {
  /** Values cleaned of control characters by this stager (core/attribute-values.ts). */
  readonly cleaned: CleanedValues = { objects: 0, values: 0 };
  private readonly lookup;
  private readonly insert;
  private readonly update;
  private readonly markSeen;
  private readonly deleteMembers;
  private readonly insertMember;
  private readonly anchorByDn;
  private readonly renameMember;
  private readonly markDeleted;

  constructor(
    private readonly db: Database,
    private readonly connector: string,
    /** Rewrite group member DNs when a member is renamed (the source keeps referential integrity, as AD does). */
    private readonly followRenames = false,
  ) {
    db.exec('CREATE TEMP TABLE IF NOT EXISTS import_seen (connector TEXT NOT NULL, anchor TEXT NOT NULL, PRIMARY KEY (connector, anchor)) WITHOUT ROWID');
    db.prepare('DELETE FROM temp.import_seen WHERE connector = ?').run(connector);
    this.lookup = db.prepare<[string, string], { hash: string; pending: string | null; dn_norm: string }>(
      'SELECT hash, pending, dn_norm FROM cs_objects WHERE connector = ? AND anchor = ?',
    );
    this.renameMember = db.prepare('UPDATE OR IGNORE cs_members SET member_dn = ? WHERE connector = ? AND member_dn = ?');
    this.insert = db.prepare(
      `INSERT INTO cs_objects (connector, anchor, object_type, dn, dn_norm, attrs, hash, pending) VALUES (?, ?, ?, ?, ?, ?, ?, 'add')`,
    );
    this.update = db.prepare(
      `UPDATE cs_objects SET object_type = ?, dn = ?, dn_norm = ?, attrs = ?, hash = ?,
         pending = CASE WHEN pending = 'add' THEN 'add' ELSE 'update' END
       WHERE connector = ? AND anchor = ?`,
    );
    this.markSeen = db.prepare('INSERT OR IGNORE INTO temp.import_seen (connector, anchor) VALUES (?, ?)');
    this.deleteMembers = db.prepare('DELETE FROM cs_members WHERE connector = ? AND group_anchor = ?');
    this.insertMember = db.prepare('INSERT OR IGNORE INTO cs_members (connector, group_anchor, member_dn) VALUES (?, ?, ?)');
    this.anchorByDn = db.prepare<[string, string], { anchor: string }>('SELECT anchor FROM cs_objects WHERE connector = ? AND dn_norm = ?');
    this.markDeleted = db.prepare("UPDATE cs_objects SET pending = 'delete' WHERE connector = ? AND anchor = ? AND (pending IS NULL OR pending <> 'delete')");
  }

  /** Stages one page of a full import in one transaction. */
  stagePage(objects: SourceObject[], counts: StepCounts): void {
    this.db.transaction(() => {
      for (const o of objects) {
        this.markSeen.run(this.connector, o.anchor);
        this.stageObject(o, counts);
      }
    })();
  }

  /** Stages one page of a delta import: whole objects that changed, and deletions. */
  stageDelta(changes: DeltaChange[], counts: StepCounts): void {
    this.db.transaction(() => {
      for (const c of changes) {
        if (c.kind === 'upsert') {
          this.stageObject(c.object, counts);
          continue;
        }
        const anchor = c.anchor || (c.dn ? this.anchorByDn.get(this.connector, safeNormalizeDn(c.dn))?.anchor : undefined);
        if (!anchor) continue; // never staged (e.g. out of scope all along)
        if (this.markDeleted.run(this.connector, anchor).changes > 0) counts.deletes++;
      }
    })();
  }

  private stageObject(o: SourceObject, counts: StepCounts): void {
    // The last gate before the connector space: whatever path brought the object here, no secret
    // attribute is staged (the import step took any NT hash out already).
    dropSecretAttributes(o.attributes);
    // The DN goes through the same rule as member values, so references to it still match.
    const dn = stripControlCharacters(o.dn);
    const c = cleanAttributeValues(o.attributes);
    if (dn !== o.dn) {
      o.dn = dn;
      c.values++;
      c.first ??= 'dn';
    }
    if (c.first !== undefined) {
      this.cleaned.objects++;
      this.cleaned.values += c.values;
      this.cleaned.first ??= { dn: o.dn, attribute: c.first };
    }
    const hash = contentHash({ t: o.objectType, dn: o.dn, a: sortedAttributes(o.attributes) });
    const existing = this.lookup.get(this.connector, o.anchor);
    if (existing && existing.hash === hash && existing.pending !== 'delete') {
      counts.unchanged++;
      return;
    }
    const dnNorm = safeNormalizeDn(o.dn);
    const attrs = JSON.stringify(o.attributes);
    if (!existing) {
      this.insert.run(this.connector, o.anchor, o.objectType, o.dn, dnNorm, attrs, hash);
      counts.adds++;
    } else {
      this.update.run(o.objectType, o.dn, dnNorm, attrs, hash, this.connector, o.anchor);
      counts.updates++;
      // Active Directory keeps references intact when an object is renamed or moved, but does not
      // touch the groups (a delta import does not bring them): follow the rename in their members.
      if (this.followRenames && existing.dn_norm !== dnNorm) this.renameMember.run(dnNorm, this.connector, existing.dn_norm);
    }
    // Member rows belong to groups: a new object has none, so only a changed one is cleared first.
    if (existing) this.deleteMembers.run(this.connector, o.anchor);
    if (o.objectType === 'group') for (const m of memberDns(o)) this.insertMember.run(this.connector, o.anchor, m);
  }

  /** After a complete full import: everything not seen is gone from the source (or out of scope). */
  markUnseenDeleted(counts: StepCounts): void {
    const info = this.db
      .prepare(
        `UPDATE cs_objects SET pending = 'delete'
         WHERE connector = ? AND (pending IS NULL OR pending <> 'delete')
           AND anchor NOT IN (SELECT anchor FROM temp.import_seen WHERE connector = ?)`,
      )
      .run(this.connector, this.connector);
    counts.deletes += info.changes;
    this.db.prepare('DELETE FROM temp.import_seen WHERE connector = ?').run(this.connector);
  }
}

function sortedAttributes(a: Record<string, string[]>): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const k of Object.keys(a).sort()) out[k] = [...a[k]!].sort();
  return out;
}
