// The chaos workload's chart: reads on replicas per strategy, overall and in each phase of the
// chaos cycle, bars side by side (docs/strategies-chaos*.svg).
import type { Cell } from './rounds.js';

const PHASES = ['overall', 'r1 paused', 'both replaying', 'r2 paused'] as const;
const COLORS = ['#7f8c8d', '#2e86c1', '#27ae60', '#8e44ad'];

function shareOf(cell: Cell, phase: (typeof PHASES)[number]): number {
  return Number(phase === 'overall' ? cell.replicaShare : cell[`share ${phase}`]) || 0;
}

function violations(results: readonly Cell[]): string {
  const of = (cell: Cell) => ['rywViolations', 'mrViolations', 'handoffViolations'].reduce((sum, key) => sum + (Number(cell[key]) || 0), 0);
  const counted = results.filter((cell) => of(cell) > 0).map((cell) => `${String(cell.strategy)}: ${of(cell)} violations`);
  return counted.length === 0 ? '0 violations for all' : counted.join(', ');
}

/** An SVG with one group of bars per phase, one bar per strategy (the oracle first), each labelled with its share. */
export function chaosChart(results: readonly Cell[], caption: string): string {
  const barWidth = 34;
  const gap = 6;
  const groupWidth = results.length * (barWidth + gap) + 40;
  const height = 220;
  const top = 50;
  const lines: string[] = [];
  PHASES.forEach((phase, p) => {
    const x0 = 60 + p * groupWidth;
    results.forEach((cell, s) => {
      const share = shareOf(cell, phase);
      const h = Math.round(share * height);
      const x = x0 + s * (barWidth + gap);
      lines.push(`<rect x="${x}" y="${top + height - h}" width="${barWidth}" height="${h}" fill="${COLORS[s % COLORS.length]}"/>`);
      lines.push(
        `<text x="${x + barWidth / 2}" y="${top + height - h - 4}" text-anchor="middle" font-size="10">${Math.round(share * 100)}%</text>`,
      );
    });
    lines.push(`<text x="${x0 + (results.length * (barWidth + gap)) / 2}" y="${top + height + 16}" text-anchor="middle">${phase}</text>`);
  });
  const legend = results.map(
    (cell, s) =>
      `<rect x="${60 + s * 220}" y="${top + height + 30}" width="12" height="12" fill="${COLORS[s % COLORS.length]}"/><text x="${78 + s * 220}" y="${top + height + 41}">${String(cell.strategy)}</text>`,
  );
  const width = 60 + PHASES.length * groupWidth + 20;
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${Math.max(width, 60 + results.length * 220)}" height="${top + height + 60}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="10" y="18" font-size="14">Reads served by replicas under chaos (${violations(results)}): ${caption}</text>
<line x1="55" y1="${top + height}" x2="${width}" y2="${top + height}" stroke="#999"/>
${lines.join('\n')}
${legend.join('\n')}
</svg>
`;
}
