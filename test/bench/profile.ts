// BENCH_PROFILE_DIR=<dir>: a V8 CPU profile of this process around one measured window (node:
// inspector), saved as <dir>/<label>.cpuprofile; nothing when the variable is unset. For finding
// where a variant's CPU per request goes (open in Chrome DevTools or speedscope).
import { mkdirSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';

const DIR = process.env.BENCH_PROFILE_DIR;

/** Starts profiling; the returned function stops and saves it as `<label>.cpuprofile`. */
export async function startProfile(label: string): Promise<() => Promise<void>> {
  if (!DIR) return async () => {};
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.setSamplingInterval', { interval: 200 });
  await session.post('Profiler.start');
  return async () => {
    const { profile } = await session.post('Profiler.stop');
    session.disconnect();
    mkdirSync(DIR, { recursive: true });
    writeFileSync(`${DIR}/${label.replace(/[^A-Za-z0-9_.-]+/g, '_')}.cpuprofile`, JSON.stringify(profile));
  };
}
