import { loadModule, parseSync } from 'libpg-query';
import { LRUCache } from 'lru-cache';

/**
 * What a statement means for routing.
 * - `read`: may run on a replica.
 * - `write`: must run on the primary (writes, DDL, SET, locks, anything unknown).
 * - `begin` / `begin-read-only`: starts a transaction (read-only ones may run on a replica).
 * - `commit` / `rollback`: ends a transaction.
 * - `transaction`: other transaction control (SAVEPOINT, RELEASE, SET TRANSACTION …): stays put.
 */
export type StatementKind = 'read' | 'write' | 'begin' | 'begin-read-only' | 'commit' | 'rollback' | 'transaction';

export interface Classification {
  readonly kind: StatementKind;
  /** Why, for spans and logs: `select`, `hint`, `multi-statement`, `unparsable`, `locking`, … */
  readonly detail: string;
}

/** Functions with side effects: a SELECT calling one goes to the primary. `*` ends a prefix. */
export const DEFAULT_WRITE_FUNCTIONS: readonly string[] = [
  'nextval',
  'setval',
  'set_config',
  'txid_current',
  'pg_current_xact_id',
  'pg_notify',
  'pg_advisory_*',
  'pg_try_advisory_*',
  'lo_*',
  'pg_logical_emit_message',
  'pg_create_physical_replication_slot',
  'pg_create_logical_replication_slot',
  'pg_drop_replication_slot',
  'pg_switch_wal',
  'pg_create_restore_point',
  'pg_backup_start',
  'pg_backup_stop',
  'pg_start_backup',
  'pg_stop_backup',
  'pg_terminate_backend',
  'pg_cancel_backend',
  'pg_reload_conf',
  'pg_rotate_logfile',
  'pg_stat_reset*',
  'pg_promote',
  'pg_wal_replay_pause',
  'pg_wal_replay_resume',
  'dblink_exec',
];

/** The comment that forces a statement to the primary. */
const HINT = /\/\*\s*pg-replica-router\s*:\s*primary\s*\*\//i;

/**
 * Statements that can only be reads or transaction control start with one of these. Any other
 * first keyword (INSERT, UPDATE, CREATE, …) is a write without needing the parser.
 */
const MAY_READ =
  /^(?:\s|--[^\n]*(?:\n|$)|\/\*[\s\S]*?\*\/)*(?:select|with|values|table|show|explain|begin|start|commit|end|rollback|abort|savepoint|release|prepare\s+transaction|\()/i;
const FIRST_WORD = /^(?:\s|--[^\n]*(?:\n|$)|\/\*[\s\S]*?\*\/)*([a-z]+)/i;

const MODIFYING_NODES = new Set(['InsertStmt', 'UpdateStmt', 'DeleteStmt', 'MergeStmt']);

const write = (detail: string): Classification => Object.freeze({ kind: 'write', detail });
const READ: Classification = Object.freeze({ kind: 'read', detail: 'select' });

type Json = unknown;

/**
 * Classifies SQL text with PostgreSQL's own parser (libpg-query), caching results by text.
 * Conservative: whatever is not clearly a single side-effect-free read goes to the primary.
 */
export class Classifier {
  readonly #cache: LRUCache<string, Classification>;
  readonly #exact = new Set<string>();
  readonly #prefixes: string[] = [];
  #loaded = false;
  readonly ready: Promise<void>;

  constructor(options: { writeFunctions?: readonly string[]; cacheSize?: number } = {}) {
    this.#cache = new LRUCache({ max: options.cacheSize ?? 5000 });
    for (const name of [...DEFAULT_WRITE_FUNCTIONS, ...(options.writeFunctions ?? [])]) {
      const lower = name.toLowerCase();
      if (lower.endsWith('*')) this.#prefixes.push(lower.slice(0, -1));
      else this.#exact.add(lower);
    }
    // Never rejects: if the parser cannot load, every statement goes to the primary.
    this.ready = loadModule().then(
      () => {
        this.#loaded = true;
      },
      () => {},
    );
  }

  /**
   * Classifies `sql`. Synchronous: before the parser has loaded (await `ready`), or if it could
   * not load, everything is a write (primary).
   */
  classifySync(sql: string): Classification {
    if (typeof sql !== 'string') return write('not-text');
    if (!this.#loaded) return write('parser-unavailable');
    const cached = this.#cache.get(sql);
    if (cached) return cached;
    const result = this.#classify(sql);
    // Very long texts are nearly always generated writes; do not let them evict useful entries.
    if (sql.length <= 16_384) this.#cache.set(sql, result);
    return result;
  }

  async classify(sql: string): Promise<Classification> {
    await this.ready;
    return this.classifySync(sql);
  }

  #classify(sql: string): Classification {
    if (HINT.test(sql)) return write('hint');
    if (!MAY_READ.test(sql)) return write(FIRST_WORD.exec(sql)?.[1]?.toLowerCase() ?? 'empty');
    let stmts: Array<{ stmt?: Record<string, Json> }>;
    try {
      stmts = (parseSync(sql) as { stmts?: Array<{ stmt?: Record<string, Json> }> }).stmts ?? [];
    } catch {
      return write('unparsable');
    }
    if (stmts.length !== 1) return write(stmts.length === 0 ? 'empty' : 'multi-statement');
    const stmt = stmts[0]!.stmt ?? {};
    const [type, node] = Object.entries(stmt)[0] ?? [];
    switch (type) {
      case 'SelectStmt':
        return this.#readUnlessSideEffects(node);
      case 'ExplainStmt': {
        const inner = (node as { query?: Record<string, Json> }).query ?? {};
        const [innerType, innerNode] = Object.entries(inner)[0] ?? [];
        if (innerType !== 'SelectStmt') return write('explain-write');
        const verdict = this.#readUnlessSideEffects(innerNode);
        return verdict.kind === 'read' ? Object.freeze({ kind: 'read', detail: 'explain' }) : verdict;
      }
      case 'VariableShowStmt':
        return Object.freeze({ kind: 'read', detail: 'show' });
      case 'TransactionStmt':
        return transaction(node as { kind?: string; options?: Json[] });
      default:
        return write(type ? type.replace(/Stmt$/, '').toLowerCase() : 'unknown');
    }
  }

  #readUnlessSideEffects(node: Json): Classification {
    const found = this.#sideEffect(node);
    return found ? write(found) : READ;
  }

  /** Walks the parse tree for anything that makes a SELECT more than a read. */
  #sideEffect(node: Json): string | undefined {
    if (Array.isArray(node)) {
      for (const item of node) {
        const found = this.#sideEffect(item);
        if (found) return found;
      }
      return undefined;
    }
    if (node === null || typeof node !== 'object') return undefined;
    for (const [key, value] of Object.entries(node)) {
      if (MODIFYING_NODES.has(key)) return 'data-modifying-cte';
      if (key === 'lockingClause' && Array.isArray(value) && value.length > 0) return 'locking';
      if (key === 'intoClause' && value) return 'select-into';
      if (key === 'FuncCall') {
        const name = functionName(value);
        if (name && this.#writes(name)) return `function:${name}`;
      }
      const found = this.#sideEffect(value);
      if (found) return found;
    }
    return undefined;
  }

  #writes(name: string): boolean {
    return this.#exact.has(name) || this.#prefixes.some((prefix) => name.startsWith(prefix));
  }
}

function functionName(call: Json): string | undefined {
  const parts = (call as { funcname?: Array<{ String?: { sval?: string } }> }).funcname ?? [];
  const last = parts[parts.length - 1]?.String?.sval;
  return last?.toLowerCase();
}

function transaction(node: { kind?: string; options?: Json[]; chain?: boolean }): Classification {
  switch (node.kind) {
    case 'TRANS_STMT_BEGIN':
    case 'TRANS_STMT_START': {
      const option = (name: string) =>
        (node.options ?? [])
          .map(
            (o) =>
              (o as { DefElem?: { defname?: string; arg?: { A_Const?: { ival?: { ival?: number }; sval?: { sval?: string } } } } }).DefElem,
          )
          .find((def) => def?.defname === name)?.arg?.A_Const;
      const readOnly = option('transaction_read_only')?.ival?.ival === 1;
      // A hot standby refuses SERIALIZABLE: such a transaction must start on the primary.
      const serializable = option('transaction_isolation')?.sval?.sval?.toLowerCase() === 'serializable';
      if (readOnly && serializable) return Object.freeze({ kind: 'begin', detail: 'begin-serializable-read-only' });
      return Object.freeze({ kind: readOnly ? 'begin-read-only' : 'begin', detail: readOnly ? 'begin-read-only' : 'begin' });
    }
    case 'TRANS_STMT_COMMIT_PREPARED':
    case 'TRANS_STMT_ROLLBACK_PREPARED':
      return write(node.kind.replace(/^TRANS_STMT_/, '').toLowerCase());
    case 'TRANS_STMT_PREPARE': // ends the transaction, whose writes are now durable
      return Object.freeze({ kind: 'commit', detail: 'prepare-transaction' });
    case 'TRANS_STMT_COMMIT':
      // AND CHAIN commits and at once opens a new transaction on the same connection.
      return Object.freeze({ kind: 'commit', detail: node.chain ? 'commit-and-chain' : 'commit' });
    case 'TRANS_STMT_ROLLBACK':
      return Object.freeze({ kind: 'rollback', detail: node.chain ? 'rollback-and-chain' : 'rollback' });
    default:
      return Object.freeze({ kind: 'transaction', detail: (node.kind ?? 'transaction').replace(/^TRANS_STMT_/, '').toLowerCase() });
  }
}
