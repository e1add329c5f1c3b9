import pg from 'pg';
import Cursor from 'pg-cursor';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { RoutedClient, Router } from 'pg-replica-router';
import type { Cluster } from 'pg-replica-router/testing';
import { nodeByPort, settle, urlAs, useRoutedCluster } from '../helpers/cluster.js';

// The checked-out client's pg.Client surface beyond query/release (issue 15), side by side with a
// plain pg.Client to the primary.

let cluster: Cluster;
let router: Router;
let plain: pg.Client;
const INT8 = 20;
const tagged = (v: string) => `int8:${v}`;
const READ = 'select 7::int8 as n, inet_server_port() as port';

useRoutedCluster({ setup: ['create table surface (id int8 generated always as identity primary key, note text)'] }, (c, r) => {
  [cluster, router] = [c, r];
});

beforeAll(async () => {
  plain = new pg.Client({ connectionString: urlAs(cluster.primary) });
  await plain.connect();
});
afterAll(() => plain?.end());

async function checkedOut<T>(use: (client: RoutedClient) => Promise<T>): Promise<T> {
  const client = await router.pool.connect();
  try {
    return await use(client);
  } finally {
    client.release();
  }
}

describe('escaping', () => {
  it("is pg's own escapeLiteral / escapeIdentifier, and the escaped text runs", async () => {
    const inputs = ["o'k", 'back\\slash', 'quote"d', 'plain', "both\\'"];
    await checkedOut(async (client) => {
      for (const s of inputs) {
        expect(client.escapeLiteral(s)).toBe(plain.escapeLiteral(s));
        expect(client.escapeIdentifier(s)).toBe(plain.escapeIdentifier(s));
        const { rows } = await client.query(`select ${client.escapeLiteral(s)} as ${client.escapeIdentifier(s)}`);
        expect(rows[0]![s]).toBe(s);
      }
    });
  });
});

describe('type parsers', () => {
  it('apply to a read on a replica and a write on the primary of the same checkout, as on a pg.Client', async () => {
    await settle(router, cluster);
    const plainTypes = new pg.Client({ connectionString: urlAs(cluster.primary) });
    await plainTypes.connect();
    try {
      plainTypes.setTypeParser(INT8, tagged);
      expect((await plainTypes.query(READ)).rows[0]!.n).toBe('int8:7');
      await checkedOut(async (client) => {
        expect(client.getTypeParser(INT8)('7')).toBe(plain.getTypeParser(INT8)('7')); // untouched: pg's
        client.setTypeParser(INT8, tagged);
        expect(client.getTypeParser(INT8)).toBe(tagged);
        const read = await client.query(READ);
        expect(nodeByPort(cluster, read.rows[0]!.port)).toMatch(/^r\d$/);
        expect(read.rows[0]!.n).toBe('int8:7');
        const write = await client.query("insert into surface (note) values ('typed') returning id");
        expect(client.node).toBe('primary');
        expect(write.rows[0]!.id).toMatch(/^int8:\d+$/);
        // A statement's own types win, as on pg.Client.
        const own = { getTypeParser: () => (v: string) => `own:${v}` };
        expect((await client.query({ text: 'select 7::int8 as n', types: own })).rows[0]!.n).toBe('own:7');
        expect((await plainTypes.query({ text: 'select 7::int8 as n', types: own })).rows[0]!.n).toBe('own:7');
        // A cursor gets them too (pg.Client gives its types to a submittable's result).
        const cursor = client.query(new Cursor('select 8::int8 as n'));
        const rows = await cursor.read(10);
        await cursor.close();
        expect(rows).toEqual([{ n: 'int8:8' }]);
      });
    } finally {
      await plainTypes.end();
    }
  });

  it('stay with the client object, as on a pg.Client: the next checkout of that connection has them', async () => {
    let first: RoutedClient | undefined;
    // On the primary from the checkout (no move to another connection, which timing would decide).
    const onPrimary = <T>(use: (client: RoutedClient) => Promise<T>) => router.withConsistency('primary', () => checkedOut(use));
    await onPrimary(async (client) => {
      client.setTypeParser(INT8, tagged);
      const { rows } = await client.query("insert into surface (note) values ('kept') returning id");
      expect(rows[0]!.id).toMatch(/^int8:/);
      first = client;
    });
    // pg-pool hands out the connection released last, and the same connection gives the same object.
    let seen = false;
    for (let i = 0; i < 5 && !seen; i++) {
      await onPrimary(async (client) => {
        const { rows } = await client.query("insert into surface (note) values ('other') returning id");
        if (client !== first) return expect(rows[0]!.id).toMatch(/^\d+$/); // another object: pg's own int8 parser
        seen = true;
        expect(rows[0]!.id).toMatch(/^int8:/);
        expect(client.getTypeParser(INT8)).toBe(tagged);
      });
    }
    expect(seen).toBe(true);
  });
});

describe('connection fields', () => {
  const FIELDS = ['database', 'user', 'host', 'port', 'ssl', 'binary', 'pipeline'] as const;

  it('before the first statement are those of the connection checked out, as on a pg.Client', async () => {
    await router.withConsistency('primary', () =>
      checkedOut(async (client) => {
        expect(client.node).toBe('primary'); // where its reads go
        for (const field of FIELDS) expect([field, client[field]]).toEqual([field, plain[field as keyof pg.Client]]);
        expect(client.port).toBe(cluster.primary.port);
      }),
    );
    await settle(router, cluster);
    await router.withConsistency('eventual', () =>
      checkedOut(async (client) => {
        const replica = cluster.replicas.find((r) => r.name === client.node)!;
        expect(replica, 'checked out on a replica: its reads may go to any').toBeDefined();
        expect(client.port).toBe(replica.port);
      }),
    );
  });

  it('follow the node the client is bound to: a replica after a read, the primary after a write', async () => {
    await settle(router, cluster);
    await checkedOut(async (client) => {
      const read = await client.query(READ);
      const replica = cluster.replicas.find((r) => r.port === Number(read.rows[0]!.port))!;
      expect(replica).toBeDefined();
      expect(client.port).toBe(replica.port);
      expect(client.host).toBe(replica.host);
      expect(client.database).toBe(plain.database);
      expect(client.user).toBe(plain.user);
      await client.query("insert into surface (note) values ('fields')");
      expect(client.port).toBe(cluster.primary.port);
      for (const field of FIELDS) expect([field, client[field]]).toEqual([field, plain[field as keyof pg.Client]]);
    });
  });
});

describe('getTransactionStatus', () => {
  it("follows the bound connection's transaction like a pg.Client's: I, T, E, I", async () => {
    await checkedOut(async (client) => {
      const seen = [client.getTransactionStatus()];
      await client.query('begin');
      seen.push(client.getTransactionStatus());
      await client.query('select 1/0').catch(() => undefined);
      // pg may reject the statement before its ReadyForQuery ('E') arrives: wait for it, on both.
      await vi.waitFor(() => expect(client.getTransactionStatus()).toBe('E'));
      seen.push(client.getTransactionStatus());
      await client.query('rollback');
      seen.push(client.getTransactionStatus());
      const naive = [plain.getTransactionStatus()];
      await plain.query('begin');
      naive.push(plain.getTransactionStatus());
      await plain.query('select 1/0').catch(() => undefined);
      await vi.waitFor(() => expect(plain.getTransactionStatus()).toBe('E'));
      naive.push(plain.getTransactionStatus());
      await plain.query('rollback');
      naive.push(plain.getTransactionStatus());
      expect(seen).toEqual(naive);
      expect(seen).toEqual(['I', 'T', 'E', 'I']);
    });
  });
});
