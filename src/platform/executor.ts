/**
 * `POST /execute`: runs a command in the execution mode asked for. Ephemeral runs get a fresh sandbox that is
 * removed after the answer; persistent runs create a sandbox that stays.
 */
import { DEFAULT_IMAGE, DEFAULT_WORKING_DIR, type ExecuteRequest, type ExecuteResult, type ExecutionMode, LIMITS, type StreamEvent } from '@faas/protocol';
import { FaasError, errorMessage } from '../errors.js';
import type { ProcessHandle, Runtime } from '../runtimes/runtime.js';
import { resolveImageFor } from './image-access.js';
import { newId, nowIso } from './ids.js';
import { type PlatformMetrics, outcomeLabel } from './metrics.js';
import { type ProcessOutcome, runProcess } from './run-process.js';
import { type SandboxService, type VolumesFor, shellArgv } from './sandboxes.js';
import { QuotaGuard } from './quotas.js';
import type { PlatformStore } from './store.js';
import { type PoolShape, type WarmPools, limitsOf } from './warm-pool.js';
import { READ_ONLY_FILES, inputFilesDigest, prepareInputFiles, writeInputFiles } from './input-files.js';
import type { QuietTime } from './quiet-time.js';
import { type CachedOutcome, ResultCache, cacheKey } from './result-cache.js';
import type { SnapshotRecord, SnapshotService } from './snapshots.js';

/** What the snapshot features add to the executor (absent in setups without storage). */
export interface ExecutorSnapshots {
  cache: ResultCache;
  snapshots: SnapshotService;
  /** How long a finished execution stays forkable (ms); 0 keeps nothing. */
  forkRetentionMs: number;
  /** Above this many sandboxes waiting for removal, finished executions are not kept (the gateway is too busy). */
  forkRetainMax: number;
}

/** A finished execution's final state, kept for forks until `until`. */
interface Kept {
  tenant: string;
  until: number;
  /** Its snapshot (null when it could not be kept); taken while its sandbox waits for removal. */
  snapshot: Promise<SnapshotRecord | null>;
  why?: string;
}

/** A finished sandbox waiting for removal, since when (`performance.now()`). */
interface Removal {
  sandboxId: string;
  since: number;
}

/** Above this many sandboxes waiting for removal, two removals run at once. */
const REMOVAL_BACKLOG_FOR_TWO = 8;

const LATER_MODES: ReadonlySet<ExecutionMode> = new Set(['branched']);
const SNAPSHOT_MODES: ReadonlySet<ExecutionMode> = new Set(['cached', 'checkpointed']);

export function toExecuteResult(id: string, mode: ExecutionMode, o: ProcessOutcome, containerId?: string): ExecuteResult {
  return {
    id,
    mode,
    exit_code: o.exitCode,
    signal: o.signal,
    stdout: o.stdout,
    stderr: o.stderr,
    stdout_truncated: o.stdoutTruncated,
    stderr_truncated: o.stderrTruncated,
    duration_ms: o.durationMs,
    timed_out: o.timedOut,
    oom_killed: o.oomKilled,
    ...(containerId !== undefined ? { container_id: containerId } : {}),
  };
}

export class Executor {
  /** Finished ephemeral sandboxes waiting for removal, and the removals under way; drained on shutdown. */
  private readonly removals: Removal[] = [];
  private readonly cleanups = new Set<Promise<void>>();
  /** Processes of ephemeral executions under way, killed if the gateway shuts down. */
  private readonly running = new Map<string, { handle: ProcessHandle | null; finished: Promise<unknown> }>();
  private closing = false;
  private readonly inFlightByTenant = new Map<string, number>();

  constructor(
    private readonly runtime: Runtime,
    private readonly sandboxes: SandboxService,
    private readonly store: PlatformStore,
    private readonly metrics: PlatformMetrics,
    private readonly pools: WarmPools,
    /** Removals wait for a pause in executions (see QuietTime). */
    private readonly quiet: QuietTime,
    private readonly volumesFor: VolumesFor = async () => [],
    private readonly quotas: QuotaGuard = new QuotaGuard(() => ({}), () => 0),
    private readonly snap: ExecutorSnapshots | null = null,
  ) {}

  /** Finished executions kept for forks, by execution id (oldest first). */
  private readonly kept = new Map<string, Kept>();
  /** Work to do on a sandbox before it is removed (taking the snapshot that keeps its execution forkable). */
  private readonly beforeRemoval = new Map<string, () => Promise<void>>();

  /** Ephemeral executions of the tenant under way (they hold a sandbox each). */
  inFlight(tenant: string): number {
    return this.inFlightByTenant.get(tenant) ?? 0;
  }

  /** Checks what can be checked before anything is created, so a bad request leaves nothing behind. */
  validate(req: ExecuteRequest): ExecutionMode {
    const mode = req.mode ?? 'ephemeral';
    if (LATER_MODES.has(mode)) {
      throw new FaasError('mode_not_available', `mode "${mode}" is served by POST /api/v1/fork (or /api/v1/executions/{id}/fork), not by execute`, 'mode');
    }
    if (SNAPSHOT_MODES.has(mode) && !this.snap) throw new FaasError('mode_not_available', `mode "${mode}" needs the storage manager, which this gateway runs without`, 'mode');
    if (req.checkpoint !== undefined && !SNAPSHOT_MODES.has(mode)) {
      throw new FaasError('validation_error', '`checkpoint` is for the "checkpointed" and "cached" modes', 'checkpoint');
    }
    if (req.read_only && req.files) throw new FaasError('validation_error', READ_ONLY_FILES, 'files');
    return mode;
  }

  async execute(tenant: string, ask: ExecuteRequest, onEvent?: (event: StreamEvent) => void): Promise<ExecuteResult> {
    const mode = this.validate(ask);
    const req = this.quotas.limits(tenant, ask);
    this.quotas.admitExecution(tenant);
    if (mode !== 'persistent') this.quotas.admitSandbox(tenant);
    if (this.closing) throw new FaasError('engine_unavailable', 'the gateway is shutting down; retry against its next start', undefined, 5);
    const id = newId('ex');
    const started = performance.now();
    this.store.insertExecution({ id, tenantId: tenant, mode, sandboxId: null, status: 'running', exitCode: null, error: null, startedAt: nowIso(), endedAt: null });
    const work =
      mode === 'persistent'
        ? this.persistent(tenant, id, req, onEvent)
        : mode === 'cached'
          ? this.cached(tenant, id, req, onEvent)
          : mode === 'checkpointed'
            ? this.ephemeral(tenant, id, req, onEvent, { mode, capture: true })
            : this.ephemeral(tenant, id, req, onEvent);
    if (mode !== 'persistent') this.inFlightByTenant.set(tenant, this.inFlight(tenant) + 1);
    try {
      const result = await work;
      if (this.closing) throw new FaasError('engine_unavailable', `the gateway shut down while execution ${id} ran; it was killed`);
      this.store.finishExecution(id, 'finished', result.exit_code, null, nowIso());
      this.metrics.executions.inc({ mode, outcome: outcomeLabel({ exitCode: result.exit_code, timedOut: result.timed_out, oomKilled: result.oom_killed }) });
      return result;
    } catch (err) {
      this.store.finishExecution(id, 'failed', null, errorMessage(err), nowIso());
      this.metrics.executions.inc({ mode, outcome: 'failed' });
      throw err;
    } finally {
      if (mode !== 'persistent') this.inFlightByTenant.set(tenant, this.inFlight(tenant) - 1);
      this.metrics.executionSeconds.observe({ mode }, (performance.now() - started) / 1000);
    }
  }

  /**
   * Cached mode: answers from the result cache when it can (nothing runs, the engine is not asked), otherwise runs
   * once for all concurrent identical requests and stores the result.
   */
  private async cached(tenant: string, id: string, req: ExecuteRequest, onEvent?: (event: StreamEvent) => void): Promise<ExecuteResult> {
    const { cache, snapshots } = this.snap!;
    const snapshot = req.checkpoint !== undefined ? await snapshots.get(tenant, req.checkpoint) : null;
    const image = snapshot ? await snapshots.imageFor(snapshot, req.image) : (req.image ?? DEFAULT_IMAGE);
    const imageId = snapshot ? snapshot.imageId : await this.runtime.imageId(image);
    const key = cacheKey({
      tenant,
      imageId,
      argv: req.argv ?? shellArgv(req.command!),
      env: req.env ?? {},
      workingDir: req.working_dir ?? DEFAULT_WORKING_DIR,
      stdin: req.stdin ?? null,
      files: inputFilesDigest(req.files) ?? undefined,
      limits: {
        memory_mb: req.memory_mb ?? null,
        cpu_cores: req.cpu_cores ?? null,
        pids_limit: req.pids_limit ?? null,
        network: req.network ?? 'none',
        read_only: req.read_only ?? false,
      },
      timeoutMs: req.timeout_ms ?? LIMITS.defaultTimeoutMs,
      runtime: this.runtime.name,
      checkpoint: snapshot?.id ?? null,
    });
    const answer = (o: CachedOutcome, cached: boolean): ExecuteResult => {
      if (cached && onEvent) {
        if (o.stdout) onEvent({ type: 'stdout', data: o.stdout, exec_id: id });
        if (o.stderr) onEvent({ type: 'stderr', data: o.stderr, exec_id: id });
        onEvent({ type: 'exit', code: o.exit_code, exec_id: id, signal: o.signal, timed_out: o.timed_out, oom_killed: o.oom_killed });
      }
      onEvent?.({ type: 'custom', name: 'cache', data: { cache_key: key, cached, exec_id: id } });
      return { id, mode: 'cached', ...o, cached, cache_key: key };
    };
    const hit = await cache.lookup(tenant, key);
    if (hit) return answer(hit, true);
    const flight = cache.flights.get(key);
    if (flight) {
      const shared = await flight;
      if (shared) return answer(shared, true);
    }
    let release!: (o: CachedOutcome | null) => void;
    const mine = new Promise<CachedOutcome | null>((resolve) => (release = resolve));
    cache.flights.set(key, mine);
    let outcome: CachedOutcome | null = null;
    try {
      const result = await this.ephemeral(tenant, id, { ...req, image }, onEvent, { mode: 'cached', capture: false, snapshot });
      outcome = {
        exit_code: result.exit_code,
        signal: result.signal,
        stdout: result.stdout,
        stderr: result.stderr,
        stdout_truncated: result.stdout_truncated,
        stderr_truncated: result.stderr_truncated,
        duration_ms: result.duration_ms,
        timed_out: result.timed_out,
        oom_killed: result.oom_killed,
      };
      const failed = result.exit_code !== 0 || result.timed_out || result.oom_killed;
      if (!failed || req.cache_failures === true) {
        await cache.store(tenant, key, req.image ?? image, imageId, outcome, req.cache_ttl_s ?? cache.defaultTtlS);
      } else {
        // Waiters of an uncached failure run on their own.
        outcome = null;
      }
      onEvent?.({ type: 'custom', name: 'cache', data: { cache_key: key, cached: false, exec_id: id } });
      return { ...result, cached: false, cache_key: key };
    } finally {
      cache.flights.delete(key);
      release(outcome);
    }
  }

  private async ephemeral(
    tenant: string,
    id: string,
    req: ExecuteRequest,
    onEvent?: (event: StreamEvent) => void,
    opts: { mode: ExecutionMode; capture: boolean; snapshot?: SnapshotRecord | null } = { mode: 'ephemeral', capture: false },
  ): Promise<ExecuteResult> {
    let snapshot = opts.snapshot ?? null;
    if (snapshot === null && req.checkpoint !== undefined) snapshot = await this.snap!.snapshots.get(tenant, req.checkpoint);
    if (snapshot) req = { ...req, image: await this.snap!.snapshots.imageFor(snapshot, req.image) };
    const shape: PoolShape = {
      tenant,
      image: req.image ?? DEFAULT_IMAGE,
      workingDir: req.working_dir ?? DEFAULT_WORKING_DIR,
      memoryMb: req.memory_mb,
      cpuCores: req.cpu_cores,
      pidsLimit: req.pids_limit,
      network: req.network ?? 'none',
      readOnly: req.read_only,
    };
    // Checked before anything is made: a bad path is a 400 that leaves nothing behind.
    const inputs = req.files ? prepareInputFiles(req.files, shape.workingDir).archive : null;
    // A pooled sandbox serves a restore too: its files are the image's, as a new one's would be.
    let sandboxId = await this.pools.take(shape);
    const pooled = sandboxId !== null;
    this.quiet.activity();
    if (sandboxId === null) {
      await resolveImageFor(this.runtime, tenant, shape.image);
      this.pools.noteMiss(shape);
      sandboxId = newId('sb');
      await this.runtime.create({
        id: sandboxId,
        image: shape.image,
        env: req.env ?? {},
        workingDir: shape.workingDir,
        limits: limitsOf(shape),
        labels: { 'faas.kind': 'ephemeral', 'faas.execution': id, 'faas.tenant': tenant },
        volumes: await this.volumesFor(tenant),
      });
    }
    if (snapshot || inputs) {
      try {
        if (snapshot) await this.snap!.snapshots.restore(snapshot, sandboxId);
        if (inputs) await writeInputFiles(this.runtime, sandboxId, inputs);
      } catch (err) {
        // A failed restore or file write leaves no half-made sandbox behind.
        if (pooled) this.pools.release(shape);
        await this.runtime.remove(sandboxId).catch(() => undefined);
        throw err;
      }
    }
    this.metrics.liveSandboxes.inc({ kind: 'ephemeral', status: 'running' });
    const entry: { handle: ProcessHandle | null; finished: Promise<unknown> } = { handle: null, finished: Promise.resolve() };
    this.running.set(id, entry);
    try {
      // The environment goes to the process, so a pooled sandbox made before the request sees it too.
      const handle = await this.runtime.exec(sandboxId, {
        argv: req.argv ?? shellArgv(req.command!),
        env: req.env,
        cwd: req.working_dir,
        stdin: req.stdin !== undefined,
      });
      entry.handle = handle;
      entry.finished = handle.exited.catch(() => undefined);
      if (this.closing) handle.signal('SIGKILL', { tree: true });
      const outcome = await runProcess(handle, {
        execId: id,
        stdin: req.stdin,
        timeoutMs: req.timeout_ms ?? LIMITS.defaultTimeoutMs,
        outputCapBytes: LIMITS.outputCapBytes,
        onEvent,
      });
      const result = toExecuteResult(id, opts.mode, outcome);
      if (opts.capture) {
        const taken = await this.snap!.snapshots.capture(tenant, sandboxId, { source: id, image: shape.image });
        result.snapshot_id = taken.id;
        this.keep(id, tenant, Promise.resolve(taken));
        // A streaming caller learns the snapshot after the exit event.
        onEvent?.({ type: 'custom', name: 'checkpoint', data: { snapshot_id: taken.id, exec_id: id } });
      }
      return result;
    } finally {
      this.quiet.activity();
      this.running.delete(id);
      if (pooled) this.pools.release(shape);
      if (!opts.capture) this.keepForForks(id, tenant, sandboxId, shape.image);
      if (snapshot) {
        // The record of which snapshot it came from goes with the sandbox (after any capture that needs it).
        const before = this.beforeRemoval.get(sandboxId);
        this.beforeRemoval.set(sandboxId, async () => {
          await before?.();
          this.snap!.snapshots.forgetOrigin(sandboxId);
        });
      }
      this.removeLater(sandboxId);
    }
  }

  private keep(executionId: string, tenant: string, snapshot: Promise<SnapshotRecord | null>, why?: string): void {
    const now = Date.now();
    for (const [key, k] of this.kept) {
      if (k.until > now) break;
      this.kept.delete(key);
    }
    this.kept.set(executionId, { tenant, until: now + this.snap!.forkRetentionMs, snapshot, ...(why ? { why } : {}) });
  }

  /**
   * Keeps a finished execution forkable: its sandbox's changes become an internal snapshot, taken after the
   * answer while the sandbox waits for removal (so no container outlives its execution), and dropped once the
   * retention window is over.
   */
  private keepForForks(executionId: string, tenant: string, sandboxId: string, image: string): void {
    if (!this.snap || this.snap.forkRetentionMs <= 0 || this.closing) return;
    if (this.removals.length >= this.snap.forkRetainMax) {
      this.keep(executionId, tenant, Promise.resolve(null), `the gateway had ${this.removals.length} sandboxes waiting for removal when it ended, so its state was not kept`);
      return;
    }
    let settle!: (s: SnapshotRecord | null) => void;
    const snapshot = new Promise<SnapshotRecord | null>((resolve) => (settle = resolve));
    const kept = { why: 'taking its snapshot failed' };
    this.keep(executionId, tenant, snapshot, kept.why);
    this.beforeRemoval.set(sandboxId, async () => {
      try {
        // Its command has ended: no need to freeze it while its files are read.
        settle(this.closing ? null : await this.snap!.snapshots.capture(tenant, sandboxId, { source: executionId, image, internal: true, freeze: false }));
      } catch {
        settle(null);
      }
    });
  }

  /**
   * The state a finished execution ended in, as a snapshot, for forks. 404 for an unknown execution or another
   * tenant's; 410 once it is past the retention window (or its state could not be kept).
   */
  async executionSnapshot(tenant: string, executionId: string): Promise<SnapshotRecord> {
    const record = this.store.getExecution(executionId);
    if (!record || record.tenantId !== tenant) throw new FaasError('not_found', `no execution with id "${executionId}"`, 'parent');
    if (record.mode === 'persistent') {
      throw new FaasError('validation_error', `execution ${executionId} ran in a persistent sandbox: fork that sandbox (the execution's container_id)`, 'parent');
    }
    const retentionMs = this.snap?.forkRetentionMs ?? 0;
    const windowS = Math.round(retentionMs / 1000);
    const k = this.kept.get(executionId);
    if (!k && record.endedAt !== null && Date.parse(record.endedAt) + retentionMs > Date.now()) {
      // Kept by an earlier run of the gateway: the snapshot it took is in the database.
      const stored = this.snap?.snapshots.ofExecution(tenant, executionId);
      if (stored) return stored;
    }
    if (!k || k.until <= Date.now()) {
      if (record.status === 'running') throw new FaasError('conflict', `execution ${executionId} is still running; fork it once it has finished`, 'parent');
      throw new FaasError(
        'gone',
        `execution ${executionId} ended at ${record.endedAt ?? 'an unknown time'} and its state is no longer kept (executions can be forked for ${windowS} s after they end)`,
        'parent',
      );
    }
    const snapshot = await k.snapshot;
    if (!snapshot) throw new FaasError('gone', `the state of execution ${executionId} is not available: ${k.why ?? 'it was not kept'}`, 'parent');
    return snapshot;
  }

  /**
   * Removes a finished sandbox after the answer. Removals run one or two at a time: each costs the engine tens of
   * milliseconds of CPU, and running many at once would slow the executions being answered meanwhile.
   */
  private removeLater(sandboxId: string): void {
    this.removals.push({ sandboxId, since: performance.now() });
    this.pumpRemovals();
  }

  private pumpRemovals(): void {
    const limit = this.removals.length > REMOVAL_BACKLOG_FOR_TWO ? 2 : 1;
    while (this.cleanups.size < limit && this.removals.length > 0) {
      const { sandboxId, since } = this.removals.shift()!;
      const before = this.beforeRemoval.get(sandboxId);
      this.beforeRemoval.delete(sandboxId);
      const cleanup = this.quiet
        .wait(since, () => this.closing)
        .then(() => before?.())
        .then(() => this.runtime.remove(sandboxId))
        .catch(() => undefined) // reconcile removes it on the next start if the engine refused now
        .finally(() => {
          this.cleanups.delete(cleanup);
          this.metrics.liveSandboxes.dec({ kind: 'ephemeral', status: 'running' });
          this.pumpRemovals();
        });
      this.cleanups.add(cleanup);
    }
  }

  private async persistent(tenant: string, id: string, req: ExecuteRequest, onEvent?: (event: StreamEvent) => void): Promise<ExecuteResult> {
    const container = await this.sandboxes.create(tenant, {
      image: req.image,
      env: req.env,
      working_dir: req.working_dir,
      memory_mb: req.memory_mb,
      cpu_cores: req.cpu_cores,
      pids_limit: req.pids_limit,
      network: req.network,
      read_only: req.read_only,
    });
    // A streaming caller learns the sandbox it keeps from the exit event, as a REST caller does from the answer.
    const relay = onEvent && ((event: StreamEvent) => onEvent(event.type === 'exit' ? { ...event, container_id: container.id } : event));
    const outcome = await this.sandboxes.exec(
      container.id,
      { command: req.command, argv: req.argv, stdin: req.stdin, files: req.files, timeout_ms: req.timeout_ms ?? LIMITS.defaultTimeoutMs },
      relay,
      id,
    );
    return toExecuteResult(id, 'persistent', outcome, container.id);
  }

  /** Waits for background removals (used on shutdown and by tests). */
  async drain(): Promise<void> {
    while (this.cleanups.size > 0 || this.removals.length > 0) {
      this.pumpRemovals();
      await Promise.all([...this.cleanups]);
    }
  }

  /** Shutdown: kills ephemeral executions under way (they are recorded as failed) and removes their sandboxes. */
  async close(): Promise<void> {
    this.closing = true;
    this.quiet.release();
    for (const entry of this.running.values()) entry.handle?.signal('SIGKILL', { tree: true });
    await Promise.all([...this.running.values()].map((e) => e.finished));
    // Let the executions record their end before the sandboxes go.
    await new Promise((resolve) => setImmediate(resolve));
    await this.drain();
  }
}
