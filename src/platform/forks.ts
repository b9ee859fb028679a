/**
 * Branched mode: `POST /api/v1/fork`. The parent (a snapshot, a finished execution within its retention window,
 * or a live sandbox) becomes one snapshot; every variant then runs in parallel on its own sandbox restored from
 * it, so variants see the parent's files and never each other's writes. The answer lists every variant's result
 * or error, like Promise.allSettled.
 */
import { type ExecuteRequest, type ExecuteResult, type ForkRequest, type ForkResult, type ForkVariantResult, LIMITS } from '@faas/protocol';
import { FaasError, errorMessage } from '../errors.js';
import { numberFromEnv } from './env-numbers.js';
import { type Executor, toExecuteResult } from './executor.js';
import { READ_ONLY_FILES } from './input-files.js';
import type { SandboxService } from './sandboxes.js';
import type { SnapshotRecord, SnapshotService } from './snapshots.js';

export interface ForkSettings {
  /** How long a finished execution stays forkable (FAAS_FORK_RETENTION_S, default 900 s). */
  retentionMs: number;
  /**
   * Above this many sandboxes waiting for removal a finished execution is not kept (FAAS_FORK_RETAIN_MAX,
   * default 32): taking its snapshot would slow the executions under way.
   */
  retainMax: number;
  /** Variants run at once (FAAS_FORK_CONCURRENCY, default 4). */
  concurrency: number;
}

export function forkSettingsFromEnv(env: NodeJS.ProcessEnv): ForkSettings {
  return {
    retentionMs: numberFromEnv(env, 'FAAS_FORK_RETENTION_S', 900, 0) * 1000,
    retainMax: Math.floor(numberFromEnv(env, 'FAAS_FORK_RETAIN_MAX', 32, 1)),
    concurrency: Math.floor(numberFromEnv(env, 'FAAS_FORK_CONCURRENCY', 4, 1)),
  };
}

export class ForkService {
  constructor(
    private readonly executor: Executor,
    private readonly sandboxes: SandboxService,
    private readonly snapshots: SnapshotService,
    private readonly settings: ForkSettings,
  ) {}

  /** A snapshot of a live sandbox (REST and WebSocket `checkpoint`). Stopped or deleted sandboxes are refused. */
  async checkpointSandbox(tenant: string, id: string, name?: string): Promise<SnapshotRecord> {
    const container = this.sandboxes.get(tenant, id);
    if (container.status !== 'running') {
      throw new FaasError('conflict', `sandbox ${id} is ${container.status}; resume it before taking a checkpoint`);
    }
    return this.snapshots.capture(tenant, id, { name, source: id, image: container.image });
  }

  /** The parent's state as a snapshot. */
  async parentSnapshot(tenant: string, parent: string): Promise<SnapshotRecord> {
    if (parent.startsWith('snap_')) return this.snapshots.get(tenant, parent);
    if (parent.startsWith('ex-')) return this.executor.executionSnapshot(tenant, parent);
    if (parent.startsWith('sb-')) return this.checkpointSandbox(tenant, parent);
    throw new FaasError('not_found', `no execution, snapshot or sandbox with id "${parent}"`, 'parent');
  }

  async fork(tenant: string, req: ForkRequest): Promise<ForkResult> {
    if (req.read_only && (req.files || req.variants?.some((v) => v.files))) throw new FaasError('validation_error', READ_ONLY_FILES, 'files');
    const from = await this.parentSnapshot(tenant, req.parent);
    // A request naming another image than the parent's is refused before anything runs.
    await this.snapshots.imageFor(from, req.image);
    const variants = req.variants ?? [{ command: req.command, argv: req.argv }];
    const results: ForkVariantResult[] = new Array(variants.length);
    let next = 0;
    const worker = async () => {
      while (next < variants.length) {
        const index = next++;
        const v = variants[index]!;
        const ask: ExecuteRequest = {
          command: v.command,
          argv: v.argv,
          env: { ...req.env, ...v.env },
          working_dir: v.working_dir ?? req.working_dir,
          stdin: v.stdin ?? req.stdin,
          // Shared input files, with a variant's own added (or replacing one of the same path).
          ...(req.files || v.files ? { files: { ...req.files, ...v.files } } : {}),
          timeout_ms: v.timeout_ms ?? req.timeout_ms,
          memory_mb: req.memory_mb,
          cpu_cores: req.cpu_cores,
          pids_limit: req.pids_limit,
          network: req.network,
          read_only: req.read_only,
          image: req.image,
        };
        try {
          const result = req.keep ? await this.runKept(tenant, from, ask) : await this.runEphemeral(tenant, from, ask);
          results[index] = { status: 'ok', index, parent: req.parent, snapshot_id: result.snapshot_id!, result };
        } catch (err) {
          results[index] = {
            status: 'error',
            index,
            parent: req.parent,
            error: err instanceof FaasError ? err.code : 'internal_error',
            message: errorMessage(err),
          };
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.settings.concurrency, variants.length) }, worker));
    return { parent: req.parent, parent_snapshot_id: from.id, variants: results };
  }

  private async runEphemeral(tenant: string, from: SnapshotRecord, ask: ExecuteRequest): Promise<ExecuteResult> {
    const result = await this.executor.execute(tenant, { ...ask, mode: 'checkpointed', checkpoint: from.id });
    return { ...result, mode: 'branched' };
  }

  /** `keep: true`: the variant runs in a new persistent sandbox restored from the parent, which stays. */
  private async runKept(tenant: string, from: SnapshotRecord, ask: ExecuteRequest): Promise<ExecuteResult> {
    const image = await this.snapshots.imageFor(from, ask.image);
    const container = await this.sandboxes.create(
      tenant,
      {
        image,
        env: ask.env,
        working_dir: ask.working_dir,
        memory_mb: ask.memory_mb,
        cpu_cores: ask.cpu_cores,
        pids_limit: ask.pids_limit,
        network: ask.network,
        read_only: ask.read_only,
      },
      { apply: (id) => this.snapshots.restore(from, id) },
    );
    const outcome = await this.sandboxes.exec(container.id, {
      command: ask.command,
      argv: ask.argv,
      stdin: ask.stdin,
      files: ask.files,
      timeout_ms: ask.timeout_ms ?? LIMITS.defaultTimeoutMs,
    });
    const taken = await this.snapshots.capture(tenant, container.id, { source: container.id, image: from.image });
    return { ...toExecuteResult(outcome.execId, 'branched', outcome, container.id), snapshot_id: taken.id };
  }
}
