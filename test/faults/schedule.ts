// A seeded fault schedule for drills: the same seed gives the same order, holds and moments, so a
// failing run can be replayed (DRILL_SEED=<seed>).
import type { Redis } from 'ioredis';
import type { RedisHandle } from 'pg-replica-router/testing';

/** A seeded pseudo-random generator (mulberry32): numbers in [0, 1). */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

/** The seed of this run: `DRILL_SEED`, else a fixed one. */
export function drillSeed(): number {
  const seed = Number(process.env.DRILL_SEED ?? 14);
  return Number.isInteger(seed) ? seed : 14;
}

/** `items` in a seeded random order. */
export function shuffled<T>(items: readonly T[], random: () => number): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

/** Something the Redis chaos did, and when (performance.now()). */
export interface RedisEvent {
  what: 'flushall' | 'restarted empty';
  at: number;
  /** For a restart: when Redis answered again. */
  until?: number;
}

export interface RedisChaos {
  readonly events: readonly RedisEvent[];
  /** Empties Redis now (after any event under way): as `what` says, else as a random moment would. */
  fire(what?: RedisEvent['what']): Promise<void>;
  /** While paused, no new event starts (one already running completes first). */
  pause(): Promise<void>;
  resume(): void;
  /** Stops after the current event; resolves once Redis is running. */
  stop(): Promise<void>;
}

/**
 * Empties Redis at seeded random moments (a pause of 0.4–2.4 s between events), without any
 * router seeing an error (FLUSHALL, 2 in 3) or with one (SIGKILL and restarted empty, 1 in 3 —
 * Redis runs without persistence).
 */
export function redisChaos(redis: RedisHandle, client: Redis, random: () => number, options: { paused?: boolean } = {}): RedisChaos {
  const events: RedisEvent[] = [];
  let paused = options.paused ?? false;
  let stopping = false;
  let wake: (() => void) | undefined;
  let current: Promise<void> = Promise.resolve();
  const nap = (ms: number) =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms);
      wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  const fire = (what?: RedisEvent['what']) => {
    const flush = what === undefined ? random() < 2 / 3 : what === 'flushall';
    current = current.then(async () => {
      const at = performance.now();
      if (flush) {
        await client.flushall();
        events.push({ what: 'flushall', at });
      } else {
        await redis.kill();
        await redis.start();
        events.push({ what: 'restarted empty', at, until: performance.now() });
      }
    });
    return current;
  };
  const loop = (async () => {
    for (;;) {
      await nap(400 + random() * 2000);
      if (stopping) return;
      if (!paused) await fire();
    }
  })();
  return {
    events,
    fire,
    async pause() {
      paused = true;
      await current;
    },
    resume() {
      paused = false;
    },
    async stop() {
      stopping = true;
      wake?.();
      await loop;
      if (!redis.running) await redis.start();
    },
  };
}
