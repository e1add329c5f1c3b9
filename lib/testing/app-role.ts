import type { Cluster } from './types.js';

/**
 * The application role `startCluster({ appRole: true })` creates: a login with table rights only,
 * as real deployments connect (not superuser, no pg_monitor, no pg_read_all_stats).
 */
export const APP_ROLE = { name: 'app', password: 'app' } as const;

/** `connectionString` with `user` and `password` in place of its credentials. */
export function withCredentials(connectionString: string, user: string, password: string): string {
  const url = new URL(connectionString);
  url.username = user;
  url.password = password;
  return url.toString();
}

/**
 * What makes the role able to do what an application does on a fresh cluster: create tables in
 * `public` (PostgreSQL 15 no longer grants that to everyone) and use everything the cluster's
 * superuser creates later, in any schema (default privileges), so set-up SQL run through
 * `cluster.primary.query()` needs no grants of its own.
 */
export function appRoleStatements(superuser: string): string[] {
  const role = APP_ROLE.name;
  return [
    `create role ${role} login password '${APP_ROLE.password}'`,
    `grant create, usage on schema public to ${role}`,
    `alter default privileges for role ${superuser} grant all on tables to ${role}`,
    `alter default privileges for role ${superuser} grant all on sequences to ${role}`,
    `alter default privileges for role ${superuser} grant all on functions to ${role}`,
    `alter default privileges for role ${superuser} grant usage, create on schemas to ${role}`,
  ];
}

/** Creates the application role on the primary (roles replicate) and waits for the replicas. */
export async function provisionAppRole(cluster: Cluster): Promise<void> {
  const superuser = decodeURIComponent(new URL(cluster.primary.connectionString).username);
  for (const statement of appRoleStatements(superuser)) await cluster.primary.query(statement);
  await cluster.waitForReplicas();
}
