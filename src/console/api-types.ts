/**
 * The typed API between the console pages (webui/*.js, checked by tsc through JSDoc imports of
 * these types) and the servers (src/console/plugin.ts, src/cloud/portal/plugin.ts). Type-only:
 * nothing here exists at run time.
 */
import type { EventRecord } from '../events/log.js';
import type { RunRecord } from '../engine/runs.js';
import type { HealthReport } from '../service/health.js';

export interface ApiErrorBody {
  error: { code: string; message: string };
}

/** GET <prefix>/api/session and POST <prefix>/api/signin. */
export interface SessionInfo {
  user: string;
  /** Send it back as `x-csrf-token` on every POST. */
  csrf: string;
  role?: string;
}

export interface SignInRequest {
  username: string;
  password: string;
}

// ----------------------------------------------------------------------------------------------
// The sync console (/console)
// ----------------------------------------------------------------------------------------------

export interface DegradedWithFix {
  check: string;
  reason: string;
  code?: string;
  /** What to do, naming the command. */
  fix: string;
}

export interface ConnectorLastCycle {
  connector: string;
  step: string;
  status: string;
  adds: number;
  updates: number;
  deletes: number;
  unchanged: number;
  errors: number;
}

/** GET /console/api/overview */
export interface Overview {
  health: HealthReport;
  degraded: DegradedWithFix[];
  lastRun: { id: number; status: string; startedAt: string; endedAt: string | null; steps: ConnectorLastCycle[] } | null;
}

/** GET /console/api/runs/:id: each error with the metaverse object it names, when known. */
export interface RunDetail extends Omit<RunRecord, 'errors'> {
  errors: (RunRecord['errors'][number] & { mvId: number | null })[];
}

/** GET /console/api/runs */
export interface RunList {
  runs: RunRecord[];
}

export type SearchOperator = 'eq' | 'sw';

/** GET /console/api/search?attr=&op=eq|sw&value=&after=&limit= */
export interface SearchResult {
  objects: { id: number; objectType: string; sourceAnchor: string; display: string; deleted: boolean }[];
  /** Pass as `after` for the next page; null on the last page. */
  next: number | null;
}

export type AttrMap = Record<string, unknown>;

/** GET /console/api/objects/:id: source entry -> connector-space object -> metaverse -> cloud. */
export interface Lineage {
  metaverse: { id: number; objectType: string; sourceAnchor: string; attrs: AttrMap; deleted: boolean; pendingExport: boolean; updatedAt: string };
  connectorSpace: { connector: string; anchor: string; dn: string; objectType: string; pending: string | null; attrs: AttrMap }[];
  cloud: { resourceId: string | null; objectType: string; lastError: string | null; updatedAt: string } | null;
}

/** GET /console/api/events?level=&id=&limit= */
export interface EventList {
  events: EventRecord[];
}

// ----------------------------------------------------------------------------------------------
// The cloud portal (/portal)
// ----------------------------------------------------------------------------------------------

export interface PortalUserRow {
  id: string;
  userName: string;
  displayName: string | null;
  active: boolean;
  externalId: string | null;
}

/** GET /portal/api/users?q= */
export interface PortalUserList {
  users: PortalUserRow[];
}

/** GET /portal/api/users/:id */
export interface PortalUser extends PortalUserRow {
  created: string;
  lastModified: string;
  groups: { id: string; displayName: string }[];
  /** The SCIM document without any password or hash. */
  attributes: AttrMap;
}

export interface PortalGroupRow {
  id: string;
  displayName: string;
  externalId: string | null;
  memberCount: number;
}

/** GET /portal/api/groups?q= */
export interface PortalGroupList {
  groups: PortalGroupRow[];
}

/** GET /portal/api/groups/:id */
export interface PortalGroup extends PortalGroupRow {
  members: { id: string; type: string; display: string }[];
}

export interface PortalAuditRow {
  id: number;
  at: string;
  type: string;
  actor: string | null;
  subject: string | null;
  ip: string | null;
  result: string;
  reason: string;
}

/** GET /portal/api/audit?type=&subject=&result= */
export interface PortalAuditList {
  records: PortalAuditRow[];
}

/** GET /portal/api/locked */
export interface PortalLockedList {
  locked: { name: string; ip: string; failures: number; lockedUntil: string }[];
}

/** GET /portal/api/sync-status */
export interface PortalSyncStatus {
  accounts: { name: string; kind: 'account' | 'client'; lastExport: string | null; lastPasswordBatch: string | null; silentHours: number | null; warning: boolean }[];
}
