import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Cluster } from 'pg-replica-router/testing';
import { parseLsn } from 'pg-replica-router';
import { canFly, flightPosition, flyOn, type FlightMode } from '../../lib/position-flight.js';
import { startTestCluster, urlAs } from '../helpers/cluster.js';

// The flight itself (lib/position-flight.ts) on real servers, as the application role: one
// statement and a position in one round trip, through pg's own Query and Client.
let cluster: Cluster;
const clients: pg.Client[] = [];

async function clientOf(node: 'primary' | 'replica', config: Partial<pg.ClientConfig> = {}): Promise<pg.PoolClient> {
  const handle = node === 'primary' ? cluster.primary : cluster.replicas[0]!;
  const client = new pg.Client({ connectionString: urlAs(handle), ...config });
  await client.connect();
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
      const [server] = (await client.query<{ started: string }>('select pg_postmaster_start_time()::text as started')).rows;
      expect(position).toMatchObject({ started: server!.started, ownSnapshot: true });
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

  it("rejects with the statement's own error; no position; the connection goes on", async () => {
    const client = await clientOf(node);
    const position = flightPosition(modeOf[node], 0);
    await expect(flyOn(client, 'select 1 / $1::int as x', [0], position)).rejects.toMatchObject({ code: '22012' });
    expect(position.mode === 'insert-after' ? position.lsn : undefined).toBeUndefined(); // a position after the statement never ran
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

describe('what can fly', () => {
  it('only what pg sends with the extended protocol anyway: one statement with values, or queryMode extended', () => {
    expect(canFly('select $1', [1])).toBe(true);
    expect(canFly('select 1', undefined)).toBe(false); // simple protocol: may hold several statements
    expect(canFly('select 1', [])).toBe(false);
    expect(canFly({ text: 'select $1', values: [1] }, undefined)).toBe(true);
    expect(canFly({ text: 'select $1', values: [1] }, [])).toBe(false); // pg takes the argument, even empty
    expect(canFly({ text: 'select 1', queryMode: 'extended' }, undefined)).toBe(true);
    expect(canFly({ text: 'select $1', name: 'named' }, [1])).toBe(false);
    expect(canFly({ text: 'select $1', rows: 10 }, [1])).toBe(false);
    expect(canFly({ text: 'select $1', query_timeout: 5 }, [1])).toBe(false);
    expect(canFly('select $1', 'not an array')).toBe(false);
  });
});
