import { describe, expect, it } from 'vitest';
import { drill, expectDrillHeld, sleep, useDrillCluster } from './drill.js';

const env = useDrillCluster();

describe('fault drill: Redis (the position store)', () => {
  it('Redis killed for 3 s and restarted empty: no stale read, no failed request, back on replicas', async () => {
    const { cluster, router } = env();
    const before = router.topology().store;
    const report = await drill(env(), 'redis-killed', {
      fault: async () => {
        await cluster.redis!.kill();
        await sleep(3000);
      },
      heal: async () => {
        await cluster.redis!.start();
        // the breaker closes again on the next trial call
        const deadline = Date.now() + 10_000;
        while (router.topology().store.state !== 'closed' && Date.now() < deadline) await sleep(50);
      },
    });
    expectDrillHeld(report);
    const store = router.topology().store;
    expect(store.opened - before.opened, 'the breaker opened during the outage').toBeGreaterThan(0);
    expect(store.state).toBe('closed');
  });
});
