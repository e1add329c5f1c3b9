export { ErrorCodes, ReplicaRouterError, type ErrorCode } from './errors.js';
export { formatLsn, maxLsn, parseLsn, tryParseLsn, type Lsn } from './lsn.js';
