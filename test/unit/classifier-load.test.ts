// The SQL parser (libpg-query's WebAssembly) loads asynchronously, from when it is imported: until
// then every statement is a write (primary); a classifier made once it has loaded classifies at once.
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { Classifier } from '../../lib/classifier.js';

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('../..', import.meta.url));

describe('the parser loading', () => {
  it('sends everything to the primary until the parser is loaded (in a process that just imported it)', async () => {
    const script = [
      "import { Classifier } from './lib/classifier.ts';",
      'const early = new Classifier();',
      "const before = early.classifySync('select 1');",
      "const after = await early.classify('select 1');",
      'console.log(JSON.stringify({ before, after }));',
    ].join('\n');
    const { stdout } = await run(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: ROOT });
    const { before, after } = JSON.parse(stdout) as { before: unknown; after: unknown };
    expect(before).toMatchObject({ kind: 'write', detail: 'parser-unavailable' });
    expect(after).toMatchObject({ kind: 'read' });
  });

  it('a classifier made after the parser has loaded classifies at once', async () => {
    await new Classifier().ready; // the parser has loaded (one classifier waited for it)
    expect(new Classifier().classifySync('select 1')).toMatchObject({ kind: 'read' });
  });
});
