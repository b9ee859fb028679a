/**
 * Prometheus metrics recorded by the platform and served by the gateway at /metrics. One registry per platform
 * instance, so several gateways in one process (tests) do not share counters.
 */
import client from 'prom-client';

export class PlatformMetrics {
  readonly registry = new client.Registry();

  readonly executions = new client.Counter({
    name: 'faas_executions_total',
    help: 'Executions by mode and outcome (ok: exit 0, error: non-zero exit, timeout, oom, failed: the platform could not run it).',
    labelNames: ['mode', 'outcome'] as const,
    registers: [this.registry],
  });

  readonly executionSeconds = new client.Histogram({
    name: 'faas_execution_duration_seconds',
    help: 'End-to-end duration of executions as the gateway saw them, by mode.',
    labelNames: ['mode'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
    registers: [this.registry],
  });

  readonly liveSandboxes = new client.Gauge({
    name: 'faas_sandboxes_live',
    help: 'Sandboxes that exist right now, by kind (ephemeral, persistent) and status.',
    labelNames: ['kind', 'status'] as const,
    registers: [this.registry],
  });

  readonly streamClients = new client.Gauge({
    name: 'faas_stream_clients',
    help: 'WebSocket stream clients connected right now.',
    registers: [this.registry],
  });

  readonly storageGcRemovedBlobs = new client.Counter({
    name: 'faas_storage_gc_removed_blobs_total',
    help: 'Blobs (snapshot files, cached results, chunks) removed by the periodic storage gc because nothing referenced them.',
    registers: [this.registry],
  });

  readonly storageGcRemovedBytes = new client.Counter({
    name: 'faas_storage_gc_removed_bytes_total',
    help: 'Stored bytes reclaimed by the periodic storage gc.',
    registers: [this.registry],
  });

  readonly storageGcFailures = new client.Counter({
    name: 'faas_storage_gc_failures_total',
    help: 'Periodic storage gc runs that failed (retried at the next interval).',
    registers: [this.registry],
  });

  constructor() {
    client.collectDefaultMetrics({ register: this.registry, prefix: 'faas_gateway_' });
  }
}

export type ExecutionOutcomeLabel = 'ok' | 'error' | 'timeout' | 'oom' | 'failed';

export function outcomeLabel(o: { exitCode: number; timedOut: boolean; oomKilled: boolean }): ExecutionOutcomeLabel {
  if (o.timedOut) return 'timeout';
  if (o.oomKilled) return 'oom';
  return o.exitCode === 0 ? 'ok' : 'error';
}
