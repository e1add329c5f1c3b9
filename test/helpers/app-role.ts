// The application role real deployments connect as: a login with table grants only (no
// superuser, no pg_monitor). Clusters from startTestCluster (appRole: true) have it already, with
// rights on everything the superuser creates; createAppRole makes it on any other cluster.
import type { RouterOptions } from 'pg-replica-router';
import { APP_ROLE as ROLE, type Cluster } from 'pg-replica-router/testing';

export const APP_ROLE = ROLE.name;

/**
 * Creates the role `app` unless the cluster has it (startTestCluster, appRole: true) and grants
 * it `grants` (e.g. `select, insert on notes`); waits for the replicas.
 */
export async function createAppRole(cluster: Cluster, grants: string[]): Promise<void> {
  const exists = await cluster.primary.query('select 1 from pg_roles where rolname = $1', [APP_ROLE]);
  if (exists.length === 0) await cluster.primary.query(`create role ${APP_ROLE} login password '${ROLE.password}'`);
  for (const grant of grants) await cluster.primary.query(`grant ${grant} to ${APP_ROLE}`);
  await cluster.waitForReplicas();
}

/** `connectionString` with the application role as its user. */
export function asAppRole(connectionString: string): string {
  return connectionString.replace(/\/\/[^@/]*@/, `//${APP_ROLE}:${ROLE.password}@`);
}

/** Router options whose primary and replicas connect as the application role. */
export function appRoleNodes(cluster: Cluster): Pick<RouterOptions, 'primary' | 'replicas'> {
  return {
    primary: { connectionString: asAppRole(cluster.primary.connectionString) },
    replicas: cluster.replicas.map((r) => ({ name: r.name, connectionString: asAppRole(r.connectionString) })),
  };
}
