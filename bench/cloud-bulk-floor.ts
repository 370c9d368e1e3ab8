/**
 * The floor for `npm run bench:cloud-bulk`: the least a SCIM Bulk endpoint can do on this machine.
 * fastify parses the body, one SQLite transaction inserts each user with one prepared statement into
 * a table with the cloud's unique indexes (userName lower-cased, externalId), and each operation
 * answers its own status and location. No schema validation, no ETags, no bulkId references: the
 * prototype of DESIGN.md §4 ("≈ 80k users/s with 100-user bulk requests"), measured in the same run.
 *
 *   node --import tsx bench/cloud-bulk-floor.ts <dataDir>   prints {"url": ...} and stops on SIGTERM
 */
import { newResourceId } from '../src/cloud/scim/ids.js';
import path from 'node:path';
import Fastify from 'fastify';
import { openDatabase } from '../src/store/database.js';

const dataDir = process.argv[2];
if (!dataDir) throw new Error('usage: cloud-bulk-floor.ts <dataDir>');
const db = openDatabase(path.join(dataDir, 'floor.db'), [
  {
    id: 'floor/001',
    sql: `CREATE TABLE users (id TEXT PRIMARY KEY, version INTEGER NOT NULL, created TEXT NOT NULL, external_id TEXT UNIQUE,
            user_name TEXT NOT NULL, user_name_lc TEXT NOT NULL UNIQUE, display_name TEXT, doc TEXT NOT NULL)`,
  },
]);
const insert = db.prepare('INSERT INTO users (id, version, created, external_id, user_name, user_name_lc, display_name, doc) VALUES (?, 1, ?, ?, ?, ?, ?, ?)');

interface Op {
  bulkId: string;
  data: { userName: string; externalId?: string; displayName?: string };
}

const app = Fastify({ logger: false, bodyLimit: 10 * 1024 * 1024 });
app.addContentTypeParser('application/scim+json', { parseAs: 'string' }, app.getDefaultJsonParser('ignore', 'ignore'));
app.post('/scim/v2/Bulk', async (req) => {
  const ops = (req.body as { Operations: Op[] }).Operations;
  const now = new Date().toISOString();
  const results = db.transaction(() =>
    ops.map((op) => {
      const id = newResourceId(); // time-ordered, as the cloud's (src/cloud/scim/ids.ts)
      try {
        insert.run(id, now, op.data.externalId ?? null, op.data.userName, op.data.userName.toLowerCase(), op.data.displayName ?? null, JSON.stringify(op.data));
        return { method: 'POST', bulkId: op.bulkId, status: '201', location: `/scim/v2/Users/${id}`, version: 'W/"1"' };
      } catch {
        return { method: 'POST', bulkId: op.bulkId, status: '409' };
      }
    }),
  )();
  return { schemas: ['urn:ietf:params:scim:api:messages:2.0:BulkResponse'], Operations: results };
});
await app.listen({ host: '127.0.0.1', port: 0 });
const addr = app.server.address() as { port: number };
process.stdout.write(JSON.stringify({ url: `http://127.0.0.1:${addr.port}` }) + '\n');
process.on('SIGTERM', () => {
  void app.close().then(() => {
    db.close();
    process.exit(0);
  });
});
