import type { LsnStore } from '../stores/store.js';
import type { DoctorFinding } from './report.js';

/** The store: reachable, shared between instances, able to forget (eviction, no persistence). */
export async function judgeStore(store: LsnStore, timeoutMs: number): Promise<DoctorFinding[]> {
  if (typeof store.inspect !== 'function') {
    return [{ check: 'store', severity: 'info', message: 'a custom store without inspect(): not checked' }];
  }
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer in ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    const inspection = await Promise.race([store.inspect(), timeout]);
    const findings: DoctorFinding[] = [];
    const say = (check: string, severity: DoctorFinding['severity'], message: string) => findings.push({ check, severity, message });
    if (!inspection.shared) {
      say(
        'store',
        'warn',
        `${inspection.kind} store: positions are kept in this process only. With several app instances, a session's ` +
          "next request on another instance has no stored position: its reads then need the primary's position (safe, at the primary's cost). Use redisStore() to share them",
      );
    } else say('store', 'ok', `${inspection.kind} store reachable, shared by every instance`);
    const policy = inspection.eviction;
    if (inspection.shared && policy !== undefined) {
      const evicts = policy.startsWith('allkeys-') || (policy.startsWith('volatile-') && inspection.expires !== false);
      if (evicts) {
        say(
          'store-eviction',
          'problem',
          `maxmemory-policy ${policy}: under memory pressure Redis evicts session positions without a word. ` +
            "Evicted sessions read at the primary's position, moving load to the primary just when the store is full. Use noeviction (a full store then fails loudly and reads fall back to the primary)",
        );
      } else say('store-eviction', 'ok', `maxmemory-policy ${policy}: positions are never evicted`);
    }
    if (inspection.shared && inspection.persistent === false) {
      say(
        'store-persistence',
        'warn',
        "neither AOF nor RDB snapshots are on: a restart forgets every position (the router notices and raises floors to the primary's position, at the primary's cost)",
      );
    }
    return findings;
  } catch (err) {
    return [{ check: 'store', severity: 'problem', message: `the store does not answer: ${(err as Error)?.message ?? String(err)}` }];
  } finally {
    clearTimeout(timer);
  }
}

/** Placeholders people leave in configs. */
const WEAK_SECRET = /secret|change.?me|password|example|demo|test|default|todo|xxx/i;

/** The token secret(s): present, long and random enough to resist guessing. */
export function judgeTokenSecrets(secrets: readonly Buffer[]): DoctorFinding[] {
  if (secrets.length === 0) {
    return [
      {
        check: 'token-secret',
        severity: 'info',
        message:
          'no tokenSecret: consistency tokens (currentToken/withToken) and the position cookie are off; a position the store could not take is then not carried by the client',
      },
    ];
  }
  return secrets.map((secret, i) => {
    const which = secrets.length > 1 ? `tokenSecret[${i}]` : 'tokenSecret';
    const distinct = new Set(secret).size;
    const text = secret.toString('utf8');
    if (WEAK_SECRET.test(text) || distinct < 8) {
      return {
        check: 'token-secret',
        severity: 'problem',
        message: `${which} looks like a placeholder or has little randomness (${distinct} distinct bytes): anyone who guesses it can forge tokens. Use crypto.randomBytes(32)`,
      };
    }
    if (secret.length < 32) {
      return { check: 'token-secret', severity: 'warn', message: `${which} is ${secret.length} bytes; 32 random bytes are recommended` };
    }
    return { check: 'token-secret', severity: 'ok', message: `${which}: ${secret.length} bytes` };
  });
}
