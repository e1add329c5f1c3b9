// Typechecks every TypeScript block of README.md, docs/**/*.md and the public JSDoc `@example`s
// under `strict`, as an application that installed the package compiles them (scripts/tsconfig.docs.json;
// imports resolve through package.json's exports to dist/, so `npm run build` first). Prints each
// error at its file:line and exits 1 if there is any.
//
//   npm run docs:check              README.md, docs/, the public JSDoc
//   tsx scripts/check-docs.ts a.md  only the Markdown files given
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { codeBlocks, type CodeBlock } from './docs/code-blocks.js';
import { entrySources, publicExamples } from './docs/jsdoc-examples.js';
import { typecheckBlocks, type BlockError } from './docs/typecheck-blocks.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

function compilerOptions(configFile: string): ts.CompilerOptions {
  const { config, error } = ts.readConfigFile(configFile, ts.sys.readFile);
  if (error) throw new Error(ts.flattenDiagnosticMessageText(error.messageText, '\n'));
  const parsed = ts.parseJsonConfigFileContent(config, ts.sys, path.dirname(configFile), undefined, configFile);
  if (parsed.errors.length > 0) throw new Error(parsed.errors.map((e) => ts.flattenDiagnosticMessageText(e.messageText, '\n')).join('\n'));
  return parsed.options;
}

function markdownBlocks(file: string): CodeBlock[] {
  const text = readFileSync(path.resolve(root, file), 'utf8');
  return codeBlocks(path.relative(root, path.resolve(root, file)), text.split(/\r?\n/), 1);
}

function docsPages(): string[] {
  const pages = readdirSync(path.join(root, 'docs'), { recursive: true, encoding: 'utf8' }).filter((name) => name.endsWith('.md'));
  return ['README.md', ...pages.sort().map((name) => path.join('docs', name))];
}

function report(errors: readonly BlockError[]): void {
  for (const error of errors) {
    console.error(`${error.file}:${error.line} - error TS${error.code}: ${error.message}`);
    if (error.text) console.error(`  ${String(error.line).padStart(5)} | ${error.text}\n`);
  }
}

function main(files: readonly string[]): number {
  if (!existsSync(path.join(root, 'dist/lib/index.d.ts'))) {
    console.error('check-docs: dist/ is missing; run `npm run build` first (blocks import the package as users do)');
    return 2;
  }
  const pkg = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as { exports: Record<string, unknown> };
  const pages = files.length > 0 ? files : docsPages();
  const blocks = pages.flatMap(markdownBlocks);
  if (files.length === 0) {
    blocks.push(...publicExamples(root, entrySources(root, pkg.exports), compilerOptions(path.join(root, 'tsconfig.json'))));
  }
  const errors = typecheckBlocks(root, blocks, compilerOptions(path.join(root, 'scripts/tsconfig.docs.json')));
  report(errors);
  const failing = new Set(errors.map((error) => `${error.file}:${error.blockLine}`));
  const skipped = blocks.filter((block) => block.skipped).map((block) => `${block.file}:${block.line}`);
  console.log(
    `check-docs: ${blocks.length - skipped.length} TypeScript blocks checked (${pages.length} pages${files.length ? '' : ' and the public JSDoc'}), ` +
      `${errors.length === 0 ? 'all compile' : `${failing.size} fail (${errors.length} errors)`}` +
      (skipped.length ? `; not compiled (nocheck): ${skipped.join(', ')}` : ''),
  );
  return errors.length === 0 ? 0 : 1;
}

process.exitCode = main(process.argv.slice(2));
