/**
 * LDAP controls ldapts does not ship. ldapts sends any `Control` subclass as is (see DESIGN.md §4).
 */
import { BerWriter, Control } from 'ldapts';
import { guidToString } from './guid.js';

/** LDAP_SERVER_SHOW_DELETED_OID: AD returns tombstones (isDeleted=TRUE) too. Value-less, critical. */
export class ShowDeletedControl extends Control {
  static readonly OID = '1.2.840.113556.1.4.417';
  constructor() {
    super(ShowDeletedControl.OID, { critical: true });
  }
}

/**
 * LDAP_SERVER_EXTENDED_DN_OID: AD writes each DN value (and the entry's DN) as
 * `<GUID=...>;<SID=...>;CN=...`. Asked for on group reads, so every member comes with the
 * objectGUID of the object it points at: memberships follow the member's anchor, not a DN string
 * that a new object can take over. Value `{ INTEGER 1 }`: GUIDs as strings. Not critical: a
 * server without it answers plain DNs (members then resolve by DN).
 */
export class ExtendedDnControl extends Control {
  static readonly OID = '1.2.840.113556.1.4.529';
  constructor() {
    super(ExtendedDnControl.OID, { critical: false });
  }

  protected override writeControl(writer: BerWriter): void {
    const value = new BerWriter();
    value.startSequence();
    value.writeInt(1);
    value.endSequence();
    writer.writeBuffer(value.buffer, 0x04);
  }
}

const EXTENDED_PART = /^<([A-Za-z]+)=([^>]*)>;/;

/** Splits `<GUID=g>;<SID=s>;CN=x,...` into the plain DN and the GUID (lower-case string form). */
export function parseExtendedDn(value: string): { dn: string; guid?: string } {
  let rest = value;
  let guid: string | undefined;
  for (let m = EXTENDED_PART.exec(rest); m; m = EXTENDED_PART.exec(rest)) {
    if (m[1]!.toUpperCase() === 'GUID') guid = normalizeGuidText(m[2]!);
    rest = rest.slice(m[0].length);
  }
  return guid ? { dn: rest, guid } : { dn: rest };
}

/** `{string}` (dashed) or the hex of the raw bytes (what AD sends when the control has no value). */
function normalizeGuidText(g: string): string | undefined {
  const t = g.toLowerCase();
  if (/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(t)) return t;
  if (/^[0-9a-f]{32}$/.test(t)) return guidToString(Buffer.from(t, 'hex'));
  return undefined;
}
