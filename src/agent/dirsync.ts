/**
 * The DirSync control (MS-ADTS 3.1.1.3.4.1.3, OID 1.2.840.113556.1.4.841): follow changes of a
 * naming context with an opaque cookie.
 *
 *   request value   SEQUENCE { flags INTEGER, maxBytes INTEGER, cookie OCTET STRING }
 *   response value  SEQUENCE { moreResults INTEGER, unused INTEGER, cookie OCTET STRING }
 *
 * The response control has the request's OID, so ldapts hands it to this very instance
 * (parseControl): after a search, `cookie` holds the new cookie and `moreResults` says whether to
 * ask again at once. The search base must be the naming context's root.
 */
import { Ber, BerWriter, Control, type BerReader } from 'ldapts';

export const DIRSYNC_OID = '1.2.840.113556.1.4.841';
/** LDAP_DIRSYNC_OBJECT_SECURITY: only what the caller may read (not needed on the privileged socket). */
export const DIRSYNC_OBJECT_SECURITY = 0x1;
/** LDAP_DIRSYNC_INCREMENTAL_VALUES: linked attributes as added/removed values. */
export const DIRSYNC_INCREMENTAL_VALUES = 0x80000000;

export class DirSyncControl extends Control {
  cookie: Buffer;
  moreResults = false;
  /** Whether a response control arrived for the last search. */
  answered = false;

  constructor(
    cookie: Buffer = Buffer.alloc(0),
    readonly flags = 0,
    readonly maxBytes = 0x100000,
  ) {
    super(DIRSYNC_OID, { critical: true });
    this.cookie = cookie;
  }

  protected override writeControl(writer: BerWriter): void {
    const v = new BerWriter();
    v.startSequence();
    // BER INTEGER is signed: 0x80000000 must be written as a negative 32-bit value.
    v.writeInt(this.flags | 0);
    v.writeInt(this.maxBytes);
    v.writeBuffer(this.cookie, Ber.OctetString);
    v.endSequence();
    writer.writeBuffer(v.buffer, Ber.OctetString);
  }

  protected override parseControl(reader: BerReader): void {
    reader.readSequence();
    this.moreResults = (reader.readInt() ?? 0) !== 0;
    reader.readInt();
    this.cookie = reader.readString(Ber.OctetString, true) ?? Buffer.alloc(0);
    this.answered = true;
  }
}
