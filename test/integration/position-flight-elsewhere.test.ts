import { createRequire } from 'node:module';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startPgBouncer, type Cluster, type PgBouncerHandle } from 'pg-replica-router/testing';
import { flightPosition, flyOn, type FlightMode } from '../../lib/position-flight.js';
import { startTestCluster, urlAs } from '../helpers/cluster.js';

// Flights (lib/position-flight.ts) where the connection is not the one pg 8.23 makes straight to
// the server: through PgBouncer in transaction mode (each of a flight's two transactions may get
// another server connection), and with a pg older than pipeline mode (peer range ^8.16.3: the
// second query goes once the first is answered).
const require = createRequire(import.meta.url);
const oldPg = require('pg-without-pipeline') as typeof pg;
let cluster: Cluster;
const bouncers: PgBouncerHandle[] = [];
const modes = [
  ['primary', 'insert-after'],
  ['replica', 'replay-before'],
] as const;

beforeAll(async () => {
  cluster = await startTestCluster({ replicas: 1 });
  await cluster.primary.query('create table flown (id int primary key, v int)');
  await cluster.primary.query('insert into flown values (1, 10)');
  await cluster.waitForReplicas();
});

afterAll(async () => {
  for (const bouncer of bouncers) await bouncer.stop();
  await cluster?.stop();
});

/** `loops` concurrent loops of `rounds` flights (a read, then a failing statement) on `pool`'s connections. */
async function fly(pool: pg.Pool, mode: FlightMode, loops: number, rounds: number): Promise<{ ok: number; wrong: string[] }> {
  let ok = 0;
  const wrong: string[] = [];
  await Promise.all(
    Array.from({ length: loops }, async () => {
      for (let i = 0; i < rounds; i++) {
        const client = await pool.connect();
        try {
          const position = flightPosition(mode, 0);
          const { rows } = await flyOn(client, 'select v from flown where id = $1', [1], position);
          if (rows[0]?.v !== 10 || position.lsn === undefined) wrong.push(JSON.stringify(rows));
          const failed = await flyOn(client, 'select 1 / $1::int as x', [0], flightPosition(mode, 0)).catch(
            (e: { code?: string }) => e.code,
          );
          if (failed !== '22012') wrong.push(String(failed));
          else ok++;
        } finally {
          client.release();
        }
      }
    }),
  );
  return { ok, wrong };
}

describe.each(modes)('a flight on the %s (%s)', (node, mode) => {
  const handle = () => (node === 'primary' ? cluster.primary : cluster.replicas[0]!);

  it('through PgBouncer in transaction mode: every answer and every error where it belongs', async () => {
    const bouncer = await startPgBouncer(handle(), { poolMode: 'transaction', poolSize: 4 });
    bouncers.push(bouncer);
    const pool = new pg.Pool({ connectionString: bouncer.appConnectionString!, max: 4 });
    try {
      expect(await fly(pool, mode, 8, 25)).toEqual({ ok: 200, wrong: [] });
    } finally {
      await pool.end();
    }
  });

  it('with a pg without pipeline mode: the same, one query after the other', async () => {
    expect(require('pg-without-pipeline/package.json').version).toBe('8.16.3');
    expect((new oldPg.Client() as unknown as { pipeline?: boolean }).pipeline).toBeUndefined(); // no pipeline mode there
    const pool = new oldPg.Pool({ connectionString: urlAs(handle()), max: 2 });
    try {
      expect(await fly(pool, mode, 2, 25)).toEqual({ ok: 50, wrong: [] });
      const client = await pool.connect();
      expect((client as unknown as { pipeline?: boolean }).pipeline).toBeUndefined(); // left as it was
      client.release();
    } finally {
      await pool.end();
    }
  });
});
