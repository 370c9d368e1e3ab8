/**
 * Every module's migrations for the main database (idsync.db), assembled here, above the modules:
 * each module declares its list next to its code (it imports only `Migration` from store/), and
 * store/ knows the type and the runner, never a feature. Add a module's list here.
 */
import { credentialMigrations } from '../credentials/store.js';
import { engineMigrations } from '../engine/migrations.js';
import { eventMigrations } from '../events/log.js';
import { passwordMigrations } from '../passwords/migrations.js';
import { consoleMigrations } from '../console/migrations.js';
import { haMigrations } from '../service/ha/lease-sql.js';
import type { Migration } from '../store/database.js';

export const allMigrations: Migration[] = [...engineMigrations, ...passwordMigrations, ...credentialMigrations, ...eventMigrations, ...consoleMigrations, ...haMigrations];
