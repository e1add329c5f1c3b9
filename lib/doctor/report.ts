import type { NodeVerdict } from '../node-verdict.js';

/** How bad a finding is: `problem` fails the doctor (non-zero exit); `warn` and `info` do not. */
export type Severity = 'ok' | 'info' | 'warn' | 'problem';

/** One thing the doctor checked, and what it found. */
export interface DoctorFinding {
  /**
   * What was checked: `reachable`, `role`, `identity`, `servers`, `pooler`, `streaming`, `lag`,
   * `privileges`, `clock`, `store`, `store-eviction`, `store-persistence`, `token-secret`.
   */
  readonly check: string;
  /** The node it is about (`primary`, a replica's name), or undefined for the store and the secret. */
  readonly node?: string | undefined;
  readonly severity: Severity;
  readonly message: string;
}

/** What the doctor learnt of one node over its own connections. */
export interface NodeFacts {
  readonly name: string;
  readonly role: 'primary' | 'replica';
  readonly reachable: boolean;
  readonly error?: string | undefined;
  readonly serverVersion?: string | undefined;
  readonly inRecovery?: boolean | undefined;
  readonly systemId?: string | undefined;
  /** `pg_current_wal_insert_lsn()` (primary) or `pg_last_wal_replay_lsn()` (replica). */
  readonly lsn?: string | undefined;
  /** Replica: the primary's insert position minus this replay position, in bytes (≥ 0). */
  readonly lagBytes?: number | undefined;
  /** Replica: the monitor's replay lag in ms (derived from positions). */
  readonly lagMs?: number | undefined;
  readonly replayPaused?: boolean | undefined;
  /** `recovery_min_apply_delay` as the server reports it (`0`, `500ms`). */
  readonly applyDelay?: string | undefined;
  /** `pg_stat_wal_receiver.status` (`streaming`, …); undefined when not visible to the role. */
  readonly receiver?: string | undefined;
  /** This clock minus the doctor's, in ms (± `clockUncertaintyMs`). */
  readonly clockOffsetMs?: number | undefined;
  readonly clockUncertaintyMs?: number | undefined;
  /** Distinct servers seen behind this address over simultaneous connections (1 is right). */
  readonly servers?: number | undefined;
  /** A pooler (PgBouncer) between the app and the server: backend pids differ from the login's. */
  readonly pooled?: boolean | undefined;
  readonly user?: string | undefined;
  readonly superuser?: boolean | undefined;
}

/** What `router.doctor()` and `pg-replica-router doctor` report. */
export interface DoctorReport {
  /** No finding is a `problem`. */
  readonly ok: boolean;
  readonly findings: readonly DoctorFinding[];
  readonly nodes: readonly NodeFacts[];
  /** What routing does with each node now, and why (the router's monitor). */
  readonly routing: readonly NodeVerdict[];
}

const MARK: Record<Severity, string> = { ok: 'ok     ', info: 'info   ', warn: 'WARN   ', problem: 'PROBLEM' };

/** The report as text for a terminal: findings by node, then routing. */
export function formatReport(report: DoctorReport): string {
  const lines: string[] = [];
  for (const f of report.findings) lines.push(`${MARK[f.severity]} ${f.node ? `[${f.node}] ` : ''}${f.check}: ${f.message}`);
  lines.push('', 'Routing:');
  for (const v of report.routing) lines.push(`  ${v.serving ? 'serving' : 'out    '} ${v.node}: ${v.message}`);
  const problems = report.findings.filter((f) => f.severity === 'problem').length;
  const warnings = report.findings.filter((f) => f.severity === 'warn').length;
  lines.push(
    '',
    problems === 0 ? `No problems (${warnings} warning${warnings === 1 ? '' : 's'}).` : `${problems} problem(s), ${warnings} warning(s).`,
  );
  return lines.join('\n');
}
