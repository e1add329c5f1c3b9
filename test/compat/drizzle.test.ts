import { eq, gte, sql } from 'drizzle-orm';
import { drizzle, type NodePgDatabase } from 'drizzle-orm/node-postgres';
import { integer, pgTable, text } from 'drizzle-orm/pg-core';
import pg from 'pg';
import { replicaDrizzle } from 'pg-replica-router/drizzle';
import { expect, it } from 'vitest';
import { describeOrm } from './harness.js';

const people = pgTable('people', { id: integer('id').primaryKey(), name: text('name').notNull() });
const schema = { people };

let db: NodePgDatabase<typeof schema>;
let direct: NodePgDatabase<typeof schema>;
let directPool: pg.Pool;

const portOf = async (runner: { execute: NodePgDatabase['execute'] }) =>
  Number((await runner.execute<{ port: number }>(sql`select inet_server_port() as port`)).rows[0]!.port);

describeOrm('Drizzle', {
  open(router, replicaUrl) {
    db = replicaDrizzle(router, { schema });
    directPool = new pg.Pool({ connectionString: replicaUrl });
    direct = drizzle({ client: directPool, schema });
  },
  async close() {
    await directPool.end();
  },
  async insert(id, name) {
    await db.insert(people).values({ id, name });
  },
  async findName(id, via = 'router') {
    // select() runs with rowMode: 'array' and Drizzle's own type parsers: passed through untouched
    const rows = await (via === 'router' ? db : direct).select({ name: people.name }).from(people).where(eq(people.id, id));
    return rows[0]?.name;
  },
  async update(id, name) {
    await db.update(people).set({ name }).where(eq(people.id, id));
  },
  async remove(id) {
    await db.delete(people).where(eq(people.id, id));
  },
  port: () => portOf(db),
  async transaction(id, name, fail) {
    return db.transaction(async (tx) => {
      await tx.insert(people).values({ id, name });
      const port = await portOf(tx);
      if (fail) throw new Error('roll back');
      return port;
    });
  },
  async readOnlyTransaction() {
    return db.transaction(async (tx) => portOf(tx), { accessMode: 'read only' });
  },
  // Drizzle wraps driver errors in a DrizzleQueryError; PostgreSQL's own error is its cause, unchanged.
  failing: () =>
    db.execute(sql`select * from no_such_table`).catch((err: Error) => {
      throw err.cause ?? err;
    }),
});

// Drizzle has no streaming API for node-postgres. Its named prepared statements, with rowMode
// 'array', reach pg untouched through the routed pool:
it('Drizzle: named prepared statements', async () => {
  const prepared = db
    .select({ id: people.id })
    .from(people)
    .where(gte(people.id, sql.placeholder('from')))
    .orderBy(people.id)
    .prepare('people_from');
  const rows = await prepared.execute({ from: 0 });
  expect(Array.isArray(rows)).toBe(true);
  expect(rows.every((r) => typeof r.id === 'number')).toBe(true);
});
