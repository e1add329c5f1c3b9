// What a benchmark's results were measured on: the machine, and the router code (the commit and
// any lib/ files changed from it in the working tree, since lib/ may be mid-change when it runs).
import { execFileSync } from 'node:child_process';
import os from 'node:os';

export function machine(): string {
  return `${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}, Node ${process.version}, load average ${os.loadavg()[0]!.toFixed(1)} at the end`;
}

export function libState(): { commit: string; changedLibFiles: string[] } {
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
  return { commit: git('rev-parse', '--short', 'HEAD') || 'unknown', changedLibFiles: changed };
}
