/**
 * The token signing keys: ES256 key pairs generated on first start and kept in cloud.db, so
 * tokens survive a restart. The newest key signs; every stored key verifies and is published in
 * the JWKS, which leaves room for rotation (add a key, later delete the old one).
 *
 * The private key is stored as a JWK in the database; cloud.db is created 0600 in a 0700 data
 * directory. Protect it (and its backups) like the key it is.
 */
import { calculateJwkThumbprint, createLocalJWKSet, exportJWK, generateKeyPair, importJWK, type CryptoKey, type JSONWebKeySet, type JWK } from 'jose';
import type { Migration } from '../../store/database.js';
import type { Sql } from '../store/sql.js';

export const keysMigrations: Migration[] = [
  {
    id: 'cloud-keys/001',
    sql: `
      CREATE TABLE signing_keys (
        kid TEXT PRIMARY KEY,
        alg TEXT NOT NULL,
        private_jwk TEXT NOT NULL,
        public_jwk TEXT NOT NULL,
        created_at TEXT NOT NULL
      );
    `,
  },
];

export const keysPgMigrations: Migration[] = [
  {
    id: 'cloud-keys/001',
    sql: `
      CREATE TABLE signing_keys (
        kid TEXT PRIMARY KEY,
        alg TEXT NOT NULL,
        private_jwk TEXT NOT NULL,
        public_jwk TEXT NOT NULL,
        created_at TEXT COLLATE "C" NOT NULL
      );
    `,
  },
];

export const SIGNING_ALG = 'ES256';

export interface SigningKeys {
  kid: string;
  privateKey: CryptoKey;
  jwks: JSONWebKeySet;
  /** A key resolver for jose's jwtVerify over every published key. */
  keySet: ReturnType<typeof createLocalJWKSet>;
}

type KeyRow = { kid: string; private_jwk: string; public_jwk: string };
const SELECT_KEYS = 'SELECT kid, private_jwk, public_jwk FROM signing_keys ORDER BY created_at DESC, kid';

/**
 * Loads the keys, generating the first one when there is none. Several nodes starting at once on
 * one PostgreSQL agree on it: the check and the insert run under one lock, so exactly one key is made.
 */
export async function loadSigningKeys(db: Sql, now: () => number = Date.now): Promise<SigningKeys> {
  let rows = await db.all<KeyRow>(SELECT_KEYS);
  if (rows.length === 0) {
    const { privateKey, publicKey } = await generateKeyPair(SIGNING_ALG, { extractable: true });
    const pub = await exportJWK(publicKey);
    const kid = await calculateJwkThumbprint(pub);
    const priv = { ...(await exportJWK(privateKey)), kid, alg: SIGNING_ALG, use: 'sig' };
    const publicJwk = { ...pub, kid, alg: SIGNING_ALG, use: 'sig' };
    rows = await db.transaction(async (tx) => {
      await tx.lock('idsync-cloud-signing-keys');
      const existing = await tx.all<KeyRow>(SELECT_KEYS);
      if (existing.length) return existing;
      await tx.run('INSERT INTO signing_keys (kid, alg, private_jwk, public_jwk, created_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING', [
        kid,
        SIGNING_ALG,
        JSON.stringify(priv),
        JSON.stringify(publicJwk),
        new Date(now()).toISOString(),
      ]);
      return tx.all<KeyRow>(SELECT_KEYS);
    });
  }
  const newest = rows[0]!;
  const privateKey = (await importJWK(JSON.parse(newest.private_jwk) as JWK, SIGNING_ALG)) as CryptoKey;
  const jwks: JSONWebKeySet = { keys: rows.map((r) => JSON.parse(r.public_jwk) as JWK) };
  return { kid: newest.kid, privateKey, jwks, keySet: createLocalJWKSet(jwks) };
}
