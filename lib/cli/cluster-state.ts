import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { ErrorCodes, ReplicaRouterError } from '../errors.js';
import { identify, stillRunning, type ProcessIdentity } from './process-identity.js';

/** A running cluster as `cluster up --json` prints it and its state file holds it. */
export interface ClusterInfo {
  provider: string;
  startupMs: number;
  primary: string;
  replicas: Record<string, string>;
  redis: string | null;
  /** The cluster's directory (native provider). */
  dir: string | null;
  /** The `cluster up` process. */
  pid: number;
  /** Server processes by node name (`primary`, `r1`, …, `redis`); native provider only. */
  pids: Record<string, number> | null;
  /** This state file. */
  state: string;
}

/** What the file holds: the owning process, and the cluster once it is up. */
interface StateRecord {
  owner: ProcessIdentity;
  cluster: ClusterInfo | null;
}

/** The `--state FILE` option every cluster command takes (node:util parseArgs form). */
export const STATE_OPTION = { state: { type: 'string' } } as const;

/** Environment variable naming the state file when `--state` is not given. */
export const STATE_ENV = 'PGRR_CLUSTER_STATE';

/**
 * The state file: `--state FILE`, else `$PGRR_CLUSTER_STATE`, else
 * `<os.tmpdir()>/pg-replica-router-<uid>/cluster.json`.
 */
export function stateFile(option: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  return option || env[STATE_ENV] || join(tmpdir(), `pg-replica-router-${process.getuid?.() ?? 'user'}`, 'cluster.json');
}

/** The record in `path`: undefined when there is no file, 'foreign' when it holds something else. */
function readRecord(path: string): StateRecord | 'foreign' | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  try {
    const record = JSON.parse(text) as Partial<StateRecord> | null;
    if (typeof record?.owner?.pid === 'number' && record.cluster !== undefined) return record as StateRecord;
  } catch {
    // not JSON
  }
  return 'foreign';
}

/** A state file this process holds (see {@link claimState}). */
export interface ClaimedState {
  readonly path: string;
  /** Records the cluster, now up (written whole, then renamed over the file: readers never see half). */
  publish(cluster: ClusterInfo): void;
  /** Removes the file if it is still this process's. Idempotent. */
  release(): void;
}

/**
 * Takes the state file for a cluster this process is about to start. A file left by a process
 * that has gone (killed with SIGKILL) is replaced; one whose process still runs is not:
 * `ERR_PGRR_CLUSTER_RUNNING`.
 */
export function claimState(path: string): ClaimedState {
  const owner = identify(process.pid);
  const write = (cluster: ClusterInfo | null, flag: 'wx' | 'w') => {
    const temporary = `${path}.${process.pid}.tmp`;
    writeFileSync(flag === 'wx' ? path : temporary, JSON.stringify({ owner, cluster } satisfies StateRecord), { flag, mode: 0o600 });
    if (flag === 'w') renameSync(temporary, path);
  };
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  for (let attempt = 0; ; attempt++) {
    try {
      write(null, 'wx');
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const other = readRecord(path);
      if (other === 'foreign') {
        throw new ReplicaRouterError(ErrorCodes.INVALID_OPTION, `${path} exists and is not a cluster state file; choose another --state`);
      }
      if (attempt > 0 || (other && stillRunning(other.owner))) {
        throw new ReplicaRouterError(
          ErrorCodes.CLUSTER_RUNNING,
          `a cluster is already running (pid ${other?.owner.pid}, state file ${path}); stop it, or start this one with --state <another file>`,
        );
      }
      rmSync(path, { force: true });
    }
  }
  let released = false;
  return {
    path,
    publish: (cluster) => write(cluster, 'w'),
    release: () => {
      if (released) return;
      released = true;
      const record = readRecord(path);
      if (record !== 'foreign' && record?.owner.pid === process.pid) rmSync(path, { force: true });
    },
  };
}

/** The cluster the state file names, if it is up; else `ERR_PGRR_NO_CLUSTER` saying why not. */
export function runningCluster(path: string): ClusterInfo {
  const record = readRecord(path);
  const none = (why: string) =>
    new ReplicaRouterError(ErrorCodes.NO_CLUSTER, `no cluster is running: ${why} (start one with \`pg-replica-router cluster up\`)`);
  if (!record) throw none(`${path} does not exist`);
  if (record === 'foreign') throw none(`${path} is not a cluster state file`);
  if (!stillRunning(record.owner)) throw none(`the process that started the cluster of ${path} (pid ${record.owner.pid}) has gone`);
  if (!record.cluster) throw none(`the cluster of ${path} is still starting`);
  return record.cluster;
}
