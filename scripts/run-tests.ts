/**
 * The test runner: `node --import tsx scripts/run-tests.ts [--unit] [files or folders...]`
 *
 * - finds test/**\/*.test.ts (or the files/folders given); `--unit` leaves out test/e2e;
 * - starts ONE Samba AD DC when a selected test needs it (test/e2e, test/connectors/ad) and Samba
 *   is installed — or always with IDSYNC_REQUIRE_INTEGRATION=1 (CI) — and describes it to the
 *   tests in IDSYNC_TEST_SAMBA (Samba's LDAP port is fixed, so tests share it, one file at a time);
 * - runs `node --import tsx --test --test-concurrency=1 <files>` and exits with its code;
 * - always stops the DC, also on Ctrl-C / SIGTERM.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { unavailableReason, integrationRequired } from '../test/helpers/integration.js';
import { sambaToEnv, startSambaDC, type SambaDC } from '../test/helpers/samba.js';

const root = resolve(fileURLToPath(new URL('..', import.meta.url)));

function findTests(dir: string): string[] {
  const out: string[] = [];
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return out;
  }
  for (const name of names.sort()) {
    if (name === 'node_modules' || name.startsWith('.')) continue;
    const p = join(dir, name);
    const st = statSync(p);
    if (st.isDirectory()) out.push(...findTests(p));
    else if (name.endsWith('.test.ts')) out.push(p);
  }
  return out;
}

function needsSamba(file: string): boolean {
  const rel = relative(root, file).split(sep).join('/');
  return rel.startsWith('test/e2e/') || rel.startsWith('test/connectors/ad/') || rel.startsWith('test/drsuapi/samba');
}

async function main(): Promise<number> {
  const args = process.argv.slice(2);
  const unit = args.includes('--unit');
  const selectors = args.filter((a) => !a.startsWith('--'));
  let files = selectors.length
    ? selectors.flatMap((s) => {
        const p = resolve(s);
        return statSync(p).isDirectory() ? findTests(p) : [p];
      })
    : findTests(join(root, 'test'));
  if (unit) files = files.filter((f) => !relative(root, f).split(sep).join('/').startsWith('test/e2e/'));
  if (!files.length) {
    console.error('run-tests: no test files selected');
    return 1;
  }

  let dc: SambaDC | undefined;
  let child: ChildProcess | undefined;
  let stopping = false;
  const cleanup = async (): Promise<void> => {
    if (dc) {
      const d = dc;
      dc = undefined;
      await d.stop().catch((err: unknown) => console.error(`run-tests: stopping the Samba DC failed: ${String(err)}`));
    }
  };
  const onSignal = (sig: NodeJS.Signals): void => {
    if (stopping) return;
    stopping = true;
    console.error(`run-tests: ${sig}, stopping...`);
    child?.kill(sig);
    void cleanup().then(() => process.exit(130));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  try {
    const wantSamba = files.some(needsSamba) || integrationRequired();
    const env = { ...process.env };
    if (wantSamba && !process.env.IDSYNC_TEST_SAMBA) {
      const reason = unavailableReason('samba');
      if (reason) {
        if (integrationRequired()) {
          console.error(`run-tests: IDSYNC_REQUIRE_INTEGRATION=1 but ${reason}`);
          return 1;
        }
        console.error(`run-tests: no Samba AD DC (${reason}); AD tests will be skipped`);
      } else {
        const t0 = Date.now();
        process.stderr.write('run-tests: starting a Samba AD DC... ');
        // rpc: DRSUAPI (password hash sync over MS-DRSR) on the endpoint mapper's port 135
        dc = await startSambaDC(undefined, { services: ['ldap', 'kdc', 'rpc'] });
        env.IDSYNC_TEST_SAMBA = sambaToEnv(dc);
        process.stderr.write(`ready in ${((Date.now() - t0) / 1000).toFixed(1)} s (${dc.dir})\n`);
      }
    }
    if (stopping) return 130;
    const nodeArgs = ['--import', 'tsx', '--test', '--test-concurrency=1', ...files.map((f) => relative(process.cwd(), f) || f)];
    child = spawn(process.execPath, nodeArgs, { stdio: 'inherit', env });
    const code = await new Promise<number>((res) => {
      child?.once('exit', (c, s) => res(c ?? (s ? 1 : 0)));
    });
    return code;
  } finally {
    await cleanup();
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error('run-tests:', err instanceof Error ? err.message : err);
    process.exit(1);
  },
);
