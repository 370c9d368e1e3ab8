/**
 * Saving a connector's secret the one way both `idsync credentials set` and the console's "update
 * credentials" form do it: tested against its directory first (the working secret is kept when the
 * new one is refused), then event 6201, or 6202 with the directory's reason. The secret itself never
 * reaches an event, an error message or an answer.
 */
import { toIdsyncError } from '../core/errors.js';
import { EVENTS } from '../events/catalog.js';
import type { EventLog } from '../events/log.js';
import type { CredentialStore } from './store.js';

export interface UpdateCredentialOptions {
  /** Test the secret against its directory before saving (default true). */
  validate?: boolean;
  /** Throws when the directory refuses the secret (connectors/registry.ts testConnectorSecret). */
  test(secret: string): Promise<void>;
}

export async function updateCredential(store: CredentialStore, events: EventLog, name: string, secret: string, opts: UpdateCredentialOptions): Promise<{ validated: boolean; changedAt: string | null }> {
  const validate = opts.validate !== false;
  try {
    if (validate) await store.setValidated(name, secret, opts.test);
    else store.set(name, secret);
  } catch (err) {
    const e = toIdsyncError(err);
    if (e.code === 'CREDENTIAL_INVALID') events.emit(EVENTS.CREDENTIAL_REFUSED, { connector: name, error: e.message, ...(e.details.causeCode ? { code: e.details.causeCode } : {}) });
    throw e;
  }
  events.emit(EVENTS.CREDENTIAL_CHANGED, { connector: name, validated: validate });
  return { validated: validate, changedAt: store.info(name)?.changedAt ?? null };
}
