// What a benchmark's results were measured on: the machine, and the router code (the commit and
// any lib/ files changed from it in the working tree, since lib/ may be mid-change when it runs).
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import os from 'node:os';

export function machine(): string {
  return `${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}, Node ${process.version}, load average ${os.loadavg()[0]!.toFixed(1)} at the end`;
}

/** Call at the start of a run (lib/ may change while it runs; the code loaded is what it was then). */
export function libState(): { commit: string; changedLibFiles: string[]; diffHash?: string } {
  const git = (...args: string[]) => {
    try {
      return execFileSync('git', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    } catch {
      return '';
    }
  };
  const changed = git('status', '--porcelain', '--', 'lib')
    .split('\n')
    .filter(Boolean)
    .map((line) => line.slice(3));
  const commit = git('rev-parse', '--short', 'HEAD') || 'unknown';
  if (changed.length === 0) return { commit, changedLibFiles: changed };
  // Which uncommitted state: a hash of the diff (untracked files by name only).
  const diffHash = createHash('sha256')
    .update(git('diff', 'HEAD', '--', 'lib'))
    .update(changed.join())
    .digest('hex')
    .slice(0, 12);
  return { commit, changedLibFiles: changed, diffHash };
}

type LibState = ReturnType<typeof libState>;

/** "lib at <commit>", with the uncommitted lib/ files when there are any. */
function libLine(lib: LibState): string {
  return `lib at ${lib.commit}${lib.changedLibFiles.length ? ` with uncommitted changes to ${lib.changedLibFiles.join(', ')} (diff ${lib.diffHash})` : ''}`;
}

/**
 * Writes a section's results as `<base>.json` (date, machine, lib state, `fields`) and `<base>.md`
 * (what `describe(date, where)` says, `where` naming the machine and lib state, then `table`).
 */
export function writeRun(
  base: string,
  lib: LibState,
  fields: Record<string, unknown>,
  describe: (date: string, where: string) => string,
  table: string,
): void {
  const date = new Date().toISOString();
  const where = machine();
  writeFileSync(`${base}.json`, `${JSON.stringify({ date, machine: where, lib, ...fields }, null, 2)}\n`);
  writeFileSync(`${base}.md`, `${describe(date.slice(0, 10), `${where}; ${libLine(lib)}`)}.\n\n${table}`);
}
