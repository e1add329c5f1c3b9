export { ErrorCodes, ReplicaRouterError, type ErrorCode } from './errors.js';
export { formatLsn, maxLsn, parseLsn, tryParseLsn, type Lsn } from './lsn.js';
export { createRouter, type Router, type Topology, type TopologyNode } from './router.js';
export type { RouterOptions, ReplicaConfig } from './options.js';
export { discoverReplicas, type DnsDiscoveryOptions, type ReplicaDiscovery } from './dns-discovery.js';
export type { Consistency } from './consistency.js';
export { RoutedPool } from './pool.js';
export { RoutedClient } from './client.js';
export type { ClientSurface } from './client-surface.js';
export { memoryStore, type MemoryStoreOptions } from './stores/memory.js';
export type { LsnStore, StoreInspection } from './stores/store.js';
export { redisStore, redisKeyFor, type RedisStoreOptions, type RedisClientLike } from './stores/redis.js';
export { mergePosition, type StoredPosition } from './position.js';
export type { TokenRejection } from './token.js';
export type { MonitorOptions } from './monitor-view.js';
export type { Reason, PrimaryReason, ReplicaReason } from './routing-policy.js';
export { DEFAULT_WRITE_FUNCTIONS, type StatementKind } from './classifier.js';
export { tokenHeaders, withTokenBaggage, TOKEN_HEADER } from './propagation.js';
export type { Logger } from './log.js';
export {
  formatReport as formatDoctorReport,
  type DoctorFinding,
  type DoctorOptions,
  type DoctorReport,
  type NodeFacts,
  type Severity,
} from './doctor/index.js';
export type { NodeVerdict } from './node-verdict.js';
export type { DebugDecision } from './debug-log.js';
