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
  /**
   * For a string of several statements (kind `write`, detail `multi-statement` or `hint`): what they do,
   * in order, to the connection's transaction — see {@link StringStep}. pg sends such a string
   * in one simple-protocol message; PostgreSQL runs the statements outside an explicit
   * transaction block as one implicit transaction, committed when the string ends.
   */
  readonly steps?: readonly StringStep[];
  /** For `SELECT pg_cancel_backend(pid)` / `pg_terminate_backend(pid)` alone (detail `backend-signal`). */
  readonly signal?: BackendSignal;
}

/**
 * One step of a multi-statement string, runs of like statements folded into one:
 * - `read` / `write`: statements the classifier calls reads, and anything else that is not
 *   transaction control (a write, DDL, SET …);
 * - `begin`: BEGIN / START TRANSACTION (any mode) — statements before it in the same string
 *   join the block it opens;
 * - `commit` / `rollback`, and their `-and-chain` forms that open the next transaction at once
 *   (PREPARE TRANSACTION is a `commit`: its writes are durable).
 * - `unknown`: a string the parser could not read (it may be older than the server) that may
 *   control a transaction: anything may have happened.
 * SAVEPOINT, RELEASE and ROLLBACK TO leave no step: they neither write nor end a transaction.
 */
export type StringStep = 'read' | 'write' | 'begin' | 'commit' | 'rollback' | 'commit-and-chain' | 'rollback-and-chain' | 'unknown';

import { backendSignal, revealsBackend, type BackendSignal } from './backends.js';
import { DEFAULT_WRITE_FUNCTIONS } from './write-functions.js';

export type { BackendSignal };

export { DEFAULT_WRITE_FUNCTIONS };

/** The comment that forces a statement to the primary. */
const HINT = /\/\*\s*pg-replica-router\s*:\s*primary\s*\*\//i;

/**
 * Statements that can only be reads or transaction control start with one of these. Any other
 * first keyword (INSERT, UPDATE, CREATE, …) is a write without needing the parser.
 */
const MAY_READ =
  /^(?:\s|--[^\n]*(?:\n|$)|\/\*[\s\S]*?\*\/)*(?:select|with|values|table|show|explain|begin|start|commit|end|rollback|abort|savepoint|release|prepare\s+transaction|\()/i;
const FIRST_WORD = /^(?:\s|--[^\n]*(?:\n|$)|\/\*[\s\S]*?\*\/)*([a-z]+)/i;
/** Anything but blanks and semicolons: after a `;`, another statement may follow. */
const MORE = /[^\s;]/;
/** A word that may start a transaction-control statement (a text without one needs no steps). */
const TX_WORD = /\b(?:begin|start|commit|end|rollback|abort|prepare)\b/i;

const MODIFYING_NODES = new Set(['InsertStmt', 'UpdateStmt', 'DeleteStmt', 'MergeStmt']);

const write = (detail: string): Classification => Object.freeze({ kind: 'write', detail });
const READ: Classification = Object.freeze({ kind: 'read', detail: 'select' });
const REFUSED = write('refused-by-replica');
const UNPARSABLE_STRING: Classification = Object.freeze({
  kind: 'write',
  detail: 'unparsable',
  steps: Object.freeze(['unknown'] as const),
});

type Json = unknown;

/**
 * libpg-query's WebAssembly module starts loading when this file is imported, not when a router is
 * created: a router made later classifies from its first statement. Never rejects: if the parser
 * cannot load, every statement goes to the primary.
 */
let parserLoaded = false;
const parserLoading: Promise<void> = loadModule().then(
  () => {
    parserLoaded = true;
  },
  () => {},
);

/**
 * Classifies SQL text with PostgreSQL's own parser (libpg-query), caching results by text.
 * Conservative: whatever is not clearly a single side-effect-free read goes to the primary.
 */
export class Classifier {
  readonly #cache: LRUCache<string, Classification>;
  readonly #exact = new Set<string>();
  readonly #prefixes: string[] = [];
  readonly ready: Promise<void> = parserLoading;

  constructor(options: { writeFunctions?: readonly string[]; cacheSize?: number } = {}) {
    this.#cache = new LRUCache({ max: options.cacheSize ?? 5000 });
    for (const name of [...DEFAULT_WRITE_FUNCTIONS, ...(options.writeFunctions ?? [])]) {
      const lower = name.toLowerCase();
      if (lower.endsWith('*')) this.#prefixes.push(lower.slice(0, -1));
      else this.#exact.add(lower);
    }
  }

  /**
   * Classifies `sql`. Synchronous: before the parser has loaded (await `ready`), or if it could
   * not load, everything is a write (primary).
   */
  classifySync(sql: string): Classification {
    if (typeof sql !== 'string') return write('not-text');
    if (!parserLoaded) return write('parser-unavailable');
    const cached = this.#cache.get(sql);
    if (cached) return cached;
    const result = this.#classify(sql);
    // Very long texts are nearly always generated writes; do not let them evict useful entries.
    if (sql.length <= 16_384) this.#cache.set(sql, result);
    return result;
  }

  /**
   * A replica refused `sql` as a write (SQLSTATE 25006: a function with side effects that is not
   * on the list, dblink, …): from now on (while the text stays cached) it is one, and goes
   * straight to the primary.
   */
  refusedByReplica(sql: string): Classification {
    if (parserLoaded && sql.length <= 16_384) this.#cache.set(sql, REFUSED);
    return REFUSED;
  }

  async classify(sql: string): Promise<Classification> {
    await this.ready;
    return this.classifySync(sql);
  }

  #classify(sql: string): Classification {
    // Only a text with something after a `;` can hold several statements (a `;` in a literal or
    // a comment costs a parse, no more). Several statements that start with a write and control
    // no transaction are one write, as a single one is: those are judged by their start too.
    const semicolon = sql.indexOf(';');
    const several = semicolon !== -1 && MORE.test(sql.slice(semicolon + 1));
    if (!several || !(MAY_READ.test(sql) || TX_WORD.test(sql))) {
      if (HINT.test(sql)) return write('hint');
      if (!MAY_READ.test(sql)) return write(FIRST_WORD.exec(sql)?.[1]?.toLowerCase() ?? 'empty');
    }
    let stmts: Array<{ stmt?: Record<string, Json> }>;
    try {
      stmts = (parseSync(sql) as { stmts?: Array<{ stmt?: Record<string, Json> }> }).stmts ?? [];
    } catch {
      // PostgreSQL refuses a string with a syntax error before running any of it; but the parser
      // may be older than the server, so what a string that may control a transaction did is unknown.
      return several && TX_WORD.test(sql) ? UNPARSABLE_STRING : write('unparsable');
    }
    if (stmts.length === 0) return write('empty');
    const hinted = HINT.test(sql);
    if (stmts.length > 1) return this.#several(stmts, hinted);
    if (hinted) return write('hint');
    if (!MAY_READ.test(sql)) return write(FIRST_WORD.exec(sql)?.[1]?.toLowerCase() ?? 'empty');
    return this.#statement(stmts[0]!.stmt ?? {});
  }

  /**
   * A string of several statements: a write (the primary) with its transaction steps. Under the
   * hint, its reads count as writes too (the hint marks what the classifier cannot see).
   */
  #several(stmts: Array<{ stmt?: Record<string, Json> }>, hinted: boolean): Classification {
    const steps: StringStep[] = [];
    for (const { stmt } of stmts) {
      let step = stepOf(this.#statement(stmt ?? {}));
      if (hinted && step === 'read') step = 'write';
      if (step && steps[steps.length - 1] !== step) steps.push(step);
    }
    return Object.freeze({ kind: 'write', detail: hinted ? 'hint' : 'multi-statement', steps: Object.freeze(steps) });
  }

  /** One parsed statement. */
  #statement(stmt: Record<string, Json>): Classification {
    const [type, node] = Object.entries(stmt)[0] ?? [];
    switch (type) {
      case 'SelectStmt':
        return backendSignal(node) ?? revealing(this.#readUnlessSideEffects(node), node);
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

/** What one statement of a multi-statement string does there (undefined: nothing to track). */
function stepOf(statement: Classification): StringStep | undefined {
  switch (statement.kind) {
    case 'read':
      return 'read';
    case 'begin':
    case 'begin-read-only':
      return 'begin';
    case 'commit':
      return statement.detail === 'commit-and-chain' ? 'commit-and-chain' : 'commit';
    case 'rollback':
      return statement.detail === 'rollback-and-chain' ? 'rollback-and-chain' : 'rollback';
    case 'transaction':
      return undefined;
    default:
      return 'write';
  }
}

const BACKEND_PID: Classification = Object.freeze({ kind: 'read', detail: 'backend-pid' });

/** A read that calls `pg_backend_pid()` reveals its connection's backend (see `RoutedClient#processID`). */
function revealing(verdict: Classification, node: Json): Classification {
  return verdict.kind === 'read' && revealsBackend(node) ? BACKEND_PID : verdict;
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
