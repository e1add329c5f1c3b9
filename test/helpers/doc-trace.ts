// The example trace in docs/observability.md, read as a tree of lines (telemetry.test.ts compares
// it with a trace the router produced).
import { readFileSync } from 'node:fs';
import { expect } from 'vitest';

/** The attributes the example trace shows, in the order it shows them. */
export const EXAMPLE_KEYS = [
  'pgrr.node',
  'pgrr.reason',
  'pgrr.floor_lsn',
  'pgrr.replica.replay_lsn',
  'pgrr.fallback',
  'pgrr.session.source',
  'pgrr.store.outcome',
  'pgrr.token.out',
];
export const LSN_KEYS = ['pgrr.floor_lsn', 'pgrr.replica.replay_lsn'];

export interface TraceLine {
  text: string;
  depth: number;
  name: string;
  /** `key=value` pairs, in the order printed. */
  attrs: Map<string, string>;
  /** A doc's note after `←`. */
  note: string | undefined;
}

/** The code block under "### An example trace" in docs/observability.md. */
export function docExampleTrace(): string {
  const doc = readFileSync(new URL('../../docs/observability.md', import.meta.url), 'utf8');
  const at = doc.indexOf('### An example trace');
  expect(at, 'docs/observability.md has an "An example trace" section').toBeGreaterThanOrEqual(0);
  const block = /```[a-z]*\n([\s\S]*?)```/.exec(doc.slice(at));
  expect(block, 'the section has a code block').not.toBeNull();
  return block![1]!;
}

/** A trace printed as above: two spaces of indent per level, the span name, two spaces, `key=value` pairs. */
export function parseTrace(text: string): TraceLine[] {
  return text
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => {
      const [body = '', note] = line.split('←').map((part) => part.trimEnd());
      const indent = /^ */.exec(body)![0].length;
      expect(indent % 2, `odd indent: ${line}`).toBe(0);
      const content = body.trim();
      const gap = content.indexOf('  ');
      const name = gap < 0 ? content : content.slice(0, gap);
      const pairs = gap < 0 ? [] : content.slice(gap).trim().split(/\s+/);
      const attrs = new Map(
        pairs.map((pair) => {
          const eq = pair.indexOf('=');
          expect(eq, `not key=value: ${pair} in ${line}`).toBeGreaterThan(0);
          return [pair.slice(0, eq), pair.slice(eq + 1)] as const;
        }),
      );
      return { text: line.trim(), depth: indent / 2, name, attrs, note: note?.trim() };
    });
}

/** The nearest line above `line` one level up. */
export function parentOf(lines: readonly TraceLine[], line: TraceLine): TraceLine | undefined {
  for (let i = lines.indexOf(line) - 1; i >= 0; i--) if (lines[i]!.depth === line.depth - 1) return lines[i];
  return undefined;
}

/** A trace without what varies between runs: replica names become "replica", LSNs other than 0/0 "X/Y", no pg.connect. */
export function comparable(lines: readonly TraceLine[]): Array<{ depth: number; name: string; attrs: Array<[string, string]> }> {
  return lines
    .filter((line) => line.name !== 'pg.connect')
    .map((line) => ({
      depth: line.depth,
      name: line.name,
      attrs: [...line.attrs].map(([key, value]): [string, string] => {
        if (key === 'pgrr.node' && value !== 'primary') return [key, 'replica'];
        if (LSN_KEYS.includes(key) && value !== '0/0') return [key, 'X/Y'];
        return [key, value];
      }),
    }));
}
