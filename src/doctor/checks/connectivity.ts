/**
 * Connectivity, TLS and credentials: the live test of every source connector and of the cloud
 * (`testConnector`, which also records the result in the credential store), each failure mapped to
 * the event an administrator knows from the incumbent or from `idsync events`.
 */
import { classifyFailure } from '../../connectors/cloud/client.js';
import { CLOUD_CONNECTOR, connectorNeedsSecret, testConnector } from '../../connectors/registry.js';
import { toIdsyncError, type IdsyncError } from '../../core/errors.js';
import type { CredentialInfo } from '../../credentials/store.js';
import { EVENTS } from '../../events/catalog.js';
import { redactString } from '../../events/redact.js';
import { LdapBindError } from '../../ldap/errors.js';
import type { DoctorCheck, DoctorContext, Finding } from '../types.js';

interface Outcome {
  name: string;
  url: string;
  before: CredentialInfo | undefined;
  error?: IdsyncError;
}

const AUTH_CODES = new Set(['LDAP_BIND_FAILED', 'CLOUD_AUTH_FAILED', 'CREDENTIAL_MISSING', 'CREDENTIAL_INVALID']);

/** Maps a failed connector test to a finding with its event ID, cause and fix. */
export function connectivityFinding(name: string, url: string, e: IdsyncError): Finding {
  const cause = redactString(e.message);
  const base = { check: 'connectivity', target: name, status: 'error' as const };
  switch (e.code) {
    case 'CREDENTIAL_MISSING':
      return { ...base, message: `${name}: no credential is stored`, cause, fix: `idsync credentials set ${name}` };
    case 'LDAP_BIND_FAILED':
      // The class says why (AD's sub-code, read once by the LDAP client): no message matching here.
      if (e instanceof LdapBindError && e.wrongCredentials) {
        return {
          ...base,
          eventId: EVENTS.AUTH_USER_OR_PASSWORD_INCORRECT.id,
          message: `${name}: the user name or password is incorrect (${url})`,
          cause,
          fix: `idsync credentials set ${name}`,
        };
      }
      return { ...base, eventId: EVENTS.CONNECTOR_BIND_FAILED.id, message: `${name}: the directory refused the bind (${url})`, cause, fix: `${e.hint ?? 'Fix the service account.'} Then: idsync credentials test ${name}` };
    case 'LDAP_UNREACHABLE':
    case 'CLOUD_UNREACHABLE':
      return {
        ...base,
        eventId: EVENTS.CONNECTOR_UNREACHABLE.id,
        message: `${name}: cannot reach ${url}`,
        cause,
        fix: `Start the server or fix the network path / URL (${name === CLOUD_CONNECTOR ? 'cloud.url' : `connector ${name} url`}), then: idsync credentials test ${name}`,
      };
    case 'LDAP_TLS_FAILED':
      return { ...base, eventId: EVENTS.CONNECTOR_TLS_FAILED.id, message: `${name}: TLS to ${url} failed`, cause, fix: `${e.hint ?? 'Fix the TLS settings.'} Then: idsync credentials test ${name}` };
    case 'CLOUD_UNAVAILABLE':
    case 'CLOUD_SERVER_ERROR':
      return {
        ...base,
        eventId: EVENTS.CLOUD_UNAVAILABLE.id,
        message: `cloud: the cloud directory is unavailable (${url}); nothing was refused`,
        cause,
        fix: 'Nothing to change on this side: idsync retries by itself (honouring Retry-After) and queued work waits. Check the cloud directory\'s status.',
      };
    case 'CLOUD_AUTH_FAILED':
      if (classifyFailure(e) === 'locked') {
        return {
          ...base,
          eventId: EVENTS.CLOUD_ACCOUNT_LOCKED.id,
          message: `cloud: the cloud account is locked for ${String(e.details.lockedSeconds)} s; the password was not checked (${url})`,
          cause,
          fix: `Wait ${String(e.details.lockedSeconds)} s: idsync tries again by itself; retyping the password sooner cannot help.`,
        };
      }
      if (e.details.recorded === true) {
        // Reported from the store: doctor does not present a refused secret again.
        return {
          ...base,
          eventId: EVENTS.CLOUD_ACCESS_DENIED.id,
          message: `cloud: the cloud directory refused the stored credential at ${String(e.details.refusedAt)}; it is not presented again until it changes (${url})`,
          cause: `${cause} (the incumbent logs this as events 115 and 0: "the user name or password is incorrect")`,
          fix: 'idsync credentials set cloud',
        };
      }
      return {
        ...base,
        eventId: EVENTS.CLOUD_ACCESS_DENIED.id,
        message: `cloud: access to the cloud directory has been denied (${url})`,
        cause: `${cause} (the incumbent logs this as events 115 and 0: "the user name or password is incorrect")`,
        fix: 'idsync credentials set cloud',
      };
    default:
      return { ...base, message: `${name}: the test failed (${e.code})`, cause, ...(e.hint ? { fix: e.hint } : {}) };
  }
}

function credentialFinding(o: Outcome, needsSecret: boolean): Finding | undefined {
  if (!needsSecret) return undefined;
  const base = { check: 'credentials', target: o.name };
  if (o.error?.code === 'CREDENTIAL_MISSING' || !o.before) {
    return { ...base, status: 'error', message: `${o.name}: no credential is stored`, cause: 'The connector cannot sign in without one.', fix: `idsync credentials set ${o.name}` };
  }
  const changed = `changed ${o.before.changedAt}`;
  const previous = o.before.lastTestAt ? `; before this check its last test ${o.before.lastTestOk ? 'succeeded' : `failed (${o.before.lastErrorCode ?? 'error'})`} at ${o.before.lastTestAt}` : '; never tested before';
  if (!o.error) return { ...base, status: 'ok', message: `${o.name}: the stored credential works (${changed}${previous})` };
  if (AUTH_CODES.has(o.error.code) && classifyFailure(o.error) !== 'locked') {
    return {
      ...base,
      status: 'error',
      eventId: o.error.code === 'CLOUD_AUTH_FAILED' ? EVENTS.CLOUD_ACCESS_DENIED.id : o.error instanceof LdapBindError && o.error.wrongCredentials ? EVENTS.AUTH_USER_OR_PASSWORD_INCORRECT.id : EVENTS.CONNECTOR_BIND_FAILED.id,
      message: `${o.name}: the stored credential is refused (${changed}${previous})`,
      cause: redactString(o.error.message),
      fix: `idsync credentials set ${o.name}`,
    };
  }
  return {
    ...base,
    status: 'warning',
    message: `${o.name}: the stored credential could not be tested now (${o.error.code}) (${changed}${previous})`,
    cause: 'The directory could not be reached; see the connectivity finding.',
    fix: `idsync credentials test ${o.name}`,
  };
}

export const connectivityCheck: DoctorCheck = {
  name: 'connectivity',
  async run(d: DoctorContext): Promise<Finding[]> {
    const { loaded, ctx } = d;
    const targets = [
      ...loaded.config.connectors.map((c) => ({ name: c.name, url: c.type === 'ldif' ? loaded.resolvePath(c.path) : c.url })),
      { name: CLOUD_CONNECTOR, url: loaded.config.cloud.url },
    ];
    const outcomes: Outcome[] = await Promise.all(
      targets.map(async (t): Promise<Outcome> => {
        const before = ctx.credentials.info(t.name);
        try {
          await testConnector(loaded, t.name, ctx.credentials);
          return { ...t, before };
        } catch (err) {
          return { ...t, before, error: toIdsyncError(err) };
        }
      }),
    );
    const findings: Finding[] = [];
    for (const o of outcomes) {
      findings.push(o.error ? connectivityFinding(o.name, o.url, o.error) : { check: 'connectivity', target: o.name, status: 'ok', message: `${o.name}: reached ${o.url}${connectorNeedsSecret(loaded, o.name) ? ' and signed in' : ''}` });
      const cred = credentialFinding(o, connectorNeedsSecret(loaded, o.name));
      if (cred && !(o.error?.code === 'CREDENTIAL_MISSING')) findings.push(cred);
    }
    return findings;
  },
};
