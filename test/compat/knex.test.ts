import knexFactory, { type Knex } from 'knex';
import { knexConfig } from 'pg-replica-router/knex';
import { describeOrm } from './harness.js';

let db: Knex;
let direct: Knex;

const portOf = async (runner: Knex | Knex.Transaction) => Number((await runner.raw('select inet_server_port() as port')).rows[0].port);

describeOrm('Knex', {
  open(router, replicaUrl) {
    db = knexFactory(knexConfig(router));
    direct = knexFactory({ client: 'pg', connection: replicaUrl });
  },
  async close() {
    await db.destroy(); // does not end the router's pool: knex does not own it
    await direct.destroy();
  },
  async insert(id, name) {
    await db('people').insert({ id, name });
  },
  async findName(id, via = 'router') {
    const row = await (via === 'router' ? db : direct)('people').where({ id }).first('name');
    return row?.name;
  },
  async update(id, name) {
    await db('people').where({ id }).update({ name });
  },
  async remove(id) {
    await db('people').where({ id }).delete();
  },
  port: () => portOf(db),
  async transaction(id, name, fail) {
    return db.transaction(async (trx) => {
      await trx('people').insert({ id, name });
      const port = await portOf(trx);
      if (fail) throw new Error('roll back');
      return port;
    });
  },
  async readOnlyTransaction() {
    return db.transaction(async (trx) => portOf(trx), { readOnly: true });
  },
  failing: () => db.raw('select * from no_such_table'),
  async stream(from) {
    const ids: number[] = [];
    for await (const row of db('people').where('id', '>=', from).orderBy('id').select('id').stream()) ids.push((row as { id: number }).id);
    return ids;
  },
});
