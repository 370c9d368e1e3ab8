import path from 'node:path';
import type { LoadedConfig } from '../config/load.js';
import { openCredentialStore, type CredentialStore } from '../credentials/store.js';
import { EventLog } from '../events/log.js';
import { createEventSinks } from '../events/sinks.js';
import { DATABASE_FILE, openDatabase, type Database } from '../store/database.js';
import { allMigrations } from '../store/migrations.js';

/** What every command and the service share: the configuration, the database, the credential store. */
export interface EngineContext {
  loaded: LoadedConfig;
  db: Database;
  credentials: CredentialStore;
  events: EventLog;
  close(): void;
}

export function openContext(loaded: LoadedConfig): EngineContext {
  const db = openDatabase(path.join(loaded.dataDir, DATABASE_FILE), allMigrations);
  const credentials = openCredentialStore(db, loaded.dataDir);
  const sinks = loaded.config.events;
  const events = new EventLog(db, {
    sinks: createEventSinks({ jsonFile: sinks.jsonFile ? loaded.resolvePath(sinks.jsonFile) : undefined, systemLog: sinks.systemLog }),
  });
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
