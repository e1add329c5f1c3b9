import pg from 'pg';

/** What one connection to a node answered (any role may ask all of it; some fields need privileges). */
export interface ProbeRow {
  in_recovery: boolean;
  version: string;
  user: string;
  superuser: boolean | null;
  read_all_stats: boolean;
  control_functions: boolean;
  started: string;
  addr: string | null;
  port: number | null;
  backend_pid: number;
  lsn: string | null;
  replay_paused: boolean | null;
  apply_delay: string;
  receiver: string | null;
}

const PROBE_SQL = `select pg_is_in_recovery() as in_recovery,
  current_setting('server_version') as version,
  current_user as user,
  (select rolsuper from pg_roles where rolname = current_user) as superuser,
  pg_has_role(current_user, 'pg_read_all_stats', 'member') as read_all_stats,
  has_function_privilege('pg_control_system()', 'execute') as control_functions,
  pg_postmaster_start_time()::text as started,
  inet_server_addr()::text as addr,
  inet_server_port() as port,
  pg_backend_pid() as backend_pid,
  case when pg_is_in_recovery() then pg_last_wal_replay_lsn() else pg_current_wal_insert_lsn() end::text as lsn,
  case when pg_is_in_recovery() then pg_is_wal_replay_paused() end as replay_paused,
  current_setting('recovery_min_apply_delay') as apply_delay,
  (select status from pg_stat_wal_receiver) as receiver`;

/** A node as the doctor saw it: one probe per connection, opened at the same time. */
export interface Probe {
  readonly rows: readonly ProbeRow[];
  /** Process ids the connections were given at login (a pooler hands out its own). */
  readonly processIds: readonly (number | undefined)[];
  readonly systemId: string | undefined;
  /** Server clock minus ours, in ms, from the fastest of a few round trips, and half that round trip. */
  readonly clock: { offsetMs: number; uncertaintyMs: number } | undefined;
}

/** A server's identity as far as any role can see it: another value means another server. */
export function serverKey(row: Pick<ProbeRow, 'started' | 'addr' | 'port'>): string {
  return `${row.started}|${row.addr ?? ''}|${row.port ?? ''}`;
}

/**
 * Opens `connections` connections to a node at once (a load balancer spreads simultaneous
 * connections; one at a time may land on one server), probes each, asks the system identifier
 * and the clock on the first. Rejects when the node cannot be reached.
 */
export async function probeNode(config: pg.PoolConfig, timeoutMs: number, connections: number): Promise<Probe> {
  const clients = Array.from({ length: connections }, () => {
    const client = new pg.Client({ ...config, connectionTimeoutMillis: timeoutMs, query_timeout: timeoutMs });
    client.on('error', () => {}); // a dropped connection fails its query; nothing more to hear
    return client;
  });
  try {
    await Promise.all(clients.map((c) => c.connect()));
    const rows = await Promise.all(clients.map(async (c) => (await c.query<ProbeRow>(PROBE_SQL)).rows[0]!));
    const first = clients[0]!;
    const systemId = await first.query<{ id: string }>('select system_identifier::text as id from pg_control_system()').then(
      (r) => r.rows[0]?.id,
      () => undefined, // not granted to this role
    );
    return {
      rows,
      processIds: clients.map((c) => (c as pg.Client & { processID?: number | null }).processID ?? undefined),
      systemId,
      clock: await clockOffset(first),
    };
  } finally {
    await Promise.all(clients.map((c) => c.end().catch(() => {})));
  }
}

/** Server clock minus ours, from the fastest of five round trips (its midpoint is the best guess). */
async function clockOffset(client: pg.Client): Promise<{ offsetMs: number; uncertaintyMs: number } | undefined> {
  let best: { offsetMs: number; uncertaintyMs: number } | undefined;
  for (let i = 0; i < 5; i++) {
    const sent = Date.now();
    const { rows } = await client.query<{ ms: string }>('select (extract(epoch from clock_timestamp()) * 1000)::text as ms');
    const received = Date.now();
    const uncertaintyMs = (received - sent) / 2;
    if (best && best.uncertaintyMs <= uncertaintyMs) continue;
    best = { offsetMs: Number(rows[0]!.ms) - (sent + received) / 2, uncertaintyMs };
  }
  return best;
}
