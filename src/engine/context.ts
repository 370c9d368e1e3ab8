import { existsSync } from 'node:fs';
import path from 'node:path';
import type { LoadedConfig } from '../config/load.js';
import { openCredentialStore, type CredentialStore } from '../credentials/store.js';
import { EventLog } from '../events/log.js';
import { createEventSinks } from '../events/sinks.js';
import { DATABASE_FILE, openStore, type Database } from '../store/database.js';
import { storeLocation } from '../config/store.js';
import { allMigrations } from '../app/migrations.js';

/** What every command and the service share: the configuration, the database, the credential store. */
export interface EngineContext {
  loaded: LoadedConfig;
  db: Database;
  credentials: CredentialStore;
  events: EventLog;
  close(): void;
}

export interface OpenContextOptions {
  /**
   * For commands that only look (runs, events, service status, doctor): create nothing. Without a
   * database they see an empty one in memory (no runs, no events), and no key file is written.
   */
  readOnly?: boolean;
}

export function openContext(loaded: LoadedConfig, opts: OpenContextOptions = {}): EngineContext {
  // The driver is the configuration's (store.type); a look at an installation that has no SQLite
  // file yet sees an empty store in memory. A PostgreSQL store always exists once configured.
  const file = path.join(loaded.dataDir, DATABASE_FILE);
  const nothingYet = loaded.config.store.type === 'sqlite' && opts.readOnly === true && !existsSync(file);
  const db = openStore(storeLocation(loaded, nothingYet ? { sqliteFile: ':memory:' } : {}), allMigrations);
  let credentials: CredentialStore;
  let events: EventLog;
  try {
    credentials = openCredentialStore(db, loaded.dataDir, process.env, { create: opts.readOnly !== true });
    const sinks = loaded.config.events;
    events = new EventLog(db, {
      sinks: nothingYet ? [] : createEventSinks({ jsonFile: sinks.jsonFile ? loaded.resolvePath(sinks.jsonFile) : undefined, systemLog: sinks.systemLog }),
    });
  } catch (err) {
    db.close(); // a key file or an events.jsonFile folder that cannot be made: no handle left open
    throw err;
  }
  return {
    loaded,
    db,
    credentials,
    events,
    close: () => {
      events.close();
      db.close();
    },
  };
}
