/** Levenshtein distance, case-insensitive, for "did you mean" hints. */
function distance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const cur = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1]!.toLowerCase() === b[j - 1]!.toLowerCase() ? 0 : 1));
      prev = cur;
    }
  }
  return row[b.length]!;
}

/** The closest known name within two edits, for error messages. */
export function suggest(name: string, known: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = 3;
  for (const candidate of known) {
    const d = distance(name, candidate);
    if (d < bestDistance) {
      best = candidate;
      bestDistance = d;
    }
  }
  return best;
}

/** Throws `invalid(…)` for the first key of `value` not in `known`, with a "did you mean" hint. */
export function checkKnownKeys(value: object, known: readonly string[], invalid: (message: string) => Error, prefix = ''): void {
  for (const key of Object.keys(value)) {
    if (known.includes(key)) continue;
    const hint = suggest(key, known);
    throw invalid(`unknown option "${prefix}${key}"${hint ? ` (did you mean "${prefix}${hint}"?)` : ''}`);
  }
}
