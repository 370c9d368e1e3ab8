/**
 * The one way idsync opens an LDAP connection: URL + TLS settings + bind with a secret read at
 * use time. Every failure becomes one of the classes of errors.ts (codes LDAP_UNREACHABLE,
 * LDAP_TLS_FAILED, LDAP_BIND_FAILED, LDAP_SEARCH_FAILED) that says what went wrong and what to do,
 * with typed fields. Messages never contain the password.
 */
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import tls from 'node:tls';
import { Client, ConfidentialityRequiredError, InsufficientAccessError, InvalidCredentialsError, NoSuchObjectError, ResultCodeError, StrongAuthRequiredError } from 'ldapts';
import { IdsyncError } from '../core/errors.js';
import { LdapBindError, LdapSearchError, LdapTlsError, LdapUnreachableError, type LdapBindReason } from './errors.js';

export interface LdapTlsSettings {
  /** PEM file with the CA certificate(s). */
  ca?: string | undefined;
  startTls?: boolean | undefined;
  /** Name the server certificate must carry when it differs from the URL host. */
  serverName?: string | undefined;
  insecureSkipVerify?: boolean | undefined;
}

export interface LdapConnectionSettings {
  url: string;
  bindDn: string;
  tls?: LdapTlsSettings | undefined;
  /** Applies to connecting and to every operation. */
  timeoutMs?: number | undefined;
  /** Connector name, for messages and hints. */
  connectorName?: string | undefined;
}

export type SecretSource = () => Promise<string | undefined>;

interface ParsedUrl {
  secure: boolean;
  host: string;
  port: number;
}

export function parseLdapUrl(url: string): ParsedUrl {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new IdsyncError('CONFIG_INVALID', `"${url}" is not a valid LDAP URL`, { hint: 'Use ldap://host[:port] or ldaps://host[:port].' });
  }
  const scheme = u.protocol.replace(/:$/, '');
  if (scheme !== 'ldap' && scheme !== 'ldaps') {
    throw new IdsyncError('CONFIG_INVALID', `"${url}" is not an LDAP URL`, { hint: 'Use ldap://host[:port] or ldaps://host[:port].' });
  }
  let host = u.hostname || 'localhost';
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
  const secure = scheme === 'ldaps';
  return { secure, host, port: u.port ? Number(u.port) : secure ? 636 : 389 };
}

/** Node TLS options for a connection to `host`, honouring ca / serverName / insecureSkipVerify. */
export function buildTlsOptions(host: string, settings: LdapTlsSettings = {}): tls.ConnectionOptions {
  const opts: tls.ConnectionOptions = {};
  if (settings.ca) {
    try {
      opts.ca = readFileSync(settings.ca);
    } catch (err) {
      const reason = `cannot read the CA file ${settings.ca}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`;
      throw new LdapTlsError(reason, settings.ca ?? '', reason, {
        hint: 'Set tls.ca to a readable PEM file holding the CA certificate that signed the directory server certificate.',
        details: { ca: settings.ca },
        cause: err,
      });
    }
  }
  if (settings.insecureSkipVerify) {
    opts.rejectUnauthorized = false;
  } else {
    opts.rejectUnauthorized = true;
    const expected = settings.serverName ?? host;
    opts.checkServerIdentity = (_hostname, cert) => tls.checkServerIdentity(expected, cert);
  }
  const sni = settings.serverName ?? host;
  if (!isIP(sni)) opts.servername = sni;
  return opts;
}

const TLS_REASONS: Record<string, string> = {
  DEPTH_ZERO_SELF_SIGNED_CERT: 'the server certificate is self-signed',
  SELF_SIGNED_CERT_IN_CHAIN: 'the server certificate chain ends in a self-signed CA that is not trusted',
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'the server certificate is not signed by a trusted CA',
  UNABLE_TO_GET_ISSUER_CERT: 'the server certificate is not signed by a trusted CA',
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: 'the server certificate is not signed by a trusted CA',
  CERT_SIGNATURE_FAILURE: 'the server certificate signature does not verify',
  ERR_TLS_CERT_ALTNAME_INVALID: 'the server certificate name does not match the host (name mismatch)',
  CERT_HAS_EXPIRED: 'the server certificate has expired',
  CERT_NOT_YET_VALID: 'the server certificate is not valid yet',
  CERT_REVOKED: 'the server certificate has been revoked',
  ERR_SSL_WRONG_VERSION_NUMBER: 'the server did not answer with TLS (is this a plain ldap:// port?)',
  EPROTO: 'the TLS handshake failed',
};

const NET_REASONS: Record<string, string> = {
  ECONNREFUSED: 'connection refused',
  ECONNRESET: 'connection reset by the server',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  ENOTFOUND: 'host name not found (DNS)',
  EAI_AGAIN: 'temporary DNS failure',
  ETIMEDOUT: 'connection timed out',
  EPIPE: 'connection closed by the server',
};

/** AD's "data XXX" sub-codes of invalidCredentials (49): the reason, and its words. */
const AD_BIND_DATA: Record<string, { reason: LdapBindReason; words: string }> = {
  '525': { reason: 'user-not-found', words: 'user not found' },
  '52e': { reason: 'invalid-credentials', words: 'invalid credentials' },
  '530': { reason: 'logon-not-permitted', words: 'logon not permitted at this time' },
  '531': { reason: 'logon-not-permitted', words: 'logon not permitted from this workstation' },
  '532': { reason: 'password-expired', words: 'password expired' },
  '533': { reason: 'account-disabled', words: 'account disabled' },
  '568': { reason: 'too-many-sids', words: 'too many security IDs' },
  '701': { reason: 'account-expired', words: 'account expired' },
  '773': { reason: 'must-reset-password', words: 'the user must reset the password' },
  '775': { reason: 'account-locked', words: 'account locked out' },
};

export interface LdapErrorContext {
  url: string;
  bindDn?: string | undefined;
  phase: 'connect' | 'starttls' | 'bind' | 'search';
  base?: string | undefined;
  filter?: string | undefined;
  connectorName?: string | undefined;
}

function errCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

function tlsHint(reason: string): string {
  if (reason.includes('name mismatch')) {
    return 'Connect with the host name the certificate was issued for, or set tls.serverName to the name in the certificate.';
  }
  if (reason.includes('expired') || reason.includes('not valid yet')) {
    return 'Renew the directory server certificate (or check this machine\'s clock).';
  }
  if (reason.includes('plain ldap')) return 'Use ldaps:// only on the TLS port (636), or ldap:// with tls.startTls: true on 389.';
  return 'Set tls.ca to the PEM file of the CA that signed the directory server certificate (and tls.serverName if its name differs from the URL host).';
}

/** Turns anything ldapts or the socket layer threw into an IdsyncError with a clear message and hint. */
export function mapLdapError(err: unknown, ctx: LdapErrorContext): IdsyncError {
  if (err instanceof IdsyncError) return err;
  const code = errCode(err);
  const message = err instanceof Error ? err.message : String(err);
  const who = ctx.connectorName ? `connector "${ctx.connectorName}": ` : '';
  const details = { url: ctx.url, bindDn: ctx.bindDn, base: ctx.base, filter: ctx.filter, connector: ctx.connectorName, cause: code ?? (err instanceof Error ? err.name : undefined) };

  // TLS / certificates
  const tlsReason =
    (code && TLS_REASONS[code]) ??
    (code?.startsWith('ERR_SSL_') || code?.startsWith('ERR_TLS_') ? `TLS failed (${code})` : undefined) ??
    (/certificate|self[- ]signed|SSL routines|wrong version number/i.test(message) ? `TLS failed: ${message.split('\n')[0]}` : undefined);
  if (tlsReason && ctx.phase !== 'search') {
    return new LdapTlsError(`${who}TLS to ${ctx.url} failed: ${tlsReason}`, ctx.url, tlsReason, { hint: tlsHint(tlsReason), details, cause: err });
  }
  if (ctx.phase === 'starttls' && err instanceof ResultCodeError) {
    return new LdapTlsError(`${who}${ctx.url} refused StartTLS: ${message}`, ctx.url, 'the server refused StartTLS', {
      hint: 'Enable TLS on the directory server, or use ldaps:// if it only offers TLS on port 636.',
      details,
      cause: err,
    });
  }

  // network
  const netReason = (code && NET_REASONS[code]) ?? (message === 'Connection timeout' ? `no answer within the timeout` : undefined);
  if (netReason && ctx.phase !== 'search') {
    const plainPort = ctx.url.startsWith('ldaps:') && (code === 'ECONNRESET' || code === 'EPIPE');
    return new LdapUnreachableError(`${who}cannot reach ${ctx.url}: ${netReason}`, ctx.url, {
      hint: plainPort
        ? 'The server closed the connection during the TLS handshake: is this a plain LDAP port? Use ldaps:// only on the TLS port (636), or ldap:// with tls.startTls.'
        : 'Check the URL (host and port), that the directory server is running, and that no firewall blocks the port.',
      details,
      cause: err,
    });
  }
  if (/Operation timed out/.test(message)) {
    return new LdapUnreachableError(`${who}${ctx.url} did not answer ${ctx.phase === 'search' ? `a search under ${ctx.base}` : `the ${ctx.phase}`} within the timeout`, ctx.url, {
      hint: 'Check that the directory server is healthy; raise timeoutMs for very large directories.',
      details,
      cause: err,
    });
  }
  if (netReason || /Connection closed|Socket error|socket connection not established/i.test(message)) {
    return new LdapUnreachableError(`${who}lost the connection to ${ctx.url}${netReason ? `: ${netReason}` : ''}`, ctx.url, {
      hint: 'The directory server closed the connection; check that it is running and retry.',
      details,
      cause: err,
    });
  }

  // bind
  if (ctx.phase === 'bind' && err instanceof ResultCodeError) {
    if (err instanceof InvalidCredentialsError) {
      // AD says why only in the diagnostic text ("... data 52e, ..."): read once, here.
      const data = /data ([0-9a-f]{3})/i.exec(message)?.[1]?.toLowerCase();
      const known = (data && AD_BIND_DATA[data]) || { reason: 'invalid-credentials' as const, words: 'invalid credentials' };
      return new LdapBindError(`${who}the directory refused the bind for ${ctx.bindDn}: ${known.words}`, ctx.bindDn, known.reason, data, {
        hint:
          known.reason === 'invalid-credentials' || known.reason === 'user-not-found'
            ? `Check bindDn and set the right password with \`idsync credentials set${ctx.connectorName ? ` ${ctx.connectorName}` : ''}\`.`
            : 'Fix the service account in the directory (enable, unlock or reset it), then retry.',
        details: { ...details, adReason: data },
        cause: err,
      });
    }
    if (err instanceof StrongAuthRequiredError || err instanceof ConfidentialityRequiredError) {
      return new LdapBindError(`${who}the directory refused the bind for ${ctx.bindDn}: it requires an encrypted connection`, ctx.bindDn, 'encryption-required', undefined, {
        hint: 'Use ldaps:// or set tls.startTls: true (recommended: never send a password in clear text).',
        details,
        cause: err,
      });
    }
    return new LdapBindError(`${who}the directory refused the bind for ${ctx.bindDn}: ${message}`, ctx.bindDn, 'refused', undefined, {
      hint: 'Check bindDn (a DN, or user@domain for Active Directory) and the stored password.',
      details,
      cause: err,
    });
  }

  // search
  if (ctx.phase === 'search') {
    const noSuch = err instanceof NoSuchObjectError;
    const denied = err instanceof InsufficientAccessError;
    return new LdapSearchError(
      `${who}search under "${ctx.base}" with filter ${ctx.filter ?? '(objectClass=*)'} failed: ${noSuch ? 'no such object (the base DN does not exist)' : message}`,
      ctx.base,
      ctx.filter,
      noSuch ? 'no-such-object' : denied ? 'insufficient-access' : 'other',
      {
        hint: noSuch
          ? 'Check baseDn and scope.include: each must be an existing entry in the directory.'
          : denied
            ? 'The bind account may not read this subtree; grant it read access.'
            : 'Check the filter syntax (userFilter/groupFilter) and that the bind account may read the subtree.',
        details,
        cause: err,
      },
    );
  }
  return new LdapUnreachableError(`${who}${ctx.phase} with ${ctx.url} failed: ${message}`, ctx.url, { details, cause: err });
}

/** A bound ldapts client plus the settings that made it. */
export interface LdapConnection {
  client: Client;
  url: string;
  close(): Promise<void>;
}

/**
 * Connects (ldaps:// or ldap:// + optional StartTLS) and binds as settings.bindDn with the password
 * from `secret()` — read now, never cached.
 */
export async function connectLdap(settings: LdapConnectionSettings, secret: SecretSource): Promise<LdapConnection> {
  const { url, bindDn } = settings;
  const parsed = parseLdapUrl(url);
  const tlsSettings = settings.tls ?? {};
  const ctx = { url, bindDn, connectorName: settings.connectorName };
  const tlsOptions = parsed.secure || tlsSettings.startTls ? buildTlsOptions(parsed.host, tlsSettings) : undefined;
  const timeout = settings.timeoutMs ?? 15000;
  const client = new Client({
    url,
    connectTimeout: timeout,
    timeout,
    // ldapts treats any tlsOptions as "connect with TLS", so pass them only for ldaps://
    ...(parsed.secure ? { tlsOptions } : {}),
  });
  const fail = async (err: unknown, phase: LdapErrorContext['phase']): Promise<never> => {
    await client.unbind().catch(() => undefined);
    throw mapLdapError(err, { ...ctx, phase });
  };
  const password = await secret();
  if (password === undefined) {
    throw new IdsyncError('CREDENTIAL_MISSING', `${settings.connectorName ? `connector "${settings.connectorName}": ` : ''}no password is set for ${bindDn}`, {
      hint: `Set it with \`idsync credentials set${settings.connectorName ? ` ${settings.connectorName}` : ''}\`.`,
      details: { url, bindDn, connector: settings.connectorName },
    });
  }
  if (password === '') {
    // An empty password makes a simple bind "unauthenticated" (RFC 4513 5.1.2): it would "succeed".
    throw new LdapBindError(`${settings.connectorName ? `connector "${settings.connectorName}": ` : ''}refusing to bind as ${bindDn} with an empty password`, bindDn, 'empty-password', undefined, {
      hint: 'An empty password is an anonymous bind in LDAP. Store the real password of the bind account.',
      details: { url, bindDn, connector: settings.connectorName },
    });
  }
  if (!parsed.secure && tlsSettings.startTls) {
    try {
      await client.startTLS({ ...tlsOptions, host: tlsSettings.serverName ?? parsed.host });
    } catch (err) {
      return fail(err, 'starttls');
    }
  }
  try {
    await client.bind(bindDn, password);
  } catch (err) {
    // A refused TCP connect surfaces here (bind connects lazily).
    return fail(err, 'bind');
  }
  let closed = false;
  return {
    client,
    url,
    async close() {
      if (closed) return;
      closed = true;
      await client.unbind().catch(() => undefined);
    },
  };
}
