/**
 * Every attribute type of the supported directories (AD / Samba AD, OpenLDAP with the samba,
 * kerberos and ppolicy schemas, 389-ds / FreeIPA) whose values are password material, keys or
 * other secrets. One list, used before anything is staged, logged, traced, previewed or put in an
 * error message.
 *
 * Matched by attribute TYPE: the part of an attribute description before the first ";" (so
 * `userPassword;lang-en`, `unicodePwd;binary` and `sambaNTPassword;x-opt` are all caught),
 * case-insensitively; a few well-known OIDs are matched too, because LDIF and LDAP let a client
 * name an attribute by its OID.
 */

/** Lower-case attribute type names. Keep sorted by directory; add to it, never remove. */
export const SECRET_ATTRIBUTE_TYPES: ReadonlySet<string> = new Set([
  // X.500 / RFC 4519 / RFC 3112, every LDAP server
  'userpassword',
  'authpassword',
  'userpkcs12',
  // Active Directory and Samba AD
  'unicodepwd',
  'dbcspwd',
  'ntpwdhistory',
  'lmpwdhistory',
  'supplementalcredentials',
  'unixuserpassword',
  'mssfu30password',
  'priorvalue',
  'currentvalue',
  'trustauthincoming',
  'trustauthoutgoing',
  'initialauthincoming',
  'initialauthoutgoing',
  'msds-managedpassword',
  'msds-keycredentiallink',
  'msds-executescriptpassword',
  'ms-mcs-admpwd',
  'mslaps-password',
  'mslaps-encryptedpassword',
  'mslaps-encryptedpasswordhistory',
  'mslaps-encrypteddsrmpassword',
  'mslaps-encrypteddsrmpasswordhistory',
  'msfve-recoverypassword',
  'msfve-keypackage',
  'mstpm-ownerinformation',
  'mspkiaccountcredentials',
  'mspki-credentialroamingtokens',
  'mspkidpapimasterkeys',
  'peklist',
  // OpenLDAP with the samba schema
  'sambantpassword',
  'sambalmpassword',
  'sambapasswordhistory',
  'sambacleartextpassword',
  // Kerberos in LDAP (MIT krb5 kdb5_ldap, Heimdal hdb-ldap, FreeIPA)
  'krbprincipalkey',
  'krbextradata',
  'krbmkey',
  'krbpwdhistory',
  'krb5key',
  // OpenLDAP ppolicy overlay: earlier password hashes
  'pwdhistory',
  // FreeIPA / 389-ds
  'ipanthash',
  'ipanttrustauthincoming',
  'ipanttrustauthoutgoing',
  'ipatokenotpkey',
  'nsds5replicacredentials',
  'nsds5replicabootstrapcredentials',
  'nsmultiplexorcredentials',
  // OpenLDAP cn=config
  'olcrootpw',
  // OIDs of the commonest ones
  '2.5.4.35', // userPassword
  '1.3.6.1.4.1.4203.1.3.4', // authPassword
  '1.2.840.113556.1.4.90', // unicodePwd
  '1.3.6.1.4.1.7165.2.1.24', // sambaLMPassword
  '1.3.6.1.4.1.7165.2.1.25', // sambaNTPassword
]);

/**
 * The secret types that carry an NT hash password hash sync can use: kept (under the bare type)
 * by the connectors until the import step takes them out, before staging.
 */
export const NT_HASH_ATTRIBUTE_TYPES: readonly string[] = ['sambantpassword', 'unicodepwd'];

/** The attribute type of a description: "userPassword;lang-en" → "userpassword". */
export function attributeType(description: string): string {
  const semi = description.indexOf(';');
  return (semi < 0 ? description : description.slice(0, semi)).trim().toLowerCase();
}

/** Whether an attribute description (with or without options) names a secret attribute type. */
export function isSecretAttribute(description: string): boolean {
  return SECRET_ATTRIBUTE_TYPES.has(attributeType(description));
}

/**
 * Removes every secret attribute from a record of attribute values, in place; returns the types
 * removed (for counting, never their values).
 */
export function dropSecretAttributes(attributes: Record<string, unknown>): string[] {
  const dropped: string[] = [];
  for (const key of Object.keys(attributes)) {
    if (!isSecretAttribute(key)) continue;
    delete attributes[key];
    dropped.push(attributeType(key));
  }
  return dropped;
}
