/**
 * Certificate expiry of every TLS endpoint: ldaps:// connectors, ldap:// with StartTLS, and an
 * https:// cloud. Connects without verification (so that an expired or untrusted certificate can
 * still be read; trust is the connectivity check's job) and reads the leaf's validity.
 */
import { connect as netConnect, isIP, type Socket } from 'node:net';
import { connect as tlsConnect, type PeerCertificate, type TLSSocket } from 'node:tls';
import { parseLdapUrl } from '../../ldap/client.js';
import { EVENTS } from '../../events/catalog.js';
import type { DoctorCheck, Finding } from '../types.js';

interface Endpoint {
  target: string;
  host: string;
  port: number;
  starttls: boolean;
  servername?: string;
  label: string;
}

const DAY = 86_400_000;

/** BER of an LDAP ExtendedRequest for StartTLS (OID 1.3.6.1.4.1.1466.20037), message id 1. */
const STARTTLS_OID = Buffer.from('1.3.6.1.4.1.1466.20037');
const STARTTLS_REQUEST = Buffer.concat([
  Buffer.from([0x30, 5 + 2 + STARTTLS_OID.length, 0x02, 0x01, 0x01, 0x77, 2 + STARTTLS_OID.length, 0x80, STARTTLS_OID.length]),
  STARTTLS_OID,
]);

function withTimeout<T>(p: Promise<T>, ms: number, what: string, onTimeout: () => void): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  return Promise.race([
    p,
    new Promise<T>((_, reject) => {
      t = setTimeout(() => {
        onTimeout();
        reject(new Error(`${what}: no answer within ${ms} ms`));
      }, ms);
    }),
  ]).finally(() => clearTimeout(t));
}

/** Plain connect + StartTLS extended operation; resolves with the socket ready for TLS. */
function startTls(host: string, port: number): { promise: Promise<Socket>; socket: Socket } {
  const socket = netConnect({ host, port });
  const promise = new Promise<Socket>((resolve, reject) => {
    socket.once('error', reject);
    socket.once('connect', () => socket.write(STARTTLS_REQUEST));
    let buf = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      // Wait for the whole ExtendedResponse (short form length is enough for this answer).
      if (buf.length < 2 || buf.length < 2 + (buf[1]! & 0x80 ? 0 : buf[1]!)) return;
      socket.off('data', onData);
      const i = buf.indexOf(0x78);
      // resultCode: ENUMERATED (0x0a) right after the ExtendedResponse tag and length.
      const rc = i >= 0 ? buf.subarray(i).indexOf(Buffer.from([0x0a, 0x01])) : -1;
      if (i < 0 || rc < 0 || buf[i + rc + 2] !== 0) {
        reject(new Error('the server refused StartTLS'));
        return;
      }
      resolve(socket);
    };
    socket.on('data', onData);
  });
  return { promise, socket };
}

export async function peerCertificate(ep: Pick<Endpoint, 'host' | 'port' | 'starttls' | 'servername'>, timeoutMs: number): Promise<PeerCertificate> {
  let plain: Socket | undefined;
  let tls: TLSSocket | undefined;
  const destroy = () => {
    tls?.destroy();
    plain?.destroy();
  };
  try {
    return await withTimeout(
      (async () => {
        if (ep.starttls) {
          const s = startTls(ep.host, ep.port);
          plain = s.socket;
          await s.promise;
        }
        return await new Promise<PeerCertificate>((resolve, reject) => {
          tls = tlsConnect({
            ...(plain ? { socket: plain } : { host: ep.host, port: ep.port }),
            rejectUnauthorized: false,
            ...(ep.servername && !isIP(ep.servername) ? { servername: ep.servername } : {}),
          });
          tls.once('secureConnect', () => resolve(tls!.getPeerCertificate()));
          tls.once('error', reject);
        });
      })(),
      timeoutMs,
      `${ep.host}:${ep.port}`,
      destroy,
    );
  } finally {
    destroy();
  }
}

export function endpoints(d: Parameters<DoctorCheck['run']>[0]): Endpoint[] {
  const out: Endpoint[] = [];
  for (const c of d.loaded.config.connectors) {
    if (c.type === 'ldif') continue;
    const u = parseLdapUrl(c.url);
    if (!u.secure && !c.tls.startTls) continue;
    out.push({ target: c.name, host: u.host, port: u.port, starttls: !u.secure, ...(c.tls.serverName || u.host ? { servername: c.tls.serverName ?? u.host } : {}), label: u.secure ? c.url : `${c.url} (StartTLS)` });
  }
  const cloud = new URL(d.loaded.config.cloud.url);
  if (cloud.protocol === 'https:') {
    const host = cloud.hostname.replace(/^\[|\]$/g, '');
    out.push({ target: 'cloud', host, port: cloud.port ? Number(cloud.port) : 443, starttls: false, servername: host, label: d.loaded.config.cloud.url });
  }
  return out;
}

export function expiryFinding(ep: Pick<Endpoint, 'target' | 'label'>, validFrom: Date, validTo: Date, now: number, warnDays: number, subject?: string): Finding {
  const base = { check: 'certificates', target: ep.target };
  const who = `the certificate of ${ep.label}${subject ? ` (${subject})` : ''}`;
  const days = Math.floor((validTo.getTime() - now) / DAY);
  if (validTo.getTime() <= now) {
    return { ...base, status: 'error', eventId: EVENTS.CONNECTOR_TLS_FAILED.id, message: `${who} expired on ${validTo.toISOString()}`, cause: 'TLS connections to this endpoint fail (certificate has expired).', fix: `Renew the server certificate on ${ep.label}, then: idsync credentials test ${ep.target}` };
  }
  if (validFrom.getTime() > now) {
    return { ...base, status: 'error', eventId: EVENTS.CONNECTOR_TLS_FAILED.id, message: `${who} is not valid before ${validFrom.toISOString()}`, cause: 'The certificate is not valid yet: a new certificate, or this machine\'s clock is behind.', fix: 'timedatectl status   (check the clock), or re-issue the certificate' };
  }
  if (validTo.getTime() - now < warnDays * DAY) {
    return { ...base, status: 'warning', message: `${who} expires in ${days} day(s), on ${validTo.toISOString()}`, cause: `Less than ${warnDays} days left: TLS to this endpoint fails when it expires.`, fix: `Renew the server certificate on ${ep.label} before ${validTo.toISOString().slice(0, 10)}` };
  }
  return { ...base, status: 'ok', message: `${who} is valid until ${validTo.toISOString().slice(0, 10)} (${days} days)` };
}

export const certificatesCheck: DoctorCheck = {
  name: 'certificates',
  async run(d): Promise<Finding[]> {
    const eps = endpoints(d);
    return Promise.all(
      eps.map(async (ep): Promise<Finding> => {
        try {
          const cert = await peerCertificate(ep, d.probeTimeoutMs);
          if (!cert || !cert.valid_to) throw new Error('the server sent no certificate');
          return expiryFinding(ep, new Date(cert.valid_from), new Date(cert.valid_to), d.now, d.certWarnDays, cert.subject?.CN ? `CN=${String(cert.subject.CN)}` : undefined);
        } catch (err) {
          return { check: 'certificates', target: ep.target, status: 'warning', message: `could not read the certificate of ${ep.label}`, cause: err instanceof Error ? err.message : String(err), fix: 'See the connectivity finding of this connector.' };
        }
      }),
    );
  },
};
