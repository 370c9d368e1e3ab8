import { existsSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { allMigrations } from '../../app/migrations.js';
import { STORE_PASSWORD_ENV } from '../../config/store.js';
import { IdsyncError } from '../../core/errors.js';
import { SECRET_KEY_FILE } from '../../credentials/key.js';
import { copyStore } from '../../store/copy.js';
import { DATABASE_FILE, openDatabase, openStore } from '../../store/database.js';
import { maskedLocation, PgDatabase } from '../../store/postgres/open.js';
import { loadFor, type RegisterCommand } from '../context.js';
import { printJson, println, progress, endProgress, table } from '../output.js';

interface MigrateOptions {
  to: string;
  passwordFile?: string;
  tlsCa?: string;
  json?: boolean;
}

function readPassword(opts: MigrateOptions): string | undefined {
  if (opts.passwordFile === undefined) return process.env[STORE_PASSWORD_ENV] || undefined;
  const mode = statSync(opts.passwordFile).mode;
  if ((mode & 0o077) !== 0) {
    throw new IdsyncError('CONFIG_INVALID', `${opts.passwordFile} is readable by other users`, { hint: `chmod 600 ${opts.passwordFile}` });
  }
  return readFileSync(opts.passwordFile, 'utf8').split(/\r?\n/)[0];
}

export const registerStoreCommands: RegisterCommand = (program) => {
  const store = program.command('store').description("The sync service's database: SQLite (default) or PostgreSQL (docs/store.md)");
  store
    .command('migrate')
    .description('Copy this installation\'s SQLite store (credentials, outbox, watermarks, history: every table) into an empty PostgreSQL database, and verify it')
    .requiredOption('--to <url>', 'the target: postgres://USER@HOST:5432/DATABASE (empty; the password in $IDSYNC_STORE_PASSWORD or --password-file)')
    .option('--password-file <file>', 'read the database password from the first line of this owner-only file')
    .option('--tls-ca <file>', "verify the server's certificate against this CA (PEM); implies TLS")
    .option('--json', 'machine-readable output')
    .addHelpText(
      'after',
      `
The copy is one consistent snapshot of the SQLite store: stop the service first
(\`idsync service stop\`), or whatever it does after the snapshot stays in SQLite only.
The target must be empty; every table is compared (rows and checksum) after the copy.
The key file (${SECRET_KEY_FILE} in the data directory) still opens the sealed credentials and
hashes: keep it (and copy it to every node that uses the database).

Example:
  IDSYNC_STORE_PASSWORD='...' idsync store migrate --to postgres://idsync@db.example:5432/idsync`,
    )
    .action(async (opts: MigrateOptions, cmd: Command) => {
      const loaded = loadFor(cmd);
      if (loaded.config.store.type !== 'sqlite') {
        throw new IdsyncError('CONFIG_INVALID', 'this installation already uses PostgreSQL (store.type: postgres)', { hint: 'Nothing to migrate: `store migrate` copies a SQLite store.' });
      }
      let url: URL;
      try {
        url = new URL(opts.to);
      } catch {
        throw new IdsyncError('CONFIG_INVALID', '--to is not a valid postgres:// URL', { hint: 'Write it as postgres://USER@HOST:5432/DATABASE.' });
      }
      if (url.password) {
        throw new IdsyncError('CONFIG_INVALID', '--to must not contain the password (it would stay in the shell history and the process list)', {
          hint: `Give it in $${STORE_PASSWORD_ENV} or --password-file.`,
        });
      }
      const file = path.join(loaded.dataDir, DATABASE_FILE);
      if (!existsSync(file)) throw new IdsyncError('CONFIG_INVALID', `no SQLite store at ${file}`, { hint: 'Check --config: the data directory of the installation to migrate.' });
      const password = readPassword(opts);
      const tls = opts.tlsCa !== undefined ? { ca: readFileSync(opts.tlsCa, 'utf8') } : undefined;
      const src = openDatabase(file, allMigrations);
      let dst: ReturnType<typeof openStore> | undefined;
      try {
        dst = openStore({ type: 'postgres', url: opts.to, ...(password !== undefined ? { password } : {}), ...(tls ? { tls } : {}), applicationName: 'idsync-store-migrate' }, allMigrations);
        if (!(dst instanceof PgDatabase)) throw new Error('unreachable: the target is not PostgreSQL');
        const report = copyStore(src, dst, { onTable: opts.json ? undefined : (t, n) => progress(`copied ${t}: ${n} rows`) });
        if (!opts.json) endProgress();
        const yaml = `store:\n  type: postgres\n  url: ${maskedLocation(opts.to)}\n  # the password: $${STORE_PASSWORD_ENV}, or passwordFile: /etc/idsync/store.password (chmod 600)${tls ? `\n  tls:\n    caFile: ${opts.tlsCa ?? ''}` : ''}`;
        if (opts.json) {
          printJson({ target: maskedLocation(opts.to), rows: report.rows, tables: report.tables, verified: true, config: yaml });
          return;
        }
        println(table(report.tables.map((t) => ({ table: t.table, rows: t.rows, checksum: t.checksum })), ['table', 'rows', 'checksum']));
        println(`\n${report.rows} rows in ${report.tables.length} tables copied to ${maskedLocation(opts.to)} and verified (rows and checksums match).`);
        println(`\nTo switch, add to ${loaded.file}:\n\n${yaml}\n\nthen restart the service (\`idsync service restart\`). The SQLite file ${file} is left as it was.`);
      } finally {
        dst?.close();
        src.close();
      }
    });
};
