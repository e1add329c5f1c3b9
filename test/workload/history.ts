// The history of a workload run, and the checker that counts consistency violations in it.

/** One acknowledged operation, as its client saw it. */
export interface Op {
  /** Session key (`d3`: direct session 3, `h3`: HTTP client 3). */
  session: string;
  /**
   * `write`: an increment the client saw acknowledged; `read`: a read and the version it saw;
   * `handoff`: the session received another session's token, which promised at least `version`
   * of `row` (what that session had written before it took the token).
   */
  kind: 'read' | 'write' | 'handoff';
  row: string;
  /** performance.now() when the client sent it, and when the answer arrived. */
  start: number;
  end: number;
  /** The counter's value the operation wrote, read, or (handoff) was promised. */
  version: number;
  /** The node that served it (`primary`, `r1`, …); `''` for handoffs. */
  node: string;
  /** `direct` (router.withSession) or `http` (Express). */
  transport: 'direct' | 'http';
  /** Label of the phase the run was in when the operation started (`before`, `fault`, …). */
  phase: string;
  /** Over HTTP: the instance that answered (its base URL). */
  via?: string;
}

/** An operation that failed, and how. */
export interface Failure {
  session: string;
  kind: 'read' | 'write';
  row: string;
  start: number;
  end: number;
  transport: 'direct' | 'http';
  phase: string;
  /** The phase when it failed (an operation in flight when a fault starts fails in the fault's phase). */
  endPhase: string;
  /** SQLSTATE, errno (ECONNREFUSED), a ReplicaRouterError code, or `HTTP 500`. */
  code: string;
  message: string;
  /** Over HTTP: the instance that failed it (its base URL). */
  via?: string;
}

export interface Violations {
  /** A read missed a write its own session had seen acknowledged before the read started. */
  ryw: number;
  /** A read saw an older version than an earlier read of the same session (finished before it started). */
  mr: number;
  /** A read missed a write that a token handed to its session promised. */
  handoff: number;
}

/** One violation: a read that saw less than a bound its session knew before the read started. */
export interface Violation {
  kind: keyof Violations;
  read: Op;
  /** The write, read or hand-off that set the bound. */
  bound: Op;
}

/**
 * Counts read-your-writes, monotonic-read and token hand-off violations. Per session and row, a
 * read must see at least every version the session wrote, read, or was handed, as long as that
 * happened before the read started. Operations that overlap are not ordered and never counted.
 */
export function check(history: readonly Op[]): Violations {
  const counts: Violations = { ryw: 0, mr: 0, handoff: 0 };
  for (const v of violations(history)) counts[v.kind]++;
  return counts;
}

/** The violations {@link check} counts, each with the read and the bound it missed. */
export function violations(history: readonly Op[]): Violation[] {
  const found: Violation[] = [];
  const bySession = new Map<string, Op[]>();
  for (const op of history) {
    let ops = bySession.get(op.session);
    if (!ops) bySession.set(op.session, (ops = []));
    ops.push(op);
  }
  for (const ops of bySession.values()) {
    ops.sort((a, b) => a.start - b.start);
    // Per row: the known lower bounds, each with the time it became known.
    const known = new Map<string, Op[]>();
    for (const op of ops) {
      let bounds = known.get(op.row);
      if (!bounds) known.set(op.row, (bounds = []));
      if (op.kind === 'read') {
        for (const b of bounds) {
          if (b.end < op.start && op.version < b.version) {
            found.push({ kind: b.kind === 'write' ? 'ryw' : b.kind === 'read' ? 'mr' : 'handoff', read: op, bound: b });
          }
        }
      }
      bounds.push(op);
    }
  }
  return found;
}

/** The p-th percentile (0–100) of `values`. */
export function percentile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0;
}
