/**
 * Default attribute flows. Inbound: source attributes → metaverse attributes (per connector kind).
 * Outbound: metaverse → SCIM resources for the cloud directory. Metaverse attribute names follow
 * the incumbent's metaverse (accountName, userPrincipalName, sn, accountEnabled...), so admins
 * recognise them. docs/sync-rules.md lists these mappings.
 */
import type { ObjectType, SourceObject } from '../connectors/types.js';
import { rdnValue } from '../ldap/dn.js';

export type MvValue = string | boolean | null;
export type MvAttrs = Record<string, MvValue>;

export const SCHEMA_USER = 'urn:ietf:params:scim:schemas:core:2.0:User';
export const SCHEMA_GROUP = 'urn:ietf:params:scim:schemas:core:2.0:Group';
export const SCHEMA_ENTERPRISE = 'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User';
export const SCHEMA_ONPREM_USER = 'urn:idsync:params:scim:schemas:extension:onprem:2.0:User';

/** userAccountControl bit ACCOUNTDISABLE (MS-ADTS 2.2.16). */
const UAC_ACCOUNTDISABLE = 0x2;

type SourceKind = 'ad' | 'ldap';

function first(o: SourceObject, name: string): string | null {
  const v = o.attributes[name];
  return v && v.length > 0 && v[0] !== '' ? v[0]! : null;
}

/** "DC=corp,DC=example,DC=com" → "corp.example.com" (the DNS name AD derives from the DN). */
export function domainFromDn(dn: string): string | null {
  // Without a backslash every comma separates (the look-ahead below holds for every suffix), and
  // the look-ahead is quadratic in the DN's length: it ran for every object of every cycle.
  const parts = (dn.includes('\\') ? dn.split(/,(?=(?:[^\\]|\\.)*$)/) : dn.split(','))
    .map((p) => p.trim())
    .filter((p) => /^dc=/i.test(p))
    .map((p) => p.slice(3));
  return parts.length ? parts.join('.').toLowerCase() : null;
}

/** The value of a DN's first RDN ("CN=Sales,OU=x" → "Sales"); null when the DN cannot be parsed. */
function rdnOf(dn: string): string | null {
  try {
    return rdnValue(dn) || null;
  } catch {
    return null;
  }
}

/** AD when it looks like AD (sAMAccountName or objectGUID), LDAP otherwise: LDIF may hold either. */
export function detectKind(o: SourceObject): SourceKind {
  return o.attributes.samaccountname || o.attributes.objectguid ? 'ad' : 'ldap';
}

export function inboundFlow(kind: 'ad' | 'ldap' | 'ldif', o: SourceObject): MvAttrs {
  const k: SourceKind = kind === 'ldif' ? detectKind(o) : kind;
  const common: MvAttrs = {
    sourceAnchor: o.anchor,
    distinguishedName: o.dn,
    domainName: domainFromDn(o.dn),
    description: first(o, 'description'),
  };
  if (o.objectType === 'group') {
    return {
      ...common,
      displayName: first(o, 'displayname') ?? first(o, 'cn') ?? first(o, 'name') ?? rdnOf(o.dn),
      accountName: k === 'ad' ? first(o, 'samaccountname') : first(o, 'cn'),
    };
  }
  if (k === 'ad') {
    const uac = Number(first(o, 'useraccountcontrol') ?? '512');
    return {
      ...common,
      accountName: first(o, 'samaccountname'),
      userPrincipalName: first(o, 'userprincipalname'),
      mail: first(o, 'mail'),
      givenName: first(o, 'givenname'),
      sn: first(o, 'sn'),
      displayName: first(o, 'displayname') ?? first(o, 'cn'),
      department: first(o, 'department'),
      title: first(o, 'title'),
      company: first(o, 'company'),
      telephoneNumber: first(o, 'telephonenumber'),
      mobile: first(o, 'mobile'),
      employeeId: first(o, 'employeeid'),
      accountEnabled: Number.isFinite(uac) ? (uac & UAC_ACCOUNTDISABLE) === 0 : true,
    };
  }
  const uid = first(o, 'uid');
  const domain = common.domainName as string | null;
  return {
    ...common,
    accountName: uid,
    userPrincipalName: first(o, 'mail') ?? (uid && domain ? `${uid}@${domain}` : null),
    mail: first(o, 'mail'),
    givenName: first(o, 'givenname'),
    sn: first(o, 'sn'),
    displayName: first(o, 'displayname') ?? first(o, 'cn'),
    department: first(o, 'departmentnumber') ?? first(o, 'ou'),
    title: first(o, 'title'),
    company: first(o, 'o'),
    telephoneNumber: first(o, 'telephonenumber'),
    mobile: first(o, 'mobile'),
    employeeId: first(o, 'employeenumber'),
    accountEnabled: true,
  };
}

export interface ScimMember {
  value: string;
  type: 'User' | 'Group';
}

export type OutboundResult = { ok: true; resource: Record<string, unknown> } | { ok: false; reason: string };

function str(v: MvValue | undefined): string | undefined {
  return typeof v === 'string' && v !== '' ? v : undefined;
}

/** Drops undefined values and empty objects/arrays so equal content hashes equally. */
function compact<T extends Record<string, unknown>>(o: T): T {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(o)) {
    if (v === undefined) continue;
    if (Array.isArray(v) && v.length === 0) continue;
    if (v && typeof v === 'object' && !Array.isArray(v)) {
      const c = compact(v as Record<string, unknown>);
      if (Object.keys(c).length === 0) continue;
      out[k] = c;
      continue;
    }
    out[k] = v;
  }
  return out as T;
}

export function userToScim(mv: MvAttrs): OutboundResult {
  const userName = str(mv.userPrincipalName);
  if (!userName) return { ok: false, reason: 'the user has no userPrincipalName (AD) or mail/uid (LDAP) to use as the cloud userName' };
  const phones = [
    str(mv.telephoneNumber) && { value: str(mv.telephoneNumber), type: 'work' },
    str(mv.mobile) && { value: str(mv.mobile), type: 'mobile' },
  ].filter(Boolean);
  const resource = compact({
    schemas: [SCHEMA_USER, SCHEMA_ENTERPRISE, SCHEMA_ONPREM_USER],
    externalId: str(mv.sourceAnchor),
    userName,
    name: { givenName: str(mv.givenName), familyName: str(mv.sn) },
    displayName: str(mv.displayName),
    title: str(mv.title),
    active: mv.accountEnabled !== false,
    emails: str(mv.mail) ? [{ value: str(mv.mail), type: 'work', primary: true }] : undefined,
    phoneNumbers: phones,
    [SCHEMA_ENTERPRISE]: {
      department: str(mv.department),
      employeeNumber: str(mv.employeeId),
      organization: str(mv.company),
    },
    [SCHEMA_ONPREM_USER]: {
      onPremisesSamAccountName: str(mv.accountName),
      onPremisesDistinguishedName: str(mv.distinguishedName),
      onPremisesDomainName: str(mv.domainName),
      onPremisesImmutableId: str(mv.sourceAnchor),
    },
  });
  return { ok: true, resource };
}

export function groupToScim(mv: MvAttrs, members: ScimMember[]): OutboundResult {
  const displayName = str(mv.displayName);
  if (!displayName) return { ok: false, reason: 'the group has no name (displayName or cn)' };
  const sorted = [...members].sort((a, b) => (a.value < b.value ? -1 : a.value > b.value ? 1 : 0));
  return {
    ok: true,
    resource: compact({
      schemas: [SCHEMA_GROUP],
      externalId: str(mv.sourceAnchor),
      displayName,
      members: sorted,
    }),
  };
}

export function outboundFlow(type: ObjectType, mv: MvAttrs, members: ScimMember[]): OutboundResult {
  return type === 'user' ? userToScim(mv) : groupToScim(mv, members);
}
