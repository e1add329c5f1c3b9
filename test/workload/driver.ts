// A workload driver: concurrent sessions writing and reading their own rows and shared rows,
// directly through the router and over HTTP through Express, handing consistency tokens to each
// other. Every acknowledged operation goes into a history for the checker; every failed one is
// kept with its error code.
import type { Consistency, Router } from '../../lib/index.js';
import type { Failure, Op } from './history.js';
import { codeOf, OperationError, runVia, SELECT, UPDATE, type Via } from './http-target.js';

export { codeOf, httpTarget, OperationError, workloadApp, type Via } from './http-target.js';

/** A named consistency level (the strategies use `primary` and `eventual`). */
export type Level = Extract<Consistency, string>;

/** What one operation returned: the counter's version, the port of the node that served it. */
export interface Outcome {
  version: number;
  port: number;
  /** A consistency token for the session's position after the operation (when asked for). */
  token?: string | undefined;
  /** Over HTTP: the base URL of the instance that answered. */
  via?: string | undefined;
}

/** A way to reach the database: straight through the router, or over HTTP. */
export interface Target {
  readonly transport: 'direct' | 'http';
  write(session: string, row: string, options: { level?: Level | undefined; wantToken: boolean }): Promise<Outcome>;
  read(session: string, row: string, options: { level?: Level | undefined; token?: string | undefined }): Promise<Outcome>;
  /**
   * A write and a read of the same row in one request (one session scope), for `readBack:
   * 'same-scope'`: `writtenAt` is performance.now() once the write was acknowledged, `readAt`
   * just before the read was sent.
   */
  writeAndRead?(session: string, row: string, options: { level?: Level | undefined }): Promise<PairOutcome>;
}

/** What {@link Target.writeAndRead} returned. */
export interface PairOutcome {
  write: Outcome;
  writtenAt: number;
  read: Outcome;
  readAt: number;
}

/** A read of `row` at `level` (undefined: the scope's). */
function readRow(router: Router, via: Via, level: Level | undefined, row: string): Promise<Outcome> {
  return level ? router.withConsistency(level, () => selectRow(router, via, row)) : selectRow(router, via, row);
}

async function selectRow(router: Router, via: Via, row: string): Promise<Outcome> {
  const result = await runVia(router, via, SELECT, [row]);
  return { version: result.v, port: result.port };
}

/** Sessions in-process: each operation is one `router.withSession(key, …)`, run the way `via` says. */
export function directTarget(router: Router, via: Via = 'pool'): Target {
  const levelled = <T>(level: Level | undefined, fn: () => Promise<T>) => (level ? router.withConsistency(level, fn) : fn());
  return {
    transport: 'direct',
    write: (session, row, { level, wantToken }) =>
      router.withSession(session, () =>
        levelled(level, async () => {
          const result = await runVia(router, via, UPDATE, [row]);
          return { version: result.v, port: result.port, token: wantToken ? await router.currentToken() : undefined };
        }),
      ),
    // No named closure per operation: tsx (esbuild keepNames) would name each one, a cost the
    // baselines' targets do not pay.
    read: (session, row, { level, token }) =>
      router.withSession(session, () =>
        token === undefined ? readRow(router, via, level, row) : router.withToken(token, () => readRow(router, via, level, row)),
      ),
    writeAndRead: (session, row, { level }) =>
      router.withSession(session, () =>
        levelled(level, async () => {
          const written = await runVia(router, via, UPDATE, [row]);
          const writtenAt = performance.now();
          const readAt = performance.now();
          const read = await runVia(router, via, SELECT, [row]);
          return { write: { version: written.v, port: written.port }, writtenAt, read: { version: read.v, port: read.port }, readAt };
        }),
      ),
  };
}

export interface WorkloadOptions {
  /** Who runs sessions, and how many each. Session keys are `d0…` (direct) and `h0…` (HTTP). */
  targets: Array<{ target: Target; sessions: number }>;
  /** Node name for a port (`primary`, `r1`, …). */
  nodeName: (port: number) => string;
  /** Share of operations that are writes (each followed by a read of the same row). Default 0.1. */
  writeShare?: number;
  /** Share of writes after which the session hands a token to another session. Default 0 (none). */
  handoffShare?: number;
  /** Number of rows shared by all sessions. Default 10. */
  sharedRows?: number;
  /** Mean pause between a session's operations, in ms (a user's think time). Default 0. */
  thinkMs?: number;
  /** The level one operation runs at (a strategy); `undefined`: the router's own. */
  level?: (session: string, lastWriteAt: number | undefined) => Level | undefined;
  /**
   * Called at each hand-off: a string replaces the token with that (a bad token, for the drills);
   * the receiving session then gets no promise, and must simply not be harmed by it.
   */
  tamper?: (token: string) => string | undefined;
  /** Pause after a failed operation, in ms, so a session does not spin while a node is down. Default 20. */
  backoffMs?: number;
  /**
   * Where a write's read-back runs: `next-scope` (default), in the session's next operation;
   * `same-scope`, in the same request ({@link Target.writeAndRead}, which every target must then
   * have; no hand-offs).
   */
  readBack?: 'next-scope' | 'same-scope';
}

export interface WorkloadResult {
  history: Op[];
  failures: Failure[];
  /** How long the run took, in ms. */
  durationMs: number;
}

export interface Workload {
  /** Labels operations started from now on (`fault`, `recovered`, …). The first phase is `before`. */
  phase(label: string): void;
  /** What happened so far (live arrays: read, do not change). */
  readonly history: readonly Op[];
  /** Ends every session after its current operation, and returns what happened. */
  stop(): Promise<WorkloadResult>;
}

/** How many sessions of each transport, and shared rows: what decides the rows a workload touches. */
export interface WorkloadShape {
  targets: Array<{ target: Pick<Target, 'transport'>; sessions: number }>;
  sharedRows?: number | undefined;
}

/** Every row id a workload with these targets touches (seed them into `counters` first). */
export function workloadRows(options: WorkloadShape): string[] {
  const ids: string[] = [];
  for (const { target, sessions } of options.targets) for (let i = 0; i < sessions; i++) ids.push(`own-${target.transport[0]}${i}`);
  for (let i = 0; i < (options.sharedRows ?? 10); i++) ids.push(`shared-${i}`);
  return ids;
}

/** SQL that creates and fills the `counters` table for a workload. */
export function seedStatements(options: WorkloadShape): string[] {
  const values = workloadRows(options)
    .map((id) => `('${id}', 0)`)
    .join(', ');
  return [
    'create table if not exists counters (id text primary key, v int not null)',
    `insert into counters values ${values} on conflict (id) do update set v = 0`,
  ];
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Starts the sessions; they run until {@link Workload.stop}. */
export function startWorkload(options: WorkloadOptions): Workload {
  const writeShare = options.writeShare ?? 0.1;
  const handoffShare = options.handoffShare ?? 0;
  const sharedRows = options.sharedRows ?? 10;
  const thinkMs = options.thinkMs ?? 0;
  const backoffMs = options.backoffMs ?? 20;
  const sameScope = options.readBack === 'same-scope';
  if (sameScope && (handoffShare > 0 || options.targets.some(({ target }) => !target.writeAndRead)))
    throw new Error("startWorkload: readBack 'same-scope' needs targets with writeAndRead, and no hand-offs");
  const history: Op[] = [];
  const failures: Failure[] = [];
  let phase = 'before';
  let stopping = false;
  const started = performance.now();

  const sessions: Array<{ key: string; target: Target; own: string }> = [];
  for (const { target, sessions: n } of options.targets) {
    for (let i = 0; i < n; i++) sessions.push({ key: `${target.transport[0]}${i}`, target, own: `own-${target.transport[0]}${i}` });
  }
  const mailboxes = new Map<string, Array<{ token: string; row: string; version: number; bad: boolean }>>(sessions.map((s) => [s.key, []]));
  const lastWrite = new Map<string, number>();

  async function run(session: (typeof sessions)[number]): Promise<void> {
    const { key, target } = session;
    const record = (kind: 'read' | 'write', row: string, start: number, end: number, outcome: Outcome, label: string) => {
      if (kind === 'write') lastWrite.set(key, end);
      history.push({
        session: key,
        kind,
        row,
        start,
        end,
        version: outcome.version,
        node: options.nodeName(outcome.port),
        transport: target.transport,
        phase: label,
        ...(outcome.via === undefined ? {} : { via: outcome.via }),
      });
    };
    const attempt = async <T = Outcome>(
      kind: 'read' | 'write',
      row: string,
      fn: (level: Level | undefined) => Promise<T>,
      done: (result: T, start: number, label: string) => void = (outcome, start, label) =>
        record(kind, row, start, performance.now(), outcome as Outcome, label),
    ): Promise<T | undefined> => {
      const label = phase;
      const start = performance.now();
      try {
        const outcome = await fn(options.level?.(key, lastWrite.get(key)));
        done(outcome, start, label);
        return outcome;
      } catch (err) {
        failures.push({
          session: key,
          kind,
          row,
          start,
          end: performance.now(),
          transport: target.transport,
          phase: label,
          endPhase: phase,
          code: codeOf(err),
          ...(err instanceof OperationError && err.via !== undefined ? { via: err.via } : {}),
          message: err instanceof Error ? err.message : String(err),
        });
        await sleep(backoffMs);
        return undefined;
      }
    };
    while (!stopping) {
      const mail = mailboxes.get(key)!.shift();
      if (mail) {
        // Another session's token: from now on this session must see that session's write.
        const at = performance.now();
        if (!mail.bad)
          history.push({
            session: key,
            kind: 'handoff',
            row: mail.row,
            start: at,
            end: at,
            version: mail.version,
            node: '',
            transport: target.transport,
            phase,
          });
        await attempt('read', mail.row, (level) => target.read(key, mail.row, { level, token: mail.token }));
      } else if (Math.random() < writeShare) {
        const row = Math.random() < 0.7 ? session.own : `shared-${Math.floor(Math.random() * sharedRows)}`;
        const handoff = sessions.length > 1 && Math.random() < handoffShare;
        const written = sameScope
          ? // One request: the write, then its read-back in the same scope; both recorded.
            await attempt(
              'write',
              row,
              (level) => target.writeAndRead!(key, row, { level }),
              (pair, start, label) => {
                record('write', row, start, pair.writtenAt, pair.write, label);
                record('read', row, pair.readAt, performance.now(), pair.read, label);
              },
            ).then(() => undefined)
          : await attempt('write', row, (level) => target.write(key, row, { level, wantToken: handoff }));
        if (written) {
          if (handoff && written.token) {
            let other = sessions[Math.floor(Math.random() * sessions.length)]!;
            while (other.key === key) other = sessions[Math.floor(Math.random() * sessions.length)]!;
            const bad = options.tamper?.(written.token);
            mailboxes.get(other.key)!.push({ token: bad ?? written.token, row, version: written.version, bad: bad !== undefined });
          }
          // read it back at once, as a page does after saving
          await attempt('read', row, (level) => target.read(key, row, { level }));
        }
      } else {
        const row = Math.random() < 0.5 ? session.own : `shared-${Math.floor(Math.random() * sharedRows)}`;
        await attempt('read', row, (level) => target.read(key, row, { level }));
      }
      if (thinkMs > 0) await sleep(thinkMs * (0.5 + Math.random()));
    }
  }

  const running = Promise.all(sessions.map(run));
  return {
    history,
    phase(label) {
      phase = label;
    },
    async stop() {
      stopping = true;
      await running;
      return { history, failures, durationMs: performance.now() - started };
    },
  };
}
