import { tryParseLsn } from '../lsn.js';
import type { NodeState } from '../node-state.js';
import type { Probe } from './probe.js';
import { serverKey } from './probe.js';
import type { DoctorFinding, NodeFacts, Severity } from './report.js';

/** A node's probe outcome: what it answered, or why it could not be reached. */
export type ProbeOutcome =
  { name: string; role: 'primary' | 'replica'; probe: Probe } | { name: string; role: 'primary' | 'replica'; error: unknown };

/** Clocks further apart than this (beyond the measurement's own uncertainty) are reported. */
export const CLOCK_SKEW_WARN_MS = 50;

type Say = (check: string, severity: Severity, message: string) => void;

/** Findings and facts for every node, judged against the primary's probe. */
export function judgeNodes(
  outcomes: readonly ProbeOutcome[],
  states: readonly NodeState[],
): { findings: DoctorFinding[]; nodes: NodeFacts[] } {
  const findings: DoctorFinding[] = [];
  const primary = outcomes.find((o) => o.role === 'primary');
  const primaryProbe = primary && 'probe' in primary ? primary.probe : undefined;
  const nodes = outcomes.map((outcome) => {
    const say: Say = (check, severity, message) => findings.push({ check, node: outcome.name, severity, message });
    if (!('probe' in outcome)) {
      say('reachable', 'problem', `cannot connect: ${String((outcome.error as Error)?.message ?? outcome.error)}`);
      return {
        name: outcome.name,
        role: outcome.role,
        reachable: false,
        error: String((outcome.error as Error)?.message ?? outcome.error),
      };
    }
    return judgeNode(
      outcome.name,
      outcome.role,
      outcome.probe,
      primaryProbe,
      states.find((s) => s.name === outcome.name),
      say,
    );
  });
  return { findings, nodes };
}

function judgeNode(
  name: string,
  role: 'primary' | 'replica',
  probe: Probe,
  primary: Probe | undefined,
  state: NodeState | undefined,
  say: Say,
): NodeFacts {
  const row = probe.rows[0]!;
  const servers = new Set(probe.rows.map(serverKey)).size;
  const pooled = probe.rows.some((r, i) => probe.processIds[i] !== undefined && probe.processIds[i] !== r.backend_pid);
  say('reachable', 'ok', `PostgreSQL ${row.version} as ${row.user}`);
  judgeRole(role, probe, primary, say);
  if (servers > 1) {
    say(
      'servers',
      'problem',
      `${probe.rows.length} simultaneous connections reached ${servers} different servers: this address is a load balancer. ` +
        'The replay check and the query must reach the same server; list each server as its own replica',
    );
  } else say('servers', 'ok', `${probe.rows.length} simultaneous connections reached one server`);
  if (pooled) {
    say(
      'pooler',
      'info',
      'a pooler (PgBouncer) is in front: its backend pids are not the login keys. Fences wait for older transactions instead of ending backends; see docs/pgbouncer.md',
    );
  }
  judgePrivileges(row, say);
  let lagBytes: number | undefined;
  if (role === 'replica' && row.in_recovery) {
    lagBytes = judgeReplication(row, primary, state, say);
  }
  judgeClock(probe, primary, role, say);
  return {
    name,
    role,
    reachable: true,
    serverVersion: row.version,
    inRecovery: row.in_recovery,
    systemId: probe.systemId,
    lsn: row.lsn ?? undefined,
    lagBytes,
    lagMs: state?.lagMs,
    replayPaused: row.replay_paused ?? undefined,
    applyDelay: row.apply_delay,
    receiver: row.receiver ?? undefined,
    clockOffsetMs: probe.clock?.offsetMs,
    clockUncertaintyMs: probe.clock?.uncertaintyMs,
    servers,
    pooled,
    user: row.user,
    superuser: row.superuser ?? undefined,
  };
}

function judgeRole(role: 'primary' | 'replica', probe: Probe, primary: Probe | undefined, say: Say): void {
  const row = probe.rows[0]!;
  if (role === 'primary') {
    if (row.in_recovery) say('role', 'problem', 'the primary is in recovery (a replica): writes will fail');
    else say('role', 'ok', 'not in recovery: a primary');
    return;
  }
  const primaryRow = primary?.rows[0];
  if (!row.in_recovery) {
    const same = primaryRow !== undefined && serverKey(primaryRow) === serverKey(row) && probe.systemId === primary?.systemId;
    say(
      'role',
      'problem',
      same
        ? "this is the primary itself (same server): its URL is the primary's. Routing keeps it out of rotation"
        : 'not in recovery (pg_is_in_recovery() is false): a primary or a promoted replica. Routing keeps it out of rotation',
    );
    return;
  }
  say('role', 'ok', 'in recovery: a replica');
  if (probe.systemId === undefined || primary?.systemId === undefined) {
    say(
      'identity',
      'warn',
      'the system identifier is not readable (pg_control_system() not granted): a replica of another cluster is told apart only when it is seen ahead of the primary',
    );
  } else if (probe.systemId !== primary.systemId) {
    say(
      'identity',
      'problem',
      `another cluster: system identifier ${probe.systemId}, the primary's is ${primary.systemId}. Routing keeps it out of rotation`,
    );
  } else say('identity', 'ok', `same cluster as the primary (system identifier ${probe.systemId})`);
}

function judgePrivileges(row: Probe['rows'][number], say: Say): void {
  if (row.superuser) {
    say('privileges', 'warn', `${row.user} is a superuser: it works, but an application should connect as a role with table grants only`);
    return;
  }
  const notes = [`${row.user} is not a superuser (least privilege: good)`];
  if (!row.read_all_stats) {
    notes.push(
      "without pg_read_all_stats a replica's timeline comes from its control file, so after a failover a replica re-enters rotation only once that file shows the new timeline (seconds under writes)",
    );
  }
  if (!row.control_functions) notes.push('pg_control_system() is not executable: the system identifier is not checked');
  say('privileges', row.control_functions ? 'ok' : 'warn', notes.join('; '));
}

/** A replica's streaming state and lag; returns its lag in bytes behind the primary's insert position. */
function judgeReplication(
  row: Probe['rows'][number],
  primary: Probe | undefined,
  state: NodeState | undefined,
  say: Say,
): number | undefined {
  if (row.receiver === 'streaming') say('streaming', 'ok', 'streaming from its upstream');
  else if (row.receiver === null && !row.read_all_stats && row.superuser !== true) {
    say('streaming', 'info', 'WAL receiver state not visible to this role (needs pg_read_all_stats)');
  } else say('streaming', 'warn', `WAL receiver is ${row.receiver ?? 'not running'}: the replica is not streaming and falls behind`);
  if (row.replay_paused) say('streaming', 'warn', 'replay is paused (pg_wal_replay_pause()): reads needing newer data go elsewhere');
  if (row.apply_delay !== '0') {
    say(
      'lag',
      'warn',
      `recovery_min_apply_delay is ${row.apply_delay}: reads after a session's write skip this replica for at least that long`,
    );
  }
  const replay = tryParseLsn(row.lsn ?? undefined);
  const insert = tryParseLsn(primary?.rows[0]?.in_recovery === false ? (primary.rows[0].lsn ?? undefined) : undefined);
  if (replay === undefined || insert === undefined) return undefined;
  const lagBytes = Math.max(0, Number(insert - replay));
  const lagMs = state?.lagMs;
  say('lag', 'info', `${lagBytes} bytes behind the primary${lagMs === undefined ? '' : `, ${Math.round(lagMs)} ms by the monitor`}`);
  return lagBytes;
}

function judgeClock(probe: Probe, primary: Probe | undefined, role: 'primary' | 'replica', say: Say): void {
  if (role === 'primary' || !probe.clock || !primary?.clock) return;
  const skew = probe.clock.offsetMs - primary.clock.offsetMs;
  const uncertainty = probe.clock.uncertaintyMs + primary.clock.uncertaintyMs;
  if (Math.abs(skew) - uncertainty > CLOCK_SKEW_WARN_MS) {
    say(
      'clock',
      'warn',
      `clock ${Math.round(Math.abs(skew))} ms ${skew > 0 ? 'ahead of' : 'behind'} the primary's (±${Math.round(uncertainty)}): time lag from ` +
        "pg_last_xact_replay_timestamp() is off by as much (the router uses it for a replica's freshness when its primary samples are too old)",
    );
  } else say('clock', 'ok', `clock within ${Math.round(Math.abs(skew) + uncertainty)} ms of the primary's`);
}
