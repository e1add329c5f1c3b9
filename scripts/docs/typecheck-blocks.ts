// Compiles code blocks as modules of an application next to the file each is written in, so
// that `pg-replica-router` and its subpaths resolve through package.json's exports (dist/), as
// they do for a user; no file is written.
import ts from 'typescript';
import path from 'node:path';
import { byPlace, type CodeBlock } from './code-blocks.js';

/** One compiler error, placed in the file the block is written in. */
export interface BlockError {
  readonly file: string;
  readonly line: number;
  /** The line of its block's first line of code (0 outside the blocks). */
  readonly blockLine: number;
  readonly code: number;
  readonly message: string;
  /** The line of code it is on (empty for an error outside the blocks). */
  readonly text: string;
}

/** Blocks that augment global or module types: each is compiled alone, so none lends its types to another. */
const AUGMENTS = /\bdeclare\s+(global|module)\b/;

/**
 * The compiler errors of `blocks` (skipped ones excluded), each at its line in the block's file.
 *
 * @example
 * ```ts
 * const errors = typecheckBlocks('/repo', blocks, { strict: true });
 * for (const e of errors) console.log(`${e.file}:${e.line} TS${e.code} ${e.message}`);
 * ```
 */
export function typecheckBlocks(root: string, blocks: readonly CodeBlock[], options: ts.CompilerOptions): BlockError[] {
  const virtual = new Map<string, CodeBlock>();
  for (const block of blocks) if (!block.skipped) virtual.set(path.join(root, `${block.file}.L${block.line}.ts`), block);
  const host = virtualHost(options, virtual);
  const shared = [...virtual].filter(([, block]) => !AUGMENTS.test(block.code)).map(([name]) => name);
  const alone = [...virtual].filter(([, block]) => AUGMENTS.test(block.code)).map(([name]) => [name]);
  const errors: BlockError[] = [];
  for (const rootNames of [shared, ...alone]) {
    if (rootNames.length === 0) continue;
    const program = ts.createProgram({ rootNames, options, host });
    const global = [...program.getOptionsDiagnostics(), ...program.getGlobalDiagnostics()];
    if (global.length > 0) throw new Error(`check-docs: ${ts.formatDiagnostics(global, formatHost(root))}`);
    for (const name of rootNames) {
      const source = program.getSourceFile(name)!;
      const diagnostics = [...program.getSyntacticDiagnostics(source), ...program.getSemanticDiagnostics(source)];
      for (const diagnostic of diagnostics) errors.push(placed(diagnostic, virtual, root));
    }
  }
  return errors.sort(byPlace);
}

/** A compiler host that also serves the blocks as files, and parses each real file once. */
function virtualHost(options: ts.CompilerOptions, virtual: ReadonlyMap<string, CodeBlock>): ts.CompilerHost {
  const host = ts.createCompilerHost(options, true);
  const parsed = new Map<string, ts.SourceFile | undefined>();
  const { fileExists, readFile, getSourceFile } = host;
  host.fileExists = (name) => virtual.has(name) || fileExists.call(host, name);
  host.readFile = (name) => virtual.get(name)?.code ?? readFile.call(host, name);
  host.getSourceFile = (name, language, onError) => {
    const block = virtual.get(name);
    if (block) return ts.createSourceFile(name, block.code, language, true, ts.ScriptKind.TS);
    if (!parsed.has(name)) parsed.set(name, getSourceFile.call(host, name, language, onError));
    return parsed.get(name);
  };
  return host;
}

/** `diagnostic` at its place in the Markdown or source file its block is written in. */
function placed(diagnostic: ts.Diagnostic, virtual: ReadonlyMap<string, CodeBlock>, root: string): BlockError {
  const message = ts.flattenDiagnosticMessageText(diagnostic.messageText, '\n');
  const block = diagnostic.file && virtual.get(diagnostic.file.fileName);
  if (!diagnostic.file || !block || diagnostic.start === undefined) {
    const file = diagnostic.file ? path.relative(root, diagnostic.file.fileName) : '(compiler)';
    return { file, line: 0, blockLine: 0, code: diagnostic.code, message, text: '' };
  }
  const { line } = diagnostic.file.getLineAndCharacterOfPosition(diagnostic.start);
  return {
    file: block.file,
    line: block.line + line,
    blockLine: block.line,
    code: diagnostic.code,
    message,
    text: block.code.split('\n')[line] ?? '',
  };
}

function formatHost(root: string): ts.FormatDiagnosticsHost {
  return { getCanonicalFileName: (name) => name, getCurrentDirectory: () => root, getNewLine: () => '\n' };
}
