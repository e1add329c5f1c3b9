// The TypeScript blocks in the `@example`s of the package's public API: the JSDoc of what its entry
// points export (and of those exports' members), as an editor shows it to a user.
import path from 'node:path';
import ts from 'typescript';
import { byPlace, codeBlocks, type CodeBlock } from './code-blocks.js';

/** The source file of each `types` entry of package.json's `exports` (dist/lib/index.d.ts → lib/index.ts). */
export function entrySources(root: string, exportsField: Record<string, unknown>): string[] {
  const sources = new Set<string>();
  for (const target of Object.values(exportsField)) {
    const types = typeof target === 'object' && target !== null ? (target as { types?: unknown }).types : undefined;
    if (typeof types !== 'string') continue;
    sources.add(path.join(root, types.replace(/^\.\/dist\//, '').replace(/\.d\.ts$/, '.ts')));
  }
  return [...sources];
}

/** The declarations a user can reach from `entry`: its exports, and their members (inherited ones too). */
function publicDeclarations(checker: ts.TypeChecker, entry: ts.SourceFile): Set<ts.Declaration> {
  const declarations = new Set<ts.Declaration>();
  const moduleSymbol = checker.getSymbolAtLocation(entry);
  if (!moduleSymbol) return declarations;
  for (const exported of checker.getExportsOfModule(moduleSymbol)) {
    const symbol = exported.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(exported) : exported;
    const members = symbol.flags & (ts.SymbolFlags.Class | ts.SymbolFlags.Interface) ? checker.getDeclaredTypeOfSymbol(symbol) : undefined;
    const statics = symbol.flags & ts.SymbolFlags.Class ? [...(symbol.exports?.values() ?? [])] : [];
    const all = [symbol, ...(members ? checker.getPropertiesOfType(members) : []), ...statics];
    for (const each of all) for (const declaration of each.declarations ?? []) declarations.add(declaration);
  }
  return declarations;
}

/**
 * The fenced TypeScript blocks of one `@example` tag, with their lines in the source file. Read
 * to the comment's next tag outside a fence: TypeScript ends the tag at a line of code that
 * starts with `@` (a decorator).
 */
function exampleBlocks(root: string, source: ts.SourceFile, tag: ts.JSDocTag): CodeBlock[] {
  const start = tag.getStart(source);
  const firstLine = source.getLineAndCharacterOfPosition(start).line + 1;
  const comment = source.text.slice(start, tag.parent.end).split('\n');
  const lines: string[] = [];
  let fenced = false;
  for (const line of comment.map((text) => text.replace(/^\s*\*(?!\/) ?/, '').replace(/\s*\*\/\s*$/, ''))) {
    if (lines.length > 0 && !fenced && /^@[A-Za-z]/.test(line)) break;
    if (/^\s*(```|~~~)/.test(line)) fenced = !fenced;
    lines.push(line);
  }
  return codeBlocks(path.relative(root, source.fileName), lines, firstLine);
}

/**
 * Every fenced TypeScript block in the `@example` tags of the public API of `entries` (source
 * files of the package's entry points), compiled with `options` to find what they export.
 *
 * @example
 * ```ts
 * const blocks = publicExamples('/repo', ['/repo/lib/index.ts'], { strict: true });
 * ```
 */
export function publicExamples(root: string, entries: readonly string[], options: ts.CompilerOptions): CodeBlock[] {
  const program = ts.createProgram({ rootNames: entries, options: { ...options, noEmit: true } });
  const checker = program.getTypeChecker();
  const tags = new Map<string, { source: ts.SourceFile; tag: ts.JSDocTag }>();
  for (const entry of entries) {
    const source = program.getSourceFile(entry);
    if (!source) throw new Error(`check-docs: entry point ${entry} not found`);
    for (const declaration of publicDeclarations(checker, source)) {
      const declared = declaration.getSourceFile();
      if (program.isSourceFileFromExternalLibrary(declared) || declared.isDeclarationFile) continue;
      for (const tag of ts.getJSDocTags(declaration)) {
        if (tag.tagName.text === 'example') tags.set(`${declared.fileName}:${tag.pos}`, { source: declared, tag });
      }
    }
  }
  return [...tags.values()].flatMap(({ source, tag }) => exampleBlocks(root, source, tag)).sort(byPlace);
}
