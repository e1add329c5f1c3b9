import { describe, expect, it } from 'vitest';
import { judgeNodes, type ProbeOutcome } from '../../lib/doctor/node-checks.js';
import type { Probe, ProbeRow } from '../../lib/doctor/probe.js';
import { judgeTokenSecrets } from '../../lib/doctor/setup-checks.js';

const row = (over: Partial<ProbeRow>): ProbeRow => ({
  in_recovery: false,
  version: '15.10',
  user: 'app',
  superuser: false,
  read_all_stats: false,
  control_functions: true,
  started: '2026-12-07 10:00:00+00',
  addr: '127.0.0.1',
  port: 5432,
  backend_pid: 100,
  lsn: '0/3000000',
  replay_paused: false,
  apply_delay: '0',
  receiver: null,
  ...over,
});
const probe = (rows: ProbeRow[], clock = { offsetMs: 0, uncertaintyMs: 1 }): Probe => ({
  rows,
  processIds: rows.map((r) => r.backend_pid),
  systemId: '7000',
  clock,
});

describe('doctor judgement (pure)', () => {
  const primary: ProbeOutcome = { name: 'primary', role: 'primary', probe: probe([row({})]) };
  const replica = (clock: { offsetMs: number; uncertaintyMs: number }): ProbeOutcome => ({
    name: 'r1',
    role: 'replica',
    probe: probe([row({ in_recovery: true, port: 5433, lsn: '0/2FFFF00' })], clock),
  });

  it('a clock off by more than the bound plus the uncertainty is a warning; within it, ok', () => {
    const skewed = judgeNodes([primary, replica({ offsetMs: 300, uncertaintyMs: 2 })], []).findings.find((f) => f.check === 'clock');
    expect(skewed).toMatchObject({ severity: 'warn', message: expect.stringMatching(/^clock 300 ms ahead of the primary's/) });
    const close = judgeNodes([primary, replica({ offsetMs: 20, uncertaintyMs: 2 })], []).findings.find((f) => f.check === 'clock');
    expect(close?.severity).toBe('ok');
    const unsure = judgeNodes([primary, replica({ offsetMs: 80, uncertaintyMs: 40 })], []).findings.find((f) => f.check === 'clock');
    expect(unsure?.severity).toBe('ok'); // 80 ± 41: cannot say it is beyond 50
  });

  it('lag in bytes from the primary insert position; a paused replay and an apply delay are warnings', () => {
    const paused: ProbeOutcome = {
      name: 'r1',
      role: 'replica',
      probe: probe([row({ in_recovery: true, port: 5433, lsn: '0/2FFFF00', replay_paused: true, apply_delay: '500ms' })]),
    };
    const { findings, nodes } = judgeNodes([primary, paused], []);
    expect(nodes[1]?.lagBytes).toBe(0x100);
    expect(findings.filter((f) => f.node === 'r1' && f.severity === 'warn').map((f) => f.message)).toEqual([
      expect.stringMatching(/replay is paused/),
      expect.stringMatching(/recovery_min_apply_delay is 500ms/),
    ]);
  });

  it('token secrets: placeholders and low randomness are problems, short ones warnings', () => {
    expect(judgeTokenSecrets([Buffer.from('demo secret, not for production use')])[0]?.severity).toBe('problem');
    expect(judgeTokenSecrets([Buffer.alloc(32, 'a')])[0]?.severity).toBe('problem');
    expect(judgeTokenSecrets([Buffer.from('Zq3v9LrT2mXk8NwB')])[0]?.severity).toBe('warn');
    expect(judgeTokenSecrets([Buffer.from('Zq3v9LrT2mXk8NwB5cYh7JdF4gPs6AeU')])[0]?.severity).toBe('ok');
    expect(judgeTokenSecrets([])[0]?.severity).toBe('info');
  });
});
