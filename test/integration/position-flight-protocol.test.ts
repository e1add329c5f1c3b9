import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Cluster } from 'pg-replica-router/testing';
import { parseLsn } from 'pg-replica-router';
import { canFly, flightPosition, flyOn, type FlightMode } from '../../lib/position-flight.js';
import { STARTED } from '../../lib/position-sql.js';
import { startTestCluster, urlAs } from '../helpers/cluster.js';

// The flight itself (lib/position-flight.ts) on real servers, as the application role: one
// statement and a position in one round trip, through pg's own Query and Client.
let cluster: Cluster;
const clients: pg.Client[] = [];

async function clientOf(node: 'primary' | 'replica', config: Partial<pg.ClientConfig> = {}): Promise<pg.PoolClient> {
  const handle = node === 'primary' ? cluster.primary : cluster.replicas[0]!;
  const client = new pg.Client({ connectionString: urlAs(handle), ...config });
  await client.connect();
  // In pipeline mode pg ends a connection whose statement timed out (its answers would block the
  // rest): then it emits 'error', as the router's pooled connections hear (lib/pool.ts).
  client.on('error', () => {});
  clients.push(client);
  return client as pg.PoolClient;
}

const modeOf: Record<'primary' | 'replica', FlightMode> = { primary: 'insert-after', replica: 'replay-before' };

beforeAll(async () => {
  cluster = await startTestCluster({ replicas: 1 });
  await cluster.primary.query('create table flights (id int primary key, v text)');
  await cluster.primary.query("insert into flights values (1, 'one'), (2, 'two')");
  await cluster.waitForReplicas();
});

afterAll(async () => {
  await Promise.all(clients.map((c) => c.end().catch(() => {})));
  await cluster?.stop();
});

describe.each(['primary', 'replica'] as const)('a flight on the %s', (node) => {
  it("gives the statement's result as pg does, and the position", async () => {
    const client = await clientOf(node);
    const position = flightPosition(modeOf[node], 0);
    const [before] = (
      await client.query<{ lsn: string }>(
        `select ${node === 'primary' ? 'pg_current_wal_insert_lsn' : 'pg_last_wal_replay_lsn'}()::text as lsn`,
      )
    ).rows;
    const result = await flyOn(
      client,
      { text: 'select id, v from flights where id >= $1 order by id', rowMode: 'array' } as pg.QueryConfig,
      [1],
      position,
    );
    expect(result.rows).toEqual([
      [1, 'one'],
      [2, 'two'],
    ]);
    expect(result.fields.map((f) => f.name)).toEqual(['id', 'v']);
    expect(position.lsn).toBeGreaterThanOrEqual(parseLsn(before!.lsn));
    if (node === 'replica') {
      await client.query("set timezone = 'Asia/Kolkata'"); // the start time reads the same in any TimeZone
      const [server] = (await client.query<{ started: string }>(`select ${STARTED} as started`)).rows;
      expect(position.started).toBe(server!.started);
    }
    expect((await client.query('select 1 as one')).rows).toEqual([{ one: 1 }]); // the connection goes on
  });

  it("the connection's own type parsers apply", async () => {
    const types = {
      getTypeParser: (oid: number, format?: 'text' | 'binary') =>
        oid === 23 ? (v: string) => `int:${v}` : pg.types.getTypeParser(oid, format),
    };
    const client = await clientOf(node, { types: types as pg.CustomTypesConfig });
    const result = await flyOn(client, 'select id from flights where id = $1', [2], flightPosition(modeOf[node], 0));
    expect(result.rows).toEqual([{ id: 'int:2' }]);
  });

  it("rejects with the statement's own error; the position is read all the same (its own transaction); the connection goes on", async () => {
    const client = await clientOf(node);
    const position = flightPosition(modeOf[node], 0);
    await expect(flyOn(client, 'select 1 / $1::int as x', [0], position)).rejects.toMatchObject({ code: '22012' });
    expect(position.lsn).toBeDefined();
    expect((await client.query('select 2 as two')).rows).toEqual([{ two: 2 }]);
  });

  it('rejects when a value cannot be sent (as pg does), and the connection goes on', async () => {
    const client = await clientOf(node);
    const bad = {
      toPostgres() {
        throw new Error('no such value');
      },
    };
    await expect(flyOn(client, 'select $1::text as x', [bad], flightPosition(modeOf[node], 0))).rejects.toThrow('no such value');
    expect((await client.query('select 3 as three')).rows).toEqual([{ three: 3 }]);
  });

  it("the connection's query_timeout bounds it", async () => {
    const client = await clientOf(node, { query_timeout: 300 });
    await expect(flyOn(client, 'select pg_sleep($1)', [5], flightPosition(modeOf[node], 0))).rejects.toThrow('Query read timeout');
  });
});

describe('pipeline mode', () => {
  it("a client of pg's pipeline mode flies as well, and stays in it; another leaves it as it was", async () => {
    const pipelined = await clientOf('primary', { pipeline: true } as Partial<pg.ClientConfig>);
    const position = flightPosition('insert-after', 0);
    expect((await flyOn(pipelined, 'select $1::int as x', [7], position)).rows).toEqual([{ x: 7 }]);
    expect(position.lsn).toBeDefined();
    expect((pipelined as unknown as { pipeline: boolean }).pipeline).toBe(true);
    const plain = await clientOf('primary');
    await flyOn(plain, 'select $1::int as x', [8], flightPosition('insert-after', 0));
    expect((plain as unknown as { pipeline: boolean }).pipeline).toBe(false);
  });

  it('a statement that fails at its commit fails (its own transaction), and the position after it is still read', async () => {
    await cluster.primary.query('create table parents (id int primary key)');
    await cluster.primary.query('create table children (id int primary key, parent int references parents deferrable initially deferred)');
    const client = await clientOf('primary');
    const position = flightPosition('insert-after', 0);
    await expect(flyOn(client, 'insert into children values ($1, $2)', [1, 99], position)).rejects.toMatchObject({ code: '23503' });
    expect(position.lsn).toBeDefined();
    expect((await client.query('select count(*)::int as n from children')).rows).toEqual([{ n: 0 }]);
  });
});

describe('what can fly', () => {
  it('a plain statement: SQL text or a config without a name, a row count, a submittable or a timeout of its own', () => {
    expect(canFly('select $1', [1])).toBe(true);
    expect(canFly('select 1', undefined)).toBe(true);
    expect(canFly({ text: 'select $1', values: [1] }, undefined)).toBe(true);
    expect(canFly({ text: 'select $1', name: 'named' }, [1])).toBe(false);
    expect(canFly({ text: 'select $1', rows: 10 }, [1])).toBe(false);
    expect(canFly({ text: 'select $1', query_timeout: 5 }, [1])).toBe(false);
    expect(canFly({ submit() {} }, undefined)).toBe(false);
    expect(canFly('select $1', 'not an array')).toBe(false);
  });
});
