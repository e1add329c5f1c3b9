// The application role real deployments connect as: a login with table grants only (no
// superuser, no pg_monitor). Tests create it on the primary (roles replicate) and point routers at it.
import type { RouterOptions } from 'pg-replica-router';
import type { Cluster } from 'pg-replica-router/testing';

export const APP_ROLE = 'app';

/** Creates the role `app` and grants it `grants` (e.g. `select, insert on notes`); waits for the replicas. */
export async function createAppRole(cluster: Cluster, grants: string[]): Promise<void> {
  await cluster.primary.query(`create role ${APP_ROLE} login password '${APP_ROLE}'`);
  for (const grant of grants) await cluster.primary.query(`grant ${grant} to ${APP_ROLE}`);
  await cluster.waitForReplicas();
}

/** `connectionString` with the application role as its user. */
export function asAppRole(connectionString: string): string {
  return connectionString.replace(/\/\/[^@/]*@/, `//${APP_ROLE}:${APP_ROLE}@`);
}

/** Router options whose primary and replicas connect as the application role. */
export function appRoleNodes(cluster: Cluster): Pick<RouterOptions, 'primary' | 'replicas'> {
  return {
    primary: { connectionString: asAppRole(cluster.primary.connectionString) },
    replicas: cluster.replicas.map((r) => ({ name: r.name, connectionString: asAppRole(r.connectionString) })),
  };
}
