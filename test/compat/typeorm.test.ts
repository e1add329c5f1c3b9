import { DataSource, EntitySchema, MoreThanOrEqual } from 'typeorm';
import { typeormDriver } from 'pg-replica-router/typeorm';
import { describeOrm } from './harness.js';

interface Person {
  id: number;
  name: string;
}
const PersonEntity = new EntitySchema<Person>({
  name: 'Person',
  tableName: 'people',
  columns: { id: { type: Number, primary: true }, name: { type: String } },
});

let source: DataSource;
let direct: DataSource; // the same ORM pointed straight at a replica: the naive path

const portOf = async (query: (sql: string) => Promise<Array<{ port: number }>>) =>
  Number((await query('select inet_server_port() as port'))[0]!.port);

describeOrm('TypeORM', {
  async open(router, replicaUrl) {
    source = new DataSource({ type: 'postgres', driver: typeormDriver(router), entities: [PersonEntity], synchronize: false });
    await source.initialize();
    direct = new DataSource({ type: 'postgres', url: replicaUrl, entities: [PersonEntity], synchronize: false });
    await direct.initialize();
  },
  async close() {
    await source.destroy(); // ends the router's pool, as TypeORM ends the pools it made
    await direct.destroy();
  },
  async insert(id, name) {
    await source.getRepository(PersonEntity).insert({ id, name });
  },
  async findName(id, via = 'router') {
    return (await (via === 'direct' ? direct : source).getRepository(PersonEntity).findOneBy({ id }))?.name;
  },
  async update(id, name) {
    await source.createQueryBuilder().update(PersonEntity).set({ name }).where('id = :id', { id }).execute();
  },
  async remove(id) {
    await source.getRepository(PersonEntity).delete({ id });
  },
  port: () => portOf((sql) => source.query(sql)),
  async transaction(id, name, fail) {
    return source.transaction(async (manager) => {
      await manager.getRepository(PersonEntity).insert({ id, name });
      const port = await portOf((sql) => manager.query(sql));
      if (fail) throw new Error('roll back');
      return port;
    });
  },
  async readOnlyTransaction() {
    // TypeORM has no read-only transaction option; a query runner can start one.
    const runner = source.createQueryRunner();
    try {
      await runner.query('START TRANSACTION READ ONLY');
      const port = await portOf((sql) => runner.query(sql));
      await runner.query('COMMIT');
      return port;
    } finally {
      await runner.release();
    }
  },
  failing: () =>
    source.query('select * from no_such_table').catch((err: Error & { driverError?: Error }) => {
      // TypeORM wraps driver errors in a QueryFailedError; PostgreSQL's error is its driverError, unchanged.
      throw err.driverError ?? err;
    }),
  async stream(from) {
    const runner = source.createQueryRunner();
    try {
      const stream = await source
        .getRepository(PersonEntity)
        .createQueryBuilder('p', runner)
        .select('p.id', 'id')
        .where({ id: MoreThanOrEqual(from) })
        .orderBy('p.id')
        .stream();
      const ids: number[] = [];
      for await (const row of stream) ids.push(Number((row as { id: number }).id));
      return ids;
    } finally {
      await runner.release();
    }
  },
});
