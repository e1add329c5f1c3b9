// The router's routing decisions by (role, reason), from its `pgrr.routing.decisions` metric: a
// meter provider registered before the routers are made (as an application's OpenTelemetry SDK
// is), read on demand. Only for diagnosis: counting costs a little CPU per statement.
import { metrics } from '@opentelemetry/api';
import { MeterProvider, MetricReader } from '@opentelemetry/sdk-metrics';
import { points } from '../helpers/otel.js';

class OnDemandReader extends MetricReader {
  protected async onForceFlush(): Promise<void> {}
  protected async onShutdown(): Promise<void> {}
}

/** `role:reason` → count, e.g. `{ 'replica:caught-up': 812, 'primary:replica-behind': 40 }`. */
export type DecisionCounts = Record<string, number>;

export interface DecisionMeter {
  /** The decisions counted so far (cumulative over every router made after install). */
  read(): Promise<DecisionCounts>;
  /** `after - before`, zero entries dropped. */
  since(before: DecisionCounts): Promise<DecisionCounts>;
  shutdown(): Promise<void>;
}

/** Registers a global meter provider; call before creating the routers to watch. */
export function installDecisionMeter(): DecisionMeter {
  const reader = new OnDemandReader();
  const provider = new MeterProvider({ readers: [reader] });
  metrics.setGlobalMeterProvider(provider);
  const read = async (): Promise<DecisionCounts> => {
    const counts: DecisionCounts = {};
    for (const [attributes, value] of points((await reader.collect()).resourceMetrics, 'pgrr.routing.decisions')) {
      const key = `${String(attributes['pgrr.node.role'])}:${String(attributes['pgrr.reason'])}`;
      counts[key] = (counts[key] ?? 0) + value;
    }
    return counts;
  };
  return {
    read,
    async since(before) {
      const after = await read();
      const delta: DecisionCounts = {};
      for (const [key, value] of Object.entries(after)) if (value - (before[key] ?? 0) > 0) delta[key] = value - (before[key] ?? 0);
      return delta;
    },
    async shutdown() {
      await provider.shutdown();
      metrics.disable();
    },
  };
}
