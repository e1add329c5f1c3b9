import type { Engine } from '../engine.js';
import { nodeVerdict } from '../node-verdict.js';
import { judgeNodes, type ProbeOutcome } from './node-checks.js';
import { probeNode } from './probe.js';
import type { DoctorReport } from './report.js';
import { judgeStore, judgeTokenSecrets } from './setup-checks.js';

export type { DoctorFinding, DoctorReport, NodeFacts, Severity } from './report.js';
export { formatReport } from './report.js';

/** Options of `router.doctor()`. */
export interface DoctorOptions {
  /** Connections opened at once to each node to tell a load balancer (several servers behind one address). Default 4. */
  connections?: number;
  /** Each connection, query and store call is abandoned after this long, in ms. Default the monitor's `timeoutMs`. */
  timeoutMs?: number;
}

/**
 * Checks every node over its own connections, the store and the token secret, after the
 * router's monitor has polled every node once, and says what routing does with each node.
 */
export async function runDoctor(engine: Engine, options: DoctorOptions = {}): Promise<DoctorReport> {
  const timeoutMs = options.timeoutMs ?? engine.options.monitor.timeoutMs;
  const connections = options.connections ?? 4;
  await engine.monitor.ready;
  const nodes = engine.configuredNodes();
  const outcomes = await Promise.all(
    nodes.map((node): Promise<ProbeOutcome> =>
      probeNode(node.config, timeoutMs, connections).then(
        (probe) => ({ name: node.name, role: node.role, probe }),
        (error: unknown) => ({ name: node.name, role: node.role, error }),
      ),
    ),
  );
  const states = engine.monitor.states();
  const judged = judgeNodes(outcomes, states);
  const findings = [
    ...judged.findings,
    ...(await judgeStore(engine.options.store, timeoutMs)),
    ...judgeTokenSecrets(engine.options.tokenSecrets),
  ];
  const primary = states.find((s) => s.role === 'primary');
  return {
    ok: !findings.some((f) => f.severity === 'problem'),
    findings,
    nodes: judged.nodes,
    routing: states.map((s) => nodeVerdict(s, primary)),
  };
}
