import type { SettingValue } from './options.js';

/**
 * postgresql.conf for every node of a test cluster, shared by the native and container
 * providers. Tuned for tests: durable enough to replicate, fast to start, quick to notice a
 * restarted primary.
 */
export function clusterSettings(extra: Record<string, SettingValue>): Record<string, SettingValue> {
  return {
    wal_level: 'replica',
    max_wal_senders: 20,
    max_replication_slots: 20,
    hot_standby: 'on',
    // Replay position reported to the primary often, so pg_stat_replication is fresh.
    wal_receiver_status_interval: '1s',
    // Reconnect quickly after the primary restarts.
    wal_retrieve_retry_interval: '500ms',
    fsync: 'off',
    full_page_writes: 'off',
    shared_buffers: '32MB',
    max_connections: 200,
    log_min_messages: 'warning',
    log_line_prefix: '%m [%p] ',
    ...extra,
  };
}

/** Quotes a value for postgresql.conf. */
export function confValue(value: SettingValue): string {
  if (typeof value === 'number') return String(value);
  if (typeof value === 'boolean') return value ? 'on' : 'off';
  return `'${value.replace(/\\/g, '\\\\').replace(/'/g, "''")}'`;
}

/** The settings as postgresql.conf lines. */
export function confLines(settings: Record<string, SettingValue>): string {
  return Object.entries(settings)
    .map(([name, value]) => `${name} = ${confValue(value)}\n`)
    .join('');
}

/** The settings as `postgres -c name=value` arguments (for containers). */
export function confArgs(settings: Record<string, SettingValue>): string[] {
  return Object.entries(settings).flatMap(([name, value]) => [
    '-c',
    `${name}=${typeof value === 'boolean' ? (value ? 'on' : 'off') : String(value)}`,
  ]);
}

/** The standby's connection to its primary. */
export function standbyLines(opts: {
  host: string;
  port: number;
  user: string;
  password?: string;
  slot: string;
  applyDelayMs: number;
}): string {
  const conninfo = [`host=${opts.host}`, `port=${opts.port}`, `user=${opts.user}`, `application_name=${opts.slot}`];
  if (opts.password) conninfo.push(`password=${opts.password}`);
  return confLines({
    primary_conninfo: conninfo.join(' '),
    primary_slot_name: opts.slot,
    recovery_min_apply_delay: `${opts.applyDelayMs}ms`,
  });
}
