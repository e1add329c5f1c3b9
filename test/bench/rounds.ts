// Rounds of benchmark cells: every variant once per round, in an order that rotates each round
// (so no variant always runs first, or after the same one), then one summary cell per variant:
// medians of the numbers, sums of the counts (violations, failures).

export type Cell = Record<string, number | string>;

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? NaN;
}

/** Runs `rounds` rounds; `run` gets each variant and the round number, and returns its cell. */
export async function rotatingRounds<V>(
  variants: readonly V[],
  rounds: number,
  run: (variant: V, round: number) => Promise<Cell>,
): Promise<Map<V, Cell[]>> {
  const cells = new Map<V, Cell[]>(variants.map((v) => [v, []]));
  for (let round = 0; round < rounds; round++) {
    for (let i = 0; i < variants.length; i++) {
      const variant = variants[(i + round) % variants.length]!;
      const cell = await run(variant, round);
      cells.get(variant)!.push(cell);
      console.log(JSON.stringify({ round, ...cell }));
    }
  }
  return cells;
}

/** One cell for several runs of a variant: strings from the first, `sum` keys added up, other numbers' medians (a key a run lacks: 0). */
export function summarize(cells: readonly Cell[], sum: RegExp): Cell {
  const out: Cell = { runs: cells.length };
  for (const key of new Set(cells.flatMap((c) => Object.keys(c)))) {
    const first = cells.find((c) => c[key] !== undefined)![key]!;
    if (typeof first === 'string') out[key] = first;
    else {
      const values = cells.map((c) => Number(c[key] ?? 0));
      out[key] = sum.test(key) ? values.reduce((a, b) => a + b, 0) : median(values);
    }
  }
  return out;
}
