import { afterEach, describe, expect, it, vi } from 'vitest';
import { GuardedStore, StoreUnavailable } from '../../lib/stores/guard.js';
import type { LsnStore } from '../../lib/stores/store.js';

/** A store whose behaviour the test switches: answer, fail, or hang. */
function switchable() {
  let mode: 'ok' | 'fail' | 'hang' = 'ok';
  let calls = 0;
  const store: LsnStore = {
    async get() {
      calls++;
      if (mode === 'fail') throw new Error('ECONNREFUSED');
      if (mode === 'hang') return new Promise(() => {});
      return { lsn: 1n };
    },
    async raise() {
      calls++;
      if (mode !== 'ok') throw new Error('down');
    },
  };
  return { store, set: (m: typeof mode) => (mode = m), calls: () => calls };
}

afterEach(() => {
  vi.useRealTimers();
});

describe('store guard: timeouts and circuit breaker', () => {
  it('abandons a call after the timeout', async () => {
    const s = switchable();
    const guard = new GuardedStore(s.store, { timeoutMs: 20, failures: 3, cooldownMs: 1000 });
    s.set('hang');
    await expect(guard.get('k')).rejects.toMatchObject({ reason: 'timeout' });
    expect(guard.counters.timeouts).toBe(1);
    expect(guard.state).toBe('closed'); // one failure does not open it
  });

  it('opens after consecutive failures, then fails calls at once without calling the store', async () => {
    const s = switchable();
    const events: string[] = [];
    const guard = new GuardedStore(
      s.store,
      { timeoutMs: 20, failures: 3, cooldownMs: 60_000 },
      {
        onOpen: () => events.push('open'),
        onRecover: () => events.push('recover'),
      },
    );
    s.set('fail');
    for (let i = 0; i < 3; i++) await expect(guard.get('k')).rejects.toBeInstanceOf(StoreUnavailable);
    expect(guard.state).toBe('open');
    expect(events).toEqual(['open']);
    const before = s.calls();
    for (let i = 0; i < 10; i++) await expect(guard.raise('k', { lsn: 1n }, undefined)).rejects.toMatchObject({ reason: 'circuit-open' });
    expect(s.calls()).toBe(before); // not called at all
    expect(guard.counters.shortCircuits).toBe(10);
  });

  it('after the cooldown lets one trial through; success closes it and reports recovery', async () => {
    vi.useFakeTimers({ toFake: ['performance'] });
    const s = switchable();
    const events: string[] = [];
    const guard = new GuardedStore(s.store, { timeoutMs: 1000, failures: 2, cooldownMs: 500 }, { onRecover: () => events.push('recover') });
    s.set('fail');
    await expect(guard.get('k')).rejects.toThrow();
    await expect(guard.get('k')).rejects.toThrow();
    expect(guard.state).toBe('open');
    vi.advanceTimersByTime(600);
    expect(guard.state).toBe('half-open');
    await expect(guard.get('k')).rejects.toThrow(); // the trial fails: open again for another cooldown
    expect(guard.state).toBe('open');
    vi.advanceTimersByTime(600);
    s.set('ok');
    expect(await guard.get('k')).toEqual({ lsn: 1n });
    expect(guard.state).toBe('closed');
    expect(events).toEqual(['recover']);
    expect(guard.counters.recovered).toBe(1);
  });

  it('a success resets the failure count', async () => {
    const s = switchable();
    const guard = new GuardedStore(s.store, { timeoutMs: 1000, failures: 2, cooldownMs: 500 });
    s.set('fail');
    await expect(guard.get('k')).rejects.toThrow();
    s.set('ok');
    await guard.get('k');
    s.set('fail');
    await expect(guard.get('k')).rejects.toThrow();
    expect(guard.state).toBe('closed');
  });
});
