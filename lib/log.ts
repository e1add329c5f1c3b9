/** Where the router reports what it counted (store outages, corrupt values, rejected tokens). */
export interface Logger {
  warn(message: string, details?: Record<string, unknown>): void;
}

/**
 * Wraps a logger so each kind of message is written at most once per `intervalMs`: an outage or a
 * flood of bad tokens must not flood the logs (the counters keep the exact numbers).
 */
export function rateLimited(
  logger: Logger | false,
  intervalMs = 60_000,
): (kind: string, message: string, details?: Record<string, unknown>) => void {
  if (!logger) return () => {};
  const last = new Map<string, number>();
  return (kind, message, details) => {
    const now = Date.now();
    if ((last.get(kind) ?? -Infinity) + intervalMs > now) return;
    last.set(kind, now);
    try {
      logger.warn(`pg-replica-router: ${message}`, details);
    } catch {
      // a failing logger never breaks a request
    }
  };
}
