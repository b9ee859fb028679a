/**
 * The platform: everything between the gateway and the runtime, assembled from the configuration. The gateway
 * only parses requests and calls into this object.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { GatewayConfig } from '../config.js';
import { type Db, openDatabase } from '../db/sqlite.js';
import { DockerRuntime } from '../runtimes/docker/docker-runtime.js';
import type { Runtime } from '../runtimes/runtime.js';
import { Executor } from './executor.js';
import { PlatformMetrics } from './metrics.js';
import { SandboxService } from './sandboxes.js';
import { QuotaGuard } from './quotas.js';
import { PlatformStore } from './store.js';
import { TenantStore } from './tenants.js';
import { WarmPools } from './warm-pool.js';
import { QuietTime } from './quiet-time.js';
import Docker from 'dockerode';
import { DependencyCaches } from './dependency-caches.js';
import { TemplateService } from './templates.js';
import { BlobStore, storageConfigFromEnv } from '../storage/index.js';
import { ResultCache, cacheTtlFromEnv } from './result-cache.js';
import { SnapshotService } from './snapshots.js';
import { ForkService, forkSettingsFromEnv } from './forks.js';
import { StorageGc, storageGcSettingsFromEnv } from './storage-gc.js';

export interface Platform {
  config: GatewayConfig;
  db: Db;
  store: PlatformStore;
  runtime: Runtime;
  metrics: PlatformMetrics;
  sandboxes: SandboxService;
  executor: Executor;
  pools: WarmPools;
  tenants: TenantStore;
  /** Tenants' ceilings (also the defaults of the limits a request leaves out) and sandbox counts. */
  quotas: QuotaGuard;
  /** User images built from Dockerfiles. */
  templates: TemplateService;
  /** Shared dependency caches (per tenant volumes): `mountsFor(tenant)` gives a sandbox its mounts. */
  caches: DependencyCaches;
  /** Content-addressed storage (snapshots, cached results), with the optional S3 tier. */
  blobs: BlobStore;
  /** Cached mode's results. */
  resultCache: ResultCache;
  snapshots: SnapshotService;
  forks: ForkService;
  /** Removes blobs nothing references any more, every FAAS_STORAGE_GC_INTERVAL_S. */
  storageGc: StorageGc;
  /** Stops background work and detaches from sandboxes (persistent ones keep running). */
  close(): Promise<void>;
}

/**
 * Unix socket paths are limited to about 100 bytes, so when the data dir is deep the sockets live under a short
 * folder in /tmp named after it.
 */
export function runRootFor(dataDir: string): string {
  const preferred = path.join(dataDir, 'run');
  // "<root>/sb-<16 hex>/agent.sock" must fit in sun_path (108 bytes including the NUL).
  if (preferred.length + 1 + 19 + 1 + 10 < 100) return preferred;
  const digest = crypto.createHash('sha256').update(dataDir).digest('hex').slice(0, 16);
  return path.join(os.tmpdir(), `faas-run-${digest}`);
}

export async function createPlatform(config: GatewayConfig): Promise<Platform> {
  if (!fs.existsSync(config.agentPath)) {
    throw new Error(`the in-sandbox agent binary is missing at ${config.agentPath}; build it with \`make -C agent\` (the README set-up does) or set FAAS_AGENT_PATH`);
  }
  const db = openDatabase(config.dataDir);
  const store = new PlatformStore(db);
  const runRoot = runRootFor(config.dataDir);
  fs.mkdirSync(runRoot, { recursive: true, mode: 0o700 });
  const runtime = new DockerRuntime({
    socketPath: config.dockerSocket,
    agentPath: config.agentPath,
    runRoot,
    instanceId: store.instanceId(),
  });
  const metrics = new PlatformMetrics();
  // Builds may be silent for long: a client without the runtime's request timeout.
  const templates = new TemplateService(new Docker({ socketPath: config.dockerSocket }));
  const caches = DependencyCaches.fromEnv(runtime.docker, config.env ?? process.env);
  const volumesFor = (tenant: string) => caches.mountsFor(tenant);
  const tenants = new TenantStore(db);
  // Running sandboxes of a tenant: persistent ones plus ephemeral executions under way.
  const quotas = new QuotaGuard(
    (tenant) => tenants.quotasOf(tenant),
    (tenant) => sandboxes.countRunning(tenant) + executor.inFlight(tenant),
  );
  // Removals and pool refills wait for a pause in executions, so they do not slow the executions being answered.
  const quiet = new QuietTime(config.background);
  const sandboxes: SandboxService = new SandboxService(runtime, store, metrics, quiet, volumesFor, quotas);
  const pools = new WarmPools(runtime, metrics, config.pools, quiet, volumesFor);
  const env = config.env ?? process.env;
  const storage = storageConfigFromEnv(env, config.dataDir);
  const blobs = await BlobStore.open({ dataDir: config.dataDir, db, l1MaxBytes: storage.l1MaxBytes, s3: storage.s3, fsync: storage.fsync });
  const resultCache = new ResultCache(db, blobs, cacheTtlFromEnv(env));
  const snapshots = new SnapshotService(db, blobs, runtime, (tenant) => tenants.quotasOf(tenant).snapshot_bytes);
  const forkSettings = forkSettingsFromEnv(env);
  const executor: Executor = new Executor(runtime, sandboxes, store, metrics, pools, quiet, volumesFor, quotas, {
    cache: resultCache,
    snapshots,
    forkRetentionMs: forkSettings.retentionMs,
    forkRetainMax: forkSettings.retainMax,
  });
  const forks = new ForkService(executor, sandboxes, snapshots, forkSettings);
  const storageGc = new StorageGc(blobs, quiet, metrics, storageGcSettingsFromEnv(env, storage.s3 !== null));
  snapshots.sweepInternal(forkSettings.retentionMs);

  store.failInterruptedExecutions('the gateway stopped while this execution ran', new Date().toISOString());
  // Reconcile now if the engine is up, otherwise as soon as it answers (from the periodic tick).
  let reconciled = false;
  const reconcile = async () => {
    if (reconciled || !(await runtime.health()).reachable) return;
    await sandboxes.reconcile();
    reconciled = true;
  };
  await reconcile();
  const tick = async () => {
    await reconcile();
    if (!reconciled) return;
    pools.maintain();
    resultCache.sweep();
    snapshots.sweepInternal(forkSettings.retentionMs);
    await sandboxes.stopIdle();
  };
  const idleTimer = setInterval(() => void tick().catch(() => undefined), config.idleCheckMs);
  idleTimer.unref();
  storageGc.start();

  return {
    config,
    db,
    store,
    runtime,
    metrics,
    sandboxes,
    executor,
    pools,
    tenants,
    quotas,
    templates,
    caches,
    blobs,
    resultCache,
    snapshots,
    forks,
    storageGc,
    async close() {
      clearInterval(idleTimer);
      // Stops at once; a run waiting for a pause is let go when the executor releases the waiters.
      const gcStopped = storageGc.close();
      await executor.close();
      await pools.close();
      sandboxes.close();
      await runtime.close();
      await gcStopped;
      await blobs.close();
      db.close();
    },
  };
}
