// `tsx --import ./test/bench/built.mjs …` (npm run bench, bench:routing): the benchmarks measure the
// built package (dist/, tsc's output), as users run it, not the TypeScript sources through tsx,
// whose esbuild transform keeps function names (keepNames: every closure the router makes goes
// through an extra defineProperty call that the baseline, plain JavaScript in node_modules, never
// pays). Every import of a file under lib/ or adapters/ — from the benchmarks, the workload, the
// test helpers — loads its dist/ counterpart instead, so the whole process runs one copy.
import { register } from 'node:module';

register('./built-hooks.mjs', import.meta.url);
