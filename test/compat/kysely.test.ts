import { Kysely, PostgresDialect, sql } from 'kysely';
import pg from 'pg';
import Cursor from 'pg-cursor';
import { kyselyDialect } from 'pg-replica-router/kysely';
import { describeOrm } from './harness.js';

interface Database {
  people: { id: number; name: string };
}

let db: Kysely<Database>;
let direct: Kysely<Database>;

describeOrm('Kysely', {
  open(router, replicaUrl) {
    db = new Kysely<Database>({ dialect: kyselyDialect(router, { cursor: Cursor }) });
    direct = new Kysely<Database>({ dialect: new PostgresDialect({ pool: new pg.Pool({ connectionString: replicaUrl }) }) });
  },
  async close() {
    await db.destroy(); // ends router.pool too, as Kysely owns its pool
    await direct.destroy();
  },
  async insert(id, name) {
    await db.insertInto('people').values({ id, name }).execute();
  },
  async findName(id, via = 'router') {
    const row = await (via === 'router' ? db : direct).selectFrom('people').select('name').where('id', '=', id).executeTakeFirst();
    return row?.name;
  },
  async update(id, name) {
    await db.updateTable('people').set({ name }).where('id', '=', id).execute();
  },
  async remove(id) {
    await db.deleteFrom('people').where('id', '=', id).execute();
  },
  async port() {
    return (await sql<{ port: number }>`select inet_server_port() as port`.execute(db)).rows[0]!.port;
  },
  async transaction(id, name, fail) {
    return db.transaction().execute(async (trx) => {
      await trx.insertInto('people').values({ id, name }).execute();
      const port = (await sql<{ port: number }>`select inet_server_port() as port`.execute(trx)).rows[0]!.port;
      if (fail) throw new Error('roll back');
      return port;
    });
  },
  async readOnlyTransaction() {
    return db
      .transaction()
      .setAccessMode('read only')
      .execute(async (trx) => (await sql<{ port: number }>`select inet_server_port() as port`.execute(trx)).rows[0]!.port);
  },
  failing: () => sql`select * from no_such_table`.execute(db),
  async stream(from) {
    const ids: number[] = [];
    for await (const row of db.selectFrom('people').select('id').where('id', '>=', from).orderBy('id').stream(2)) ids.push(row.id);
    return ids;
  },
});
