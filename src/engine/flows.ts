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

/*
 * The objects below are written with their keys in sorted order (and so are userToScim's and
 * groupToScim's): stableStringify then serialises them with the native JSON.stringify, several
 * times faster than sorting them again for every object (test/engine/flows.test.ts checks it).
 */
export function inboundFlow(kind: 'ad' | 'ldap' | 'ldif', o: SourceObject): MvAttrs {
  const k: SourceKind = kind === 'ldif' ? detectKind(o) : kind;
  const description = first(o, 'description');
  const distinguishedName = o.dn;
  const domainName = domainFromDn(o.dn);
  const sourceAnchor = o.anchor;
  if (o.objectType === 'group') {
    return {
      accountName: k === 'ad' ? first(o, 'samaccountname') : first(o, 'cn'),
      description,
      displayName: first(o, 'displayname') ?? first(o, 'cn') ?? first(o, 'name') ?? rdnOf(o.dn),
      distinguishedName,
      domainName,
      sourceAnchor,
    };
  }
  if (k === 'ad') {
    const uac = Number(first(o, 'useraccountcontrol') ?? '512');
    return {
      accountEnabled: Number.isFinite(uac) ? (uac & UAC_ACCOUNTDISABLE) === 0 : true,
      accountName: first(o, 'samaccountname'),
      company: first(o, 'company'),
      department: first(o, 'department'),
      description,
      displayName: first(o, 'displayname') ?? first(o, 'cn'),
      distinguishedName,
      domainName,
      employeeId: first(o, 'employeeid'),
      givenName: first(o, 'givenname'),
      mail: first(o, 'mail'),
      mobile: first(o, 'mobile'),
      sn: first(o, 'sn'),
      sourceAnchor,
      telephoneNumber: first(o, 'telephonenumber'),
      title: first(o, 'title'),
      userPrincipalName: first(o, 'userprincipalname'),
    };
  }
  const uid = first(o, 'uid');
  return {
    accountEnabled: true,
    accountName: uid,
    company: first(o, 'o'),
    department: first(o, 'departmentnumber') ?? first(o, 'ou'),
    description,
    displayName: first(o, 'displayname') ?? first(o, 'cn'),
    distinguishedName,
    domainName,
    employeeId: first(o, 'employeenumber'),
    givenName: first(o, 'givenname'),
    mail: first(o, 'mail'),
    mobile: first(o, 'mobile'),
    sn: first(o, 'sn'),
    sourceAnchor,
    telephoneNumber: first(o, 'telephonenumber'),
    title: first(o, 'title'),
    userPrincipalName: first(o, 'mail') ?? (uid && domainName ? `${uid}@${domainName}` : null),
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
export function compact<T extends Record<string, unknown>>(o: T): T {
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

/**
 * The default SCIM user. Written out without a generic compaction pass (it built each part, then
 * copied it without the empty ones: a visible cost of every exported user): what is empty is never
 * set, and the text is the one the compacted object gave (test/engine/flows.test.ts holds it to
 * that on random input).
 */
export function userToScim(mv: MvAttrs): OutboundResult {
  const userName = str(mv.userPrincipalName);
  if (!userName) return { ok: false, reason: 'the user has no userPrincipalName (AD) or mail/uid (LDAP) to use as the cloud userName' };
  // Keys in sorted order (see inboundFlow); SCHEMA_ONPREM_USER ("urn:idsync:…") sorts before SCHEMA_ENTERPRISE ("urn:ietf:…").
  const resource: Record<string, unknown> = { active: mv.accountEnabled !== false };
  set(resource, 'displayName', str(mv.displayName));
  const mail = str(mv.mail);
  if (mail !== undefined) resource.emails = [{ primary: true, type: 'work', value: mail }];
  set(resource, 'externalId', str(mv.sourceAnchor));
  const name = {};
  set(name, 'familyName', str(mv.sn));
  set(name, 'givenName', str(mv.givenName));
  setPart(resource, 'name', name);
  const work = str(mv.telephoneNumber);
  const mobile = str(mv.mobile);
  if (work !== undefined || mobile !== undefined) {
    const phones: { type: string; value: string }[] = [];
    if (work !== undefined) phones.push({ type: 'work', value: work });
    if (mobile !== undefined) phones.push({ type: 'mobile', value: mobile });
    resource.phoneNumbers = phones;
  }
  resource.schemas = [SCHEMA_USER, SCHEMA_ENTERPRISE, SCHEMA_ONPREM_USER];
  set(resource, 'title', str(mv.title));
  const onPrem = {};
  set(onPrem, 'onPremisesDistinguishedName', str(mv.distinguishedName));
  set(onPrem, 'onPremisesDomainName', str(mv.domainName));
  set(onPrem, 'onPremisesImmutableId', str(mv.sourceAnchor));
  set(onPrem, 'onPremisesSamAccountName', str(mv.accountName));
  setPart(resource, SCHEMA_ONPREM_USER, onPrem);
  const enterprise = {};
  set(enterprise, 'department', str(mv.department));
  set(enterprise, 'employeeNumber', str(mv.employeeId));
  set(enterprise, 'organization', str(mv.company));
  setPart(resource, SCHEMA_ENTERPRISE, enterprise);
  resource.userName = userName;
  return { ok: true, resource };
}

/** Sets a value that is there (userToScim: an absent value is no key). */
function set(o: Record<string, unknown>, key: string, v: string | undefined): void {
  if (v !== undefined) o[key] = v;
}

/** Sets a part that has something in it. */
function setPart(o: Record<string, unknown>, key: string, part: object): void {
  for (const _ in part) {
    o[key] = part;
    return;
  }
}

export function groupToScim(mv: MvAttrs, members: ScimMember[]): OutboundResult {
  const displayName = str(mv.displayName);
  if (!displayName) return { ok: false, reason: 'the group has no name (displayName or cn)' };
  const sorted = [...members].sort((a, b) => (a.value < b.value ? -1 : a.value > b.value ? 1 : 0));
  return {
    ok: true,
    resource: compact({
      displayName,
      externalId: str(mv.sourceAnchor),
      members: sorted,
      schemas: [SCHEMA_GROUP],
    }),
  };
}

export function outboundFlow(type: ObjectType, mv: MvAttrs, members: ScimMember[]): OutboundResult {
  return type === 'user' ? userToScim(mv) : groupToScim(mv, members);
}
