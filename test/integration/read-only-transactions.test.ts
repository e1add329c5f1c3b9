import { afterAll, describe, expect, it } from 'vitest';
import type { Router } from 'pg-replica-router';
import type { Cluster } from 'pg-replica-router/testing';
import { engineOf } from '../../lib/internal.js';
import { routerFor, useRoutedCluster } from '../helpers/cluster.js';

// A `BEGIN READ ONLY` transaction on the primary writes nothing (PostgreSQL refuses every write in
// it, its functions' too), so its COMMIT is no write: the scope does not wait for a position read
// at its end. A plain
// `BEGIN; SELECT …; COMMIT` still counts as a write: a read may call a function that writes.

let cluster: Cluster;
let primaryOnly: Router;

useRoutedCluster(
  {
    cluster: { replicas: 1 },
    setup: [
      'create table ro_notes (id serial primary key, note text)',
      "create function ro_note_write() returns int language sql volatile as $$ insert into ro_notes (note) values ('from a function') returning id $$",
    ],
  },
  (c) => {
    cluster = c;
    primaryOnly = routerFor(cluster, { replicas: [] });
  },
);

/**
 * Runs `statements` on one checked-out client in a session; the reads of the primary's position
 * after writes the scope made (and waited for) before it ended. (A read on the primary is covered
 * by a primary sample taken after it, off the request path: not counted here.)
 */
async function positionReadsOf(session: string, statements: string[]): Promise<number> {
  const positions = engineOf(primaryOnly)!.sessions.primary;
  const read = positions.read.bind(positions);
  let reads = 0;
  positions.read = (notBefore?: number) => {
    reads++;
    return read(notBefore);
  };
  try {
    await primaryOnly.withSession(session, async () => {
      const client = await primaryOnly.pool.connect();
      try {
        for (const sql of statements) await client.query(sql);
      } finally {
        client.release();
      }
    });
    return reads;
  } finally {
    positions.read = read;
  }
}

afterAll(() => primaryOnly?.close());

describe('read-only transactions on the primary', () => {
  it('PostgreSQL refuses a write in a READ ONLY transaction, also from a function a read calls', async () => {
    const client = await primaryOnly.pool.connect();
    try {
      await client.query('begin read only');
      await expect(client.query('select ro_note_write()')).rejects.toMatchObject({ code: '25006' });
      await client.query('rollback');
    } finally {
      client.release();
    }
  });

  it('BEGIN READ ONLY; SELECT; COMMIT costs its scope no position read (its read on the primary is covered later, off the request path, as any read there); BEGIN; SELECT; COMMIT still does', async () => {
    expect(await positionReadsOf('ro-reader', ['begin read only', 'select count(*) from ro_notes', 'commit'])).toBe(0);
    expect(await positionReadsOf('rw-reader', ['begin', 'select count(*) from ro_notes', 'commit'])).toBeGreaterThan(0);
    // why the plain one counts: a "read" that writes through a function, committed on the primary
    expect(await positionReadsOf('fn-writer', ['begin', 'select ro_note_write()', 'commit'])).toBeGreaterThan(0);
  });
});
