/**
 * `POST /execute`: runs a command in the execution mode asked for. Ephemeral runs get a fresh sandbox that is
 * removed after the answer; persistent runs create a sandbox that stays.
 */
import { DEFAULT_IMAGE, DEFAULT_WORKING_DIR, type ExecuteRequest, type ExecuteResult, type ExecutionMode, LIMITS, type StreamEvent } from '@faas/protocol';
import { FaasError, errorMessage } from '../errors.js';
import type { ProcessHandle, Runtime } from '../runtimes/runtime.js';
import { newId, nowIso } from './ids.js';
import { type PlatformMetrics, outcomeLabel } from './metrics.js';
import { type ProcessOutcome, runProcess } from './run-process.js';
import { type SandboxService, type VolumesFor, shellArgv } from './sandboxes.js';
import { QuotaGuard } from './quotas.js';
import type { PlatformStore } from './store.js';
import type { PoolShape, WarmPools } from './warm-pool.js';

/** Above this many sandboxes waiting for removal, two removals run at once. */
const REMOVAL_BACKLOG_FOR_TWO = 8;

const LATER_MODES: ReadonlySet<ExecutionMode> = new Set(['cached', 'checkpointed', 'branched']);

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
  private readonly removals: string[] = [];
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
    private readonly volumesFor: VolumesFor = async () => [],
    private readonly quotas: QuotaGuard = new QuotaGuard(() => ({}), () => 0),
  ) {}

  /** Ephemeral executions of the tenant under way (they hold a sandbox each). */
  inFlight(tenant: string): number {
    return this.inFlightByTenant.get(tenant) ?? 0;
  }

  /** Checks what can be checked before anything is created, so a bad request leaves nothing behind. */
  validate(req: ExecuteRequest): ExecutionMode {
    const mode = req.mode ?? 'ephemeral';
    if (LATER_MODES.has(mode)) {
      throw new FaasError('mode_not_available', `mode "${mode}" is not available on this gateway yet; use "ephemeral" or "persistent"`, 'mode');
    }
    return mode;
  }

  async execute(tenant: string, ask: ExecuteRequest, onEvent?: (event: StreamEvent) => void): Promise<ExecuteResult> {
    const mode = this.validate(ask);
    const req = this.quotas.limits(tenant, ask);
    this.quotas.admitExecution(tenant);
    if (mode === 'ephemeral') this.quotas.admitSandbox(tenant);
    if (this.closing) throw new FaasError('engine_unavailable', 'the gateway is shutting down; retry against its next start', undefined, 5);
    const id = newId('ex');
    const started = performance.now();
    this.store.insertExecution({ id, tenantId: tenant, mode, sandboxId: null, status: 'running', exitCode: null, error: null, startedAt: nowIso(), endedAt: null });
    const work = mode === 'persistent' ? this.persistent(tenant, id, req, onEvent) : this.ephemeral(tenant, id, req, onEvent);
    if (mode === 'ephemeral') this.inFlightByTenant.set(tenant, this.inFlight(tenant) + 1);
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
      if (mode === 'ephemeral') this.inFlightByTenant.set(tenant, this.inFlight(tenant) - 1);
      this.metrics.executionSeconds.observe({ mode }, (performance.now() - started) / 1000);
    }
  }

  private async ephemeral(tenant: string, id: string, req: ExecuteRequest, onEvent?: (event: StreamEvent) => void): Promise<ExecuteResult> {
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
    let sandboxId = await this.pools.take(shape);
    const pooled = sandboxId !== null;
    if (sandboxId === null) {
      await this.runtime.resolveImage(shape.image);
      sandboxId = newId('sb');
      await this.runtime.create({
        id: sandboxId,
        image: shape.image,
        env: req.env ?? {},
        workingDir: shape.workingDir,
        limits: { memoryMb: shape.memoryMb, cpuCores: shape.cpuCores, pidsLimit: shape.pidsLimit, network: shape.network, readOnly: shape.readOnly },
        labels: { 'faas.kind': 'ephemeral', 'faas.execution': id, 'faas.tenant': tenant },
        volumes: await this.volumesFor(tenant),
      });
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
      return toExecuteResult(id, 'ephemeral', outcome);
    } finally {
      this.running.delete(id);
      if (pooled) this.pools.release(shape);
      this.removeLater(sandboxId);
    }
  }

  /**
   * Removes a finished sandbox after the answer. Removals run one or two at a time: each costs the engine tens of
   * milliseconds of CPU, and running many at once would slow the executions being answered meanwhile.
   */
  private removeLater(sandboxId: string): void {
    this.removals.push(sandboxId);
    this.pumpRemovals();
  }

  private pumpRemovals(): void {
    const limit = this.removals.length > REMOVAL_BACKLOG_FOR_TWO ? 2 : 1;
    while (this.cleanups.size < limit && this.removals.length > 0) {
      const sandboxId = this.removals.shift()!;
      const cleanup = this.runtime
        .remove(sandboxId)
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
      { command: req.command, argv: req.argv, stdin: req.stdin, timeout_ms: req.timeout_ms ?? LIMITS.defaultTimeoutMs },
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
    for (const entry of this.running.values()) entry.handle?.signal('SIGKILL', { tree: true });
    await Promise.all([...this.running.values()].map((e) => e.finished));
    // Let the executions record their end before the sandboxes go.
    await new Promise((resolve) => setImmediate(resolve));
    await this.drain();
  }
}
