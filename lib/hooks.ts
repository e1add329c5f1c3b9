import type pg from 'pg';
import type { ClientRegistry } from './client-registry.js';
import { RoutedClient } from './client.js';

type OnConnect = (client: RoutedClient) => unknown;
type Verify = (client: RoutedClient, done: (err?: Error) => void) => void;

/**
 * A node's pool config whose `onConnect` and `verify` hooks get the routed client object of the
 * new connection (the one `router.pool.connect()` returns for it), with its statements going
 * straight to that connection while the hook runs, as on a pg client.
 */
export function withRoutedHooks(config: pg.PoolConfig, clients: () => ClientRegistry<RoutedClient>): pg.PoolConfig {
  const onConnect = config.onConnect as OnConnect | undefined;
  const verify = config.verify as Verify | undefined;
  if (!onConnect && !verify) return config;
  const hooked: pg.PoolConfig = { ...config };
  if (onConnect) {
    hooked.onConnect = ((raw: pg.PoolClient) => {
      const client = clients().of(raw);
      return inHook(client, raw, () => onConnect(client));
    }) as pg.PoolConfig['onConnect'];
  }
  if (verify) {
    hooked.verify = (raw, done) => {
      const client = clients().of(raw);
      RoutedClient.hook(client, raw);
      verify(client, (err) => {
        RoutedClient.hook(client, undefined);
        done(err);
      });
    };
  }
  return hooked;
}

/**
 * Runs `fn` (a hook or listener given the routed client object of `raw`) with its statements going
 * straight to `raw` until it returns or throws, or, when it returns a promise, until that settles
 * (that promise is returned; anything else gives undefined).
 */
export function inHook(client: RoutedClient, raw: pg.PoolClient, fn: () => unknown): Promise<unknown> | undefined {
  RoutedClient.hook(client, raw);
  let result: unknown;
  try {
    result = fn();
  } catch (err) {
    RoutedClient.hook(client, undefined);
    throw err;
  }
  if (result instanceof Promise) return result.finally(() => RoutedClient.hook(client, undefined));
  RoutedClient.hook(client, undefined);
  return undefined;
}
