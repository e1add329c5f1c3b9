import type { StringStep } from './classifier.js';

// How statements move a connection's transaction, as PostgreSQL runs them (pure).

/** A connection's transaction, as the statements run on it tell (the pool's statements have none). */
export interface TransactionState {
  open: boolean;
  /** A statement that may have written ran on the primary in this transaction. */
  wrote: boolean;
  /**
   * With `open`: the connection may or may not be in a transaction block (a multi-statement
   * string that failed part-way). Until a BEGIN, COMMIT or ROLLBACK settles it, a write counts
   * both as committed at once and as part of the transaction.
   */
  unsure?: boolean;
  /**
   * Opened by `BEGIN READ ONLY` (when sure): PostgreSQL refuses every write in it, its functions'
   * too, so its COMMIT or ROLLBACK writes nothing (a statement that is not a read, such as
   * `SET TRANSACTION READ WRITE`, still counts).
   */
  readOnly?: boolean;
}

export const NO_TRANSACTION: TransactionState = Object.freeze({ open: false, wrote: false });

/** What a multi-statement string did: where it left the transaction, and whether it committed a write. */
export interface StringEffect extends Required<Omit<TransactionState, 'readOnly'>> {
  /** It may have committed a write (explicitly, or its implicit transaction when it ended). */
  readonly committed: boolean;
}

/** Where the connection may be: bit EXPLICIT, in an explicit transaction block; bit WROTE, that transaction may have written. */
type Path = number;
const EXPLICIT = 1;
const WROTE = 2;

/**
 * Runs a multi-statement string's steps over the transaction it started in, as PostgreSQL runs
 * one simple-protocol message: statements outside an explicit block form an implicit transaction
 * that commits when the string ends (or at a COMMIT in it); a BEGIN turns it into an explicit
 * block that stays open after the string; a COMMIT or ROLLBACK closes the block, and what
 * follows is implicit again. When the string failed (`ok` false), PostgreSQL skipped the rest
 * from some statement on, or the reply was lost after all of it ran: the result covers every
 * such outcome — a write counts as committed if any may have committed it, and the connection
 * is `unsure` when it may or may not be left in a block. Pure; at most four paths per step.
 */
export function stringEffect(steps: readonly StringStep[], before: TransactionState, onPrimary: boolean, ok: boolean): StringEffect {
  let paths = new Set<Path>(before.unsure ? [EXPLICIT | WROTE, 0] : [before.open ? EXPLICIT | (before.wrote ? WROTE : 0) : 0]);
  const ends = new Set<Path>();
  let committed = false;
  for (const step of steps) {
    const next = new Set<Path>();
    for (const path of paths) {
      if (!ok) for (const end of failedAt(step, path, onPrimary)) ends.add(end);
      for (const [to, commits] of stepFrom(step, path, onPrimary)) {
        if (commits) committed = true;
        next.add(to);
      }
    }
    paths = next;
  }
  for (const path of paths) {
    // The string ran to its end: its implicit transaction commits.
    if (path === WROTE) committed = true;
    ends.add(path & EXPLICIT ? path : 0);
  }
  const open = [...ends].some((p) => p & EXPLICIT);
  return {
    committed,
    open,
    wrote: ends.has(EXPLICIT | WROTE),
    unsure: open && ends.has(0),
  };
}

/** Where a step may take a path, and whether it committed a transaction that may have written on the way. */
type Move = readonly [to: Path, commits: boolean];

function stepFrom(step: StringStep, path: Path, onPrimary: boolean): Move[] {
  const explicit = path & EXPLICIT;
  switch (step) {
    case 'read':
      return [[path, false]];
    case 'write':
      return [[onPrimary ? path | WROTE : path, false]];
    case 'begin':
      return [[path | EXPLICIT, false]]; // the string's earlier statements join the block (BEGIN in one only warns)
    case 'commit':
    case 'commit-and-chain': {
      // As a single COMMIT on the primary, one ending an explicit block counts as a write.
      const wrote = (path & WROTE) !== 0 || (onPrimary && explicit !== 0);
      return [[step === 'commit-and-chain' ? explicit : 0, wrote]];
    }
    case 'rollback':
    case 'rollback-and-chain':
      return [[step === 'rollback-and-chain' ? explicit : 0, false]];
    case 'unknown':
      // Statements the parser could not read: anything may have run, committed, been left open.
      return [
        [onPrimary ? EXPLICIT | WROTE : EXPLICIT, onPrimary],
        [0, onPrimary],
      ];
  }
}

/**
 * Where the connection is when the string fails at `step` (PostgreSQL skips the rest): an
 * explicit block stays open (aborted) until a ROLLBACK; an implicit one is rolled back; a failed
 * COMMIT or ROLLBACK ends the block (a failed AND CHAIN may or may not open the next one).
 */
function failedAt(step: StringStep, path: Path, onPrimary: boolean): Path[] {
  const aborted = (path & WROTE) !== 0 || (onPrimary && step !== 'read') ? EXPLICIT | WROTE : EXPLICIT;
  if (step === 'unknown') return [aborted, 0];
  if (!(path & EXPLICIT)) return [0];
  if (step === 'commit' || step === 'rollback') return [0];
  if (step === 'commit-and-chain' || step === 'rollback-and-chain') return [0, aborted];
  return [aborted];
}
