import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { afterAll, describe, expect, it } from 'vitest';
import { entrySources, publicExamples } from '../../scripts/docs/jsdoc-examples.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
mkdirSync(path.join(root, '.tmp'), { recursive: true });
// Inside the repository, so that the blocks import the package by its name, as in the docs.
const dir = mkdtempSync(path.join(root, '.tmp/docs-check-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const fence = '```';
const page = [
  '# A page', //                                                     1
  `${fence}ts`,
  "import { parseLsn } from 'pg-replica-router';",
  "const lsn: bigint = parseLsn('0/16B3748');",
  fence, //                                                          5
  '',
  `${fence}typescript`,
  "import { parseLsn } from 'pg-replica-router';",
  "const lsn: string = parseLsn('0/16B3748');", //                   9: TS2322
  fence,
  `${fence}ts nocheck`,
  'this is no TypeScript',
  fence,
  `${fence}sh`,
  'npm run docs:check', //                                           15
  fence,
  `- a list item with a block:`,
  `  ${fence}ts`,
  "  const indented: number = 'one';", //                            19: TS2322
  `  ${fence}`,
  `${fence}ts`,
  'declare global { interface Visitor { id: string } }',
  "export const visitor: Visitor = { id: 'a' };",
  fence,
  `${fence}ts`,
  "export const borrowed: Visitor = { id: 'b' };", //                26: TS2304, no other block's types
  fence,
  `${fence}ts`,
  "const unclosed: number = 'runs to the end';", //                  29: TS2322, not left out
].join('\n');

function checkDocs(...files: string[]) {
  const run = spawnSync(process.execPath, ['--import', 'tsx', 'scripts/check-docs.ts', ...files], { cwd: root, encoding: 'utf8' });
  return { status: run.status, stdout: run.stdout, stderr: run.stderr };
}

describe('npm run docs:check', () => {
  it('fails on a block that does not compile, at its file:line, with the TypeScript error', () => {
    const file = path.join(dir, 'page.md');
    writeFileSync(file, page);
    const name = path.relative(root, file);
    const { status, stdout, stderr } = checkDocs(name);
    expect(status).toBe(1);
    const errors = stderr.split('\n').filter((line) => / - error TS/.test(line));
    expect(errors).toEqual([
      `${name}:9 - error TS2322: Type 'bigint' is not assignable to type 'string'.`,
      `${name}:19 - error TS2322: Type 'string' is not assignable to type 'number'.`,
      `${name}:26 - error TS2304: Cannot find name 'Visitor'.`,
      `${name}:29 - error TS2322: Type 'string' is not assignable to type 'number'.`,
    ]);
    expect(stderr).toContain("const lsn: string = parseLsn('0/16B3748');");
    expect(stdout).toContain(`6 TypeScript blocks checked (1 pages), 4 fail (4 errors); not compiled (nocheck): ${name}:12`);
  });

  it('passes a page whose blocks compile', () => {
    const file = path.join(dir, 'good.md');
    writeFileSync(file, page.split('\n').slice(0, 5).join('\n'));
    const { status, stdout } = checkDocs(path.relative(root, file));
    expect(status).toBe(0);
    expect(stdout).toContain('1 TypeScript blocks checked (1 pages), all compile');
  });
});

describe('the public JSDoc examples', () => {
  const pkg = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as { exports: Record<string, unknown> };
  const blocks = publicExamples(root, entrySources(root, pkg.exports), { strict: true, module: ts.ModuleKind.NodeNext });

  it('are those of what the entry points export and of its members, at their lines', () => {
    const source = readFileSync(path.join(root, 'lib/router.ts'), 'utf8').split('\n');
    const createRouter = blocks.find((block) => block.file === 'lib/router.ts' && block.code.includes('createRouter({'));
    expect(createRouter).toBeDefined();
    expect(source[createRouter!.line - 1]).toContain(createRouter!.code.split('\n')[0]!.trim());
    expect(blocks.some((block) => block.file === 'lib/router.ts' && block.code.includes('router.withSession('))).toBe(true);
    expect(blocks.some((block) => block.file === 'adapters/express/index.ts')).toBe(true);
  });

  it('keep a line of code that starts with a decorator (TypeScript ends the tag there)', () => {
    const module = blocks.find((block) => block.file === 'adapters/nestjs/index.ts' && block.code.includes('class AppModule'));
    expect(module?.code).toMatch(/^@Module\(/m);
  });

  it('leave out internal modules', () => {
    expect(blocks.some((block) => block.file === 'lib/fences.ts' || block.file === 'lib/callback.ts')).toBe(false);
  });
});
