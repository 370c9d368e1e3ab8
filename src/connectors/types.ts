/**
 * The contract every source connector implements. The engine knows nothing about LDAP, AD or LDIF:
 * it asks a connector to test its credential and to stream the objects in scope, and stages what it
 * gets in the connector space. Adding a connector = a folder under src/connectors/ plus one line in
 * src/connectors/registry.ts.
 */

export type ObjectType = 'user' | 'group';

/**
 * One object as read from a source directory.
 * - `anchor` is immutable for the object's life (AD objectGUID as base64 — the incumbent's
 *   ImmutableId — LDAP entryUUID as text). It becomes the cloud object's externalId.
 * - `attributes` keys are lower-case attribute names; values are always arrays of strings
 *   (binary values are base64). Only attributes the connector was asked for appear.
 * - Group members are DNs in `attributes.member` (groupOfNames, AD) or `attributes.uniquemember`
 *   (groupOfUniqueNames); the engine resolves them through the connector space.
 */
export interface SourceObject {
  anchor: string;
  objectType: ObjectType;
  dn: string;
  attributes: Record<string, string[]>;
  /**
   * A group's members with the anchor of the object each one points at, when the directory says
   * (AD's extended DN control). The engine then keys the membership by that anchor: it follows
   * the member through renames and moves, and a new object that takes over the DN is not a
   * member. Absent: members are the DNs in `attributes.member`/`uniquemember`.
   */
  members?: { dn: string; anchor?: string }[];
}

/**
 * What a full import yields: objects, in pages, streamed (never the whole directory in memory).
 * A page is read from the directory when it is asked for (the engine reads one page ahead itself):
 * the password hashes in it are dated by that moment (engine/import.ts readAhead), so a source
 * must not hand out entries it read before the page was asked for.
 */
export type ImportStream = AsyncIterable<SourceObject[]>;

/** One change seen by a delta import. */
export type DeltaChange =
  /** The object's whole current state (not only the changed attributes), in scope. */
  | { kind: 'upsert'; object: SourceObject }
  /**
   * Deleted in the source, or moved out of scope. The engine ignores anchors it does not know.
   * `gone`: the object was deleted (a tombstone or a logged delete), not only moved out of scope.
   */
  | { kind: 'delete'; anchor: string; dn?: string; gone?: boolean };

export interface DeltaImport {
  /** The changes, streamed in pages. */
  pages: AsyncIterable<DeltaChange[]>;
  /** The watermark that covers every change streamed; read after `pages` is exhausted. */
  watermark(): string;
}

export interface SourceConnector {
  readonly name: string;
  readonly kind: string;
  /** Connects and authenticates with the current credential; throws an IdsyncError saying why not. */
  test(): Promise<void>;
  /** Streams every in-scope user and group. */
  fullImport(): ImportStream;
  /**
   * The directory's current watermark, read BEFORE a full import starts (so a change made during
   * the import is seen again by the next delta, never missed). Absent: the connector has no delta.
   */
  currentWatermark?(): Promise<string>;
  /**
   * Changes since `watermark`. Throws IdsyncError WATERMARK_INVALID when the watermark expired or
   * cannot be used: the engine then runs a full import and records event 6005.
   */
  deltaImport?(watermark: string): DeltaImport;
  /**
   * Whether a delta import sees deletions. False (OpenLDAP without the accesslog): the engine
   * runs a full import every `fullImportIntervalMs` (`delta.fullImportInterval`) to find them.
   */
  readonly deltaSeesDeletions?: boolean;
  readonly fullImportIntervalMs?: number;
  /** Releases connections. Safe to call twice. */
  close(): Promise<void>;
}

/** Reads a connector's secret at use time (never cached by the connector; see DESIGN.md §1). */
export type SecretResolver = () => Promise<string | undefined>;

/**
 * One object the engine wants a target to hold: the target's own resource, made by the outbound
 * flow. The engine plans (what to add, replace, delete, in which order); the target connector alone
 * knows its wire format (SCIM: src/connectors/cloud/target.ts).
 */
export interface TargetWrite {
  objectType: ObjectType;
  /** The target's id when the object was exported before (a replace); null: an add. */
  targetId: string | null;
  /**
   * The resource as JSON text (the engine made it once, for its hash): sent as it is. Text, not
   * an object, so a write in flight holds one string rather than the resource's objects.
   */
  json: string;
}

/** What became of one write. `conflict` and `not-found` are the engine's to resolve (adopt, re-create). */
export type TargetOutcome =
  | { kind: 'ok'; targetId: string }
  | { kind: 'conflict' | 'not-found' | 'rejected' | 'server-error'; status: number; detail: string };

export interface TargetConnector {
  readonly name: string;
  /**
   * Adds and replaces in as few round trips as the target allows (SCIM Bulk): one outcome per
   * write, in order. `undefined`: the target has no batch operation; the engine writes one by one.
   * Throws an IdsyncError when the batch as a whole failed (nothing is known of its writes).
   */
  writeBatch(writes: TargetWrite[]): Promise<TargetOutcome[] | undefined>;
  /** One add or replace. */
  write(w: TargetWrite): Promise<TargetOutcome>;
  /** Deletes the object, or disables it (users); an object already gone counts as done. */
  remove(objectType: ObjectType, targetId: string, how: 'delete' | 'disable'): Promise<TargetOutcome>;
  /** The first object whose attribute equals value (`externalId`, `userName`, or a user's `mail`). */
  find(objectType: ObjectType, attribute: 'externalId' | 'userName' | 'mail', value: string): Promise<{ targetId: string; externalId?: string } | undefined>;
}
