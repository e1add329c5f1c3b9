// The scale benchmark on its own: `npx tsx --expose-gc test/bench/scale.bench.ts` prints its
// figures as JSON; with BENCH_WRITE=1 it also writes docs/bench-scale.json. Without --expose-gc
// the memory figures use a collector obtained at run time (the same full GC). SCALE_ROUNDS,
// SCALE_WINDOW_MS and SCALE_REPLICAS shorten a trial run.
import { writeFileSync } from 'node:fs';
import { measureScale, type ScaleOptions } from './scale.js';

const fromEnv = (name: string): number | undefined => (process.env[name] ? Number(process.env[name]) : undefined);
const options: ScaleOptions = {};
if (fromEnv('SCALE_ROUNDS') !== undefined) options.rounds = fromEnv('SCALE_ROUNDS')!;
if (fromEnv('SCALE_WINDOW_MS') !== undefined) options.windowMs = fromEnv('SCALE_WINDOW_MS')!;
if (fromEnv('SCALE_REPLICAS') !== undefined) options.replicas = fromEnv('SCALE_REPLICAS')!;

const figures = await measureScale(options);
const json = `${JSON.stringify(figures, null, 2)}\n`;
process.stdout.write(json);
if (process.env.BENCH_WRITE) writeFileSync(new URL('../../docs/bench-scale.json', import.meta.url), json);
