// Drill reports: written (without the history) to test/faults/results/<name>.json (git-ignored)
// and printed, with whatever else the drill wants on record (seed, schedule, events).
import { mkdirSync, writeFileSync } from 'node:fs';
import type { DrillReport } from './drill.js';

export function writeDrillReport(report: DrillReport, extra: Record<string, unknown> = {}): void {
  const { result: _result, ...summary } = report;
  const dir = new URL('./results/', import.meta.url);
  mkdirSync(dir, { recursive: true });
  const body = { ...summary, ...extra };
  writeFileSync(new URL(`${report.name}.json`, dir), `${JSON.stringify(body, null, 2)}\n`);
  console.log(`[drill] ${JSON.stringify(body)}`);
}
