// npm run test:mutations — shows that the database-free tests of the planner, the session store,
// sessions and tokens guard what they claim: each mutation below removes one behaviour from lib/,
// runs those tests, and must make them fail. The file is restored after each run (and on Ctrl-C).
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';

interface Mutation {
  readonly file: string;
  readonly from: string;
  readonly to: string;
  readonly removes: string;
}

const MUTATIONS: Mutation[] = [
  {
    file: 'lib/planner.ts',
    from: 'if (!sample) return false;',
    to: 'if (!sample || true) return false;',
    removes: 'covering uncovered reads before a move',
  },
  { file: 'lib/planner.ts', from: 'cached.sampledAt >= since', to: 'true', removes: 'covering only with samples taken after the reads' },
  {
    file: 'lib/planner.ts',
    from: "state?.status === 'up' && state.resetAt < since",
    to: "state?.status === 'up'",
    removes: 'refusing a replica restarted since the reads',
  },
  {
    file: 'lib/planner.ts',
    from: 'const known = this.monitor.primarySampleSince(since);',
    to: 'const known = undefined;',
    removes: 'covering with a known primary position (free)',
  },
  {
    file: 'lib/session-store.ts',
    from: 'session.raise(this.#recoveryFloor);',
    to: '',
    removes: 'the recovery floor after a lost store write',
  },
  {
    file: 'lib/session-store.ts',
    from: 'await this.store.raise(key, next, loaded);',
    to: 'await this.store.raise(key, next, undefined);',
    removes: 'compare-and-merge against the loaded value',
  },
  {
    file: 'lib/session-store.ts',
    from: "if (unchanged && next.node !== 'primary') return;",
    to: '',
    removes: 'skipping unchanged positions',
  },
  {
    file: 'lib/session-store.ts',
    from: 'session.floorUnknown = true;',
    to: '',
    removes: 'an unknown floor while the store is unreachable',
  },
  {
    file: 'lib/session-store.ts',
    from: 'next = { ...next, node: unionNode(next.node, loaded.node) };',
    to: '',
    removes: 'keeping the loaded replica among the uncovered',
  },
  {
    file: 'lib/session-store.ts',
    from: 'if (coverLater) this.#track(this.#coverStored(session, key, next));',
    to: '',
    removes: 'covering stored primary reads in the background',
  },
  {
    file: 'lib/session-store.ts',
    from: 'session.resync = true; // never "no floor"',
    to: '',
    removes: 'treating a corrupt value as the current primary position',
  },
  {
    file: 'lib/session-store.ts',
    from: 'session.positionUnknown(performance.now());',
    to: '',
    removes: "marking an unknown write position as 'primary'",
  },
  { file: 'lib/session.ts', from: 'if (child.writePending) this.writePending = true;', to: '', removes: 'folding an inner scope’s writes' },
  {
    file: 'lib/session.ts',
    from: 'if (comparable) this.absorb(child.position(), child.lastReadEndedAt);',
    to: 'if (true) this.absorb(child.position(), child.lastReadEndedAt);',
    removes: 'checking the history of a folded floor',
  },
  { file: 'lib/session-tokens.ts', from: 'else if (session.merge(', to: 'else if (true || session.merge(', removes: 'absorbing a token' },
  {
    file: 'lib/session.ts',
    from: 'position.systemId !== ours.systemId) return false;',
    to: 'position.systemId !== ours.systemId) return true;',
    removes: 'refusing positions of another system',
  },
  {
    file: 'lib/session-tokens.ts',
    from: 'session.positionUnknown(performance.now());',
    to: '',
    removes: "an issued token's 'primary' marker when the primary is unreachable",
  },
  {
    file: 'lib/session-tokens.ts',
    from: 'if (session.floorUnknown) session.resync = true;',
    to: '',
    removes: 'a token at the primary position when the store is unreadable',
  },
  {
    file: 'lib/session-store.ts',
    from: "if (stored === undefined && !session.fresh) session.absorb({ lsn: 0n, node: 'primary' }, startedAt);",
    to: '',
    removes: 'treating a store miss as possibly forgotten',
  },
  {
    file: 'lib/dispatch.ts',
    from: 'if (classification.steps) return this.#noteString(',
    to: 'if (false) return this.#noteString(',
    removes: 'noting multi-statement strings by their steps',
  },
  {
    file: 'lib/dispatch.ts',
    from: 'refusable && isReadOnlyRefusal(err)',
    to: 'false && isReadOnlyRefusal(err)',
    removes: 'retrying reads a replica refused as writes on the primary',
  },
  {
    file: 'lib/position.ts',
    from: 'if (current.version !== undefined && loaded?.version === current.version) {',
    to: 'if (encodePosition(current) === encodePosition(loaded ?? current)) {',
    removes: 'comparing the stored version instead of the value',
  },
  {
    file: 'lib/session-tokens.ts',
    from: 'return { ...position, node: toLocal(position.node, (id) => this.monitor.nodeOfServer(id)) };',
    to: 'return position;',
    removes: "reading a token's server ids as this process's names",
  },
  { file: 'lib/session-store.ts', from: 'this.#lost.record(key, next);', to: '', removes: 'keeping a position the store could not take' },
  {
    file: 'lib/session-store.ts',
    from: 'this.#mergeFromStore(session, lost.position);',
    to: '',
    removes: 'merging a kept position at the next load of its key',
  },
  { file: 'lib/stores/redis-loss.ts', from: "listener('first use');", to: '', removes: 'the first-use sign of a store that can lose data' },
  {
    file: 'lib/stores/redis-loss.ts',
    from: "const LOSS_EVENTS = ['close', '-node', '+node'] as const;",
    to: "const LOSS_EVENTS = ['-node', '+node'] as const;",
    removes: 'a closed Redis connection as a sign of loss',
  },
  {
    file: 'lib/stores/redis-loss.ts',
    from: 'if (changed) this.emit(',
    to: 'if (false) this.emit(',
    removes: 'a changed run_id or master_replid as a sign of loss',
  },
  {
    file: 'lib/stores/redis-loss.ts',
    from: "const NODE_EVENTS = ['connect', 'close'] as const;",
    to: "const NODE_EVENTS = ['close'] as const;",
    removes: "a Cluster node's first connection as a sign of loss",
  },
  {
    file: 'lib/stores/redis-loss.ts',
    from: 'const nodes = client.isCluster ? new NodeConnections(client, emit) : undefined;',
    to: 'const nodes = false ? new NodeConnections(client, emit) : undefined;',
    removes: "a Cluster's node connections as signs of loss",
  },
];

const TESTS = [
  'test/unit/position.test.ts',
  'test/unit/planner.test.ts',
  'test/unit/session-store.test.ts',
  'test/unit/session.test.ts',
  'test/unit/dispatch.test.ts',
  'test/unit/dispatch-tx-strings.test.ts',
  'test/unit/redis-loss.test.ts',
];
let restore: (() => void) | undefined;
process.on('SIGINT', () => {
  restore?.();
  process.exit(130);
});

let missed = 0;
for (const m of MUTATIONS) {
  const original = readFileSync(m.file, 'utf8');
  if (!original.includes(m.from)) throw new Error(`${m.file}: mutation site not found (${m.from}); update this list`);
  restore = () => writeFileSync(m.file, original);
  writeFileSync(m.file, original.replace(m.from, m.to));
  let failed = false;
  try {
    execFileSync('npx', ['vitest', 'run', ...TESTS], { stdio: 'pipe' });
  } catch {
    failed = true;
  } finally {
    restore();
    restore = undefined;
  }
  if (!failed) missed++;
  console.log(`${failed ? 'caught' : 'MISSED'}: without ${m.removes} (${m.file})`);
}
console.log(`${MUTATIONS.length - missed} passed, ${missed} failed`);
process.exitCode = missed === 0 ? 0 : 1;
