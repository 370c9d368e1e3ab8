/** What the full import's reader (index.ts) and its thread (read-worker.ts) say to each other. */
import type { LdapConnectorConfig } from '../../config/schema.js';
import { IdsyncError, type ErrorCode } from '../../core/errors.js';
import { LdapBindError, LdapSearchError, LdapTlsError, LdapUnreachableError, type LdapBindReason, type LdapSearchReason } from '../../ldap/errors.js';
import type { PreparedPage } from '../staging.js';

/** The connectors whose full import is read on a thread of its own: the directory ones (AD, LDAP). */
export type OffThreadConfig = LdapConnectorConfig;

export type ToReader =
  /** Begin a full import. The secret was resolved by the caller, as a connect on its thread would. */
  | { type: 'start'; cfg: OffThreadConfig; secret: string | undefined }
  /** Read the next page (only when asked: a page is dated by when it was asked for, engine/import.ts). */
  | { type: 'next' }
  /** End the import early: its connection is closed, and the thread waits for the next start. */
  | { type: 'stop' };

export type FromReader =
  | { type: 'page'; page: PreparedPage }
  | { type: 'done' }
  | { type: 'stopped' }
  | { type: 'error'; error: WireError };

/** An error as it crosses threads: the code, the words, and the LDAP classes' own fields. */
export interface WireError {
  name: string;
  code: ErrorCode;
  message: string;
  hint: string | undefined;
  details: Record<string, unknown>;
  fields: Record<string, string | undefined>;
}

export function errorToWire(err: unknown): WireError {
  const e = err instanceof IdsyncError ? err : new IdsyncError('INTERNAL', err instanceof Error ? err.message : String(err));
  const fields: Record<string, string | undefined> = {};
  if (e instanceof LdapTlsError) Object.assign(fields, { url: e.url, reason: e.reason });
  else if (e instanceof LdapUnreachableError) fields.url = e.url;
  else if (e instanceof LdapBindError) Object.assign(fields, { bindDn: e.bindDn, reason: e.reason, adSubCode: e.adSubCode });
  else if (e instanceof LdapSearchError) Object.assign(fields, { base: e.base, filter: e.filter, reason: e.reason });
  return { name: e.name, code: e.code, message: e.message, hint: e.hint, details: plainDetails(e.details), fields };
}

/**
 * Details as plain data (they are secret-free by convention, not always cloneable): what cannot
 * cross is dropped rather than leaving the event loop waiting for an answer that never comes.
 */
function plainDetails(details: Record<string, unknown>): Record<string, unknown> {
  try {
    return JSON.parse(JSON.stringify(details)) as Record<string, unknown>;
  } catch {
    return {};
  }
}

/** The error as the connector threw it on its own thread: same class, code, words and fields. */
export function errorFromWire(w: WireError): IdsyncError {
  const options = { hint: w.hint, details: w.details };
  const f = w.fields;
  switch (w.name) {
    case 'LdapTlsError':
      return new LdapTlsError(w.message, f.url ?? '', f.reason ?? '', options);
    case 'LdapUnreachableError':
      return new LdapUnreachableError(w.message, f.url ?? '', options);
    case 'LdapBindError':
      return new LdapBindError(w.message, f.bindDn, (f.reason ?? 'refused') as LdapBindReason, f.adSubCode, options);
    case 'LdapSearchError':
      return new LdapSearchError(w.message, f.base, f.filter, (f.reason ?? 'other') as LdapSearchReason, options);
    default:
      return new IdsyncError(w.code, w.message, options);
  }
}
