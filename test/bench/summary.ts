// What one workload run shows, from its history: throughput, latency, where reads ran (overall and
// by kind of read), and the history checker's violations.
import { check, percentile, type Op } from '../workload/history.js';
import type { WorkloadResult } from '../workload/driver.js';

/** `after-write`: a session's read of the row it just wrote; `handoff`: the first read with a token handed to it; `plain`: any other. */
export type ReadKind = 'after-write' | 'handoff' | 'plain';

export function readKinds(history: readonly Op[]): Map<Op, ReadKind> {
  const kinds = new Map<Op, ReadKind>();
  const last = new Map<string, Op>();
  for (const op of [...history].sort((a, b) => a.start - b.start)) {
    const before = last.get(op.session);
    if (op.kind === 'read')
      kinds.set(op, before?.kind === 'write' && before.row === op.row ? 'after-write' : before?.kind === 'handoff' ? 'handoff' : 'plain');
    last.set(op.session, op);
  }
  return kinds;
}

const round = (x: number, digits = 3) => Number(x.toFixed(digits));
const share = (ops: readonly Op[]) => round(ops.filter((o) => o.node !== 'primary').length / Math.max(1, ops.length));

export function summarizeRun({ history, failures, durationMs }: WorkloadResult) {
  const done = history.filter((h) => h.kind !== 'handoff');
  const reads = done.filter((h) => h.kind === 'read');
  const kinds = readKinds(history);
  const ofKind = (kind: ReadKind) => reads.filter((r) => kinds.get(r) === kind);
  const latency = (ops: readonly Op[], p: number) =>
    round(
      percentile(
        ops.map((o) => o.end - o.start),
        p,
      ),
      2,
    );
  const { ryw, mr, handoff } = check(history);
  return {
    ops: done.length,
    reads: reads.length,
    opsPerSecond: Math.round(done.length / (durationMs / 1000)),
    p50ms: latency(done, 50),
    p99ms: latency(done, 99),
    readP50ms: latency(reads, 50),
    readP99ms: latency(reads, 99),
    replicaShare: share(reads),
    afterWriteReads: ofKind('after-write').length,
    afterWriteReplicaShare: share(ofKind('after-write')),
    handoffReads: ofKind('handoff').length,
    handoffReplicaShare: share(ofKind('handoff')),
    plainReplicaShare: share(ofKind('plain')),
    rywViolations: ryw,
    mrViolations: mr,
    handoffViolations: handoff,
    failures: failures.length,
    /** The commonest failure codes, `CODE×n`. */
    failureCodes: [...failures.reduce((m, f) => m.set(f.code, (m.get(f.code) ?? 0) + 1), new Map<string, number>())]
      .sort((a, b) => b[1] - a[1])
      .slice(0, 3)
      .map(([code, n]) => `${code}×${n}`)
      .join(', '),
  };
}
