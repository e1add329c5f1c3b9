// Fenced TypeScript blocks in Markdown text (a docs page, or the body of a JSDoc `@example`).

/** One TypeScript block, where it is written. */
export interface CodeBlock {
  /** The file it is in, relative to the repository root. */
  readonly file: string;
  /** The 1-based line, in that file, of the block's first line of code. */
  readonly line: number;
  readonly code: string;
  /** Why it is not compiled (its fence says `nocheck`), else undefined. */
  readonly skipped: string | undefined;
}

/** Fence languages that are TypeScript. */
const TYPESCRIPT = new Set(['ts', 'typescript']);

/** A fence opened and not yet closed: its indentation, its characters, its info string's words. */
interface OpenFence {
  indent: number;
  fence: string;
  words: string[];
  /** Its index in the lines. */
  start: number;
  code: string[];
}

/** Opening or closing fence: indentation, the fence itself, the info string. */
const FENCE = /^(\s*)(`{3,}|~{3,})(.*)$/;

/**
 * The ```ts and ```typescript blocks of `lines`, whose first is line `firstLine` of `file`. A
 * block whose info string has the word `nocheck` after the language (```ts nocheck) is returned
 * as skipped: TypeScript that cannot compile on its own, e.g. it imports code generated from the
 * application's schema.
 *
 * @example
 * ```ts
 * const [block] = codeBlocks('docs/x.md', ['# X', '```ts', 'const a: number = 1;', '```'], 1);
 * block?.line; // 3
 * ```
 */
export function codeBlocks(file: string, lines: readonly string[], firstLine: number): CodeBlock[] {
  const blocks: CodeBlock[] = [];
  let open: OpenFence | undefined;
  const finish = ({ words: [lang, ...flags], start, code }: OpenFence) => {
    if (lang === undefined || !TYPESCRIPT.has(lang.toLowerCase())) return;
    blocks.push({ file, line: firstLine + start + 1, code: code.join('\n'), skipped: flags.includes('nocheck') ? 'nocheck' : undefined });
  };
  for (const [index, text] of lines.entries()) {
    const fence = FENCE.exec(text);
    if (open && fence && fence[2]!.startsWith(open.fence) && fence[3]!.trim() === '') {
      finish(open);
      open = undefined;
    } else if (open) {
      open.code.push(text.slice(Math.min(open.indent, text.length - text.trimStart().length)));
    } else if (fence && !(fence[2]!.startsWith('`') && fence[3]!.includes('`'))) {
      open = { indent: fence[1]!.length, fence: fence[2]!, words: fence[3]!.trim().split(/\s+/), start: index, code: [] };
    }
  }
  // A fence never closed runs to the end (as in CommonMark): the rest is checked, and fails.
  if (open) finish(open);
  return blocks;
}

/** Orders by file, then line: blocks, and errors in them. */
export function byPlace(a: { file: string; line: number }, b: { file: string; line: number }): number {
  return a.file === b.file ? a.line - b.line : a.file < b.file ? -1 : 1;
}
