/**
 * Throwaway CAs and server certificates for TLS tests, made with the `openssl` CLI (EC P-256,
 * ~30 ms each).
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface TestCa {
  certFile: string;
  keyFile: string;
}

export interface TestServerCert {
  certFile: string;
  keyFile: string;
}

function openssl(args: string[]): void {
  try {
    execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (err) {
    const e = err as { code?: string; stderr?: Buffer };
    if (e.code === 'ENOENT') throw new Error('the `openssl` command is required for TLS tests (apt-get install openssl)');
    throw new Error(`openssl ${args[0]} failed: ${e.stderr?.toString() ?? String(err)}`);
  }
}

/** Creates a self-signed CA in `dir` (files <name>.crt/.key). */
export function createTestCa(dir: string, name = 'idsync-test-ca'): TestCa {
  const certFile = join(dir, `${name}.crt`);
  const keyFile = join(dir, `${name}.key`);
  openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', keyFile, '-out', certFile,
    '-days', '2', '-subj', `/CN=${name}`, '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  return { certFile, keyFile };
}

/**
 * Issues a server certificate signed by `ca` for `cn` with the given subjectAltNames
 * (default DNS:localhost, IP:127.0.0.1, IP:::1; `null` for none). `expired: true` makes one that
 * expired in 2020.
 */
export function issueServerCert(dir: string, ca: TestCa, opts: { name?: string; cn?: string; san?: string[] | null; expired?: boolean } = {}): TestServerCert {
  const name = opts.name ?? 'server';
  const certFile = join(dir, `${name}.crt`);
  const keyFile = join(dir, `${name}.key`);
  const csr = join(dir, `${name}.csr`);
  const ext = join(dir, `${name}.ext`);
  const san = opts.san === undefined ? ['DNS:localhost', 'IP:127.0.0.1', 'IP:::1'] : opts.san;
  writeFileSync(ext, `basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n${san && san.length ? `subjectAltName=${san.join(',')}\n` : ''}`);
  openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', keyFile, '-out', csr, '-subj', `/CN=${opts.cn ?? 'localhost'}`]);
  if (opts.expired) {
    // `openssl x509` (3.0) cannot backdate; `openssl ca` can, with a throwaway CA database.
    const db = join(dir, `${name}-cadb`);
    mkdirSync(db, { recursive: true });
    writeFileSync(join(db, 'index.txt'), '');
    writeFileSync(join(db, 'serial'), '1000\n');
    const conf = join(db, 'ca.cnf');
    writeFileSync(conf, `[ca]\ndefault_ca=d\n[d]\ndatabase=${db}/index.txt\nnew_certs_dir=${db}\nserial=${db}/serial\ndefault_md=sha256\npolicy=p\n[p]\ncommonName=supplied\n`);
    openssl(['ca', '-batch', '-notext', '-config', conf, '-cert', ca.certFile, '-keyfile', ca.keyFile, '-in', csr, '-out', certFile,
      '-startdate', '200101000000Z', '-enddate', '200102000000Z', '-extfile', ext]);
  } else {
    openssl(['x509', '-req', '-in', csr, '-CA', ca.certFile, '-CAkey', ca.keyFile, '-CAcreateserial', '-out', certFile, '-days', '2', '-extfile', ext]);
  }
  return { certFile, keyFile };
}
