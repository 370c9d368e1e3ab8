/**
 * The attributes password hash sync asks for, by ATTRTYP (MS-DRSR 5.16.4): prefix index 9 stands
 * for the OID prefix 1.2.840.113556.1.4 in the prefix table this client sends, and every one of
 * these attributes lives under it.
 */
export const ATT = {
  objectGUID: 0x00090002,
  userAccountControl: 0x00090008,
  unicodePwd: 0x0009005a,
  objectSid: 0x00090092,
  sAMAccountName: 0x000900dd,
  userPrincipalName: 0x00090290,
} as const;

/** The partial attribute set: only what PHS needs, sorted (MS-DRSR requires ascending order). */
export const PHS_ATTIDS: readonly number[] = Object.values(ATT).sort((a, b) => a - b);

/** 1.2.840.113556.1.4 in the "partial binary OID" form prefix tables carry (BER without the tag). */
export const OID_PREFIX_MS_DS_ATTRS = Buffer.from('2a864886f7140104', 'hex');
export const PREFIX_INDEX_MS_DS_ATTRS = 9;

/**
 * The trailing schemaInfo entry (0xFF then 20 bytes): Samba rejects a prefix table without one
 * (dsdb_schema_pfm_from_drsuapi_pfm, WERR_INVALID_PARAMETER) and does not check its content;
 * Windows compares it only to decide whether to send schema changes, which a client outside
 * the schema NC never asks for.
 */
export const SCHEMA_INFO_ENTRY = Buffer.concat([Buffer.from([0xff]), Buffer.alloc(20)]);
