/**
 * Warm pools: sandboxes created and started ahead of time, agent ready, keyed by image and resource shape. Each
 * is handed to exactly one ephemeral execution and destroyed after it, so nothing leaks from one execution to
 * the next. Pools grow when executions miss them, shrink when idle, and are bounded by a global cap.
 */
import os from 'node:os';
import type { NetworkMode, PoolInfo } from '@faas/protocol';
import { FaasError, errorMessage } from '../errors.js';
import type { Runtime, SandboxInfo, SandboxLimits } from '../runtimes/runtime.js';
import { resolveImageFor } from './image-access.js';
import { newId } from './ids.js';
import type { VolumesFor } from './sandboxes.js';
import type { PlatformMetrics } from './metrics.js';
import type { QuietTime } from './quiet-time.js';
import { collectGarbage } from './heap-tidy.js';

export interface PoolShape {
  /** Pools are per tenant: a pooled sandbox carries its tenant's dependency-cache volumes. */
  tenant: string;
  image: string;
  workingDir: string;
  memoryMb?: number | undefined;
  cpuCores?: number | undefined;
  pidsLimit?: number | undefined;
  network: NetworkMode;
  readOnly?: boolean | undefined;
}

export interface WarmPoolOptions {
  /** Most pooled sandboxes (ready or being created) across all pools. */
  maxTotal: number;
  /** Largest size one pool may have. */
  maxPerPool: number;
  /** A pool unused for this long halves its size (down to its prewarmed floor). */
  idleShrinkMs: number;
  /** Sandboxes created at once per pool while filling. */
  fillConcurrency: number;
  /** Pools stop filling while the host has less memory available than this (MiB). */
  minAvailableMb: number;
}

/** A started sandbox waiting in a pool, and the image id it was made from. */
interface Ready {
  id: string;
  imageId: string;
}

interface Pool {
  key: string;
  shape: PoolShape;
  ready: Ready[];
  creating: number;
  inUse: number;
  size: number;
  /** Size asked for by prewarm: the pool never shrinks below it. */
  floor: number;
  hits: number;
  misses: number;
  error: string | null;
  /** Why filling waits for now (the host is short of memory); retried by `maintain`. */
  held: string | null;
  lastUsed: number;
  lastMiss: number;
  /** Prewarm callers waiting for the pool to be full. */
  waiters: Array<() => void>;
}

/** Misses closer together than this count as load. */
const GROW_WINDOW_MS = 10_000;

/** The runtime limits of a sandbox of this shape (pooled or made for one execution). */
export function limitsOf(shape: PoolShape): SandboxLimits {
  return { memoryMb: shape.memoryMb, cpuCores: shape.cpuCores, pidsLimit: shape.pidsLimit, network: shape.network, readOnly: shape.readOnly };
}

export function poolKey(shape: PoolShape): string {
  return JSON.stringify([shape.tenant, shape.image, shape.workingDir, shape.memoryMb ?? null, shape.cpuCores ?? null, shape.pidsLimit ?? null, shape.network, shape.readOnly === true]);
}

export class WarmPools {
  private readonly pools = new Map<string, Pool>();
  private closed = false;
  private readonly filling = new Set<Promise<void>>();

  constructor(
    private readonly runtime: Runtime,
    private readonly metrics: PlatformMetrics,
    private readonly opts: WarmPoolOptions,
    /** Refills after a hit wait for a pause in executions, while the pool still has ready sandboxes. */
    private readonly quiet: QuietTime,
    private readonly volumesFor: VolumesFor = async () => [],
  ) {}

  private total(): number {
    let n = 0;
    for (const p of this.pools.values()) n += p.ready.length + p.creating;
    return n;
  }

  private pool(shape: PoolShape): Pool {
    const key = poolKey(shape);
    let pool = this.pools.get(key);
    if (!pool) {
      pool = { key, shape, ready: [], creating: 0, inUse: 0, size: 0, floor: 0, hits: 0, misses: 0, error: null, held: null, lastUsed: Date.now(), lastMiss: 0, waiters: [] };
      this.pools.set(key, pool);
    }
    return pool;
  }

  /**
   * Sets a pool's size and fills it; the image must exist. Answers once the pool is full, its filling failed, or
   * `waitMs` passed (0 answers at once); the answer says how many are ready.
   */
  async prewarm(shape: PoolShape, count: number, waitMs = 0): Promise<PoolInfo> {
    if (count > this.opts.maxPerPool) {
      throw new FaasError('validation_error', `count ${count} is above the per-pool cap of ${this.opts.maxPerPool} (FAAS_POOL_MAX_PER_POOL)`, 'count');
    }
    const others = this.total() - (this.pools.get(poolKey(shape))?.ready.length ?? 0);
    if (others + count > this.opts.maxTotal) {
      throw new FaasError(
        'validation_error',
        `count ${count} would take the warm pools past their global cap of ${this.opts.maxTotal} sandboxes (FAAS_POOL_MAX_TOTAL); ${others} are held by other pools`,
        'count',
      );
    }
    try {
      await resolveImageFor(this.runtime, shape.tenant, shape.image);
    } catch (err) {
      const pool = this.pool(shape);
      pool.error = errorMessage(err);
      throw err;
    }
    const pool = this.pool(shape);
    pool.error = null;
    pool.size = count;
    pool.floor = count;
    pool.lastUsed = Date.now();
    this.trim(pool);
    this.fill(pool);
    if (waitMs > 0 && !this.settled(pool)) {
      let timer: NodeJS.Timeout | undefined;
      await new Promise<void>((resolve) => {
        pool.waiters.push(resolve);
        timer = setTimeout(resolve, waitMs);
      });
      clearTimeout(timer);
      // The burst that usually follows should not meet a major garbage collection (see heap-tidy.ts).
      collectGarbage();
    }
    return this.info(pool);
  }

  /** Nothing more to wait for: the pool is full, cannot fill (now), or the pools are closing. */
  private settled(pool: Pool): boolean {
    const atCap = pool.creating === 0 && this.total() >= this.opts.maxTotal;
    return pool.ready.length >= pool.size || pool.error !== null || pool.held !== null || atCap || this.closed;
  }

  /**
   * A started sandbox of this shape: a ready one from the pool when there is one (checked alive first), or null.
   * It must have been made from the image the name points to now: one made before the image was rebuilt under
   * the same name is removed, never handed out.
   */
  async take(shape: PoolShape): Promise<string | null> {
    const pool = this.pool(shape);
    pool.lastUsed = Date.now();
    if (pool.ready.length === 0) return null;
    const wanted = await this.runtime.imageId(shape.image).catch(() => null);
    while (pool.ready.length > 0) {
      const { id, imageId: madeFrom } = pool.ready.shift()!;
      this.gauge();
      this.fill(pool);
      if ((wanted === null || madeFrom === wanted) && (await this.alive(id))) {
        pool.hits++;
        pool.inUse++;
        return id;
      }
      void this.runtime.remove(id).catch(() => undefined);
    }
    return null;
  }

  /**
   * A miss was served by a cold start, which also proved the image exists and the tenant may run it. Two misses
   * close together are load: the pool grows. A lone execution leaves nothing warm behind.
   */
  noteMiss(shape: PoolShape): void {
    const pool = this.pool(shape);
    pool.misses++;
    const now = Date.now();
    const underLoad = now - pool.lastMiss < GROW_WINDOW_MS;
    pool.lastMiss = now;
    if (underLoad && pool.error === null && pool.size < this.opts.maxPerPool) {
      pool.size++;
      this.fill(pool);
    }
  }

  /** The execution that took a pooled sandbox is over (the executor removes the sandbox). */
  release(shape: PoolShape): void {
    const pool = this.pools.get(poolKey(shape));
    if (pool && pool.inUse > 0) pool.inUse--;
  }

  private async alive(id: string): Promise<boolean> {
    try {
      await this.runtime.ping(id, 1000);
      return true;
    } catch {
      return false;
    }
  }

  /** Why pools may not grow now, or null: the host's available memory is below the reserve. */
  private memoryShort(): string | null {
    const availableMb = Math.floor(os.freemem() / 2 ** 20);
    if (availableMb >= this.opts.minAvailableMb) return null;
    return `waiting for memory: the host has ${availableMb} MiB available, below the ${this.opts.minAvailableMb} MiB reserve (FAAS_POOL_MIN_AVAILABLE_MB)`;
  }

  private fill(pool: Pool): void {
    pool.held = null;
    while (!this.closed && pool.error === null && pool.ready.length + pool.creating < pool.size && pool.creating < this.opts.fillConcurrency && this.total() < this.opts.maxTotal) {
      pool.held = this.memoryShort();
      if (pool.held !== null) break;
      pool.creating++;
      const job = this.createOne(pool).finally(() => {
        pool.creating--;
        this.filling.delete(job);
        this.gauge();
        this.fill(pool);
      });
      this.filling.add(job);
    }
    if (this.settled(pool)) for (const resolve of pool.waiters.splice(0)) resolve();
    this.gauge();
  }

  private async createOne(pool: Pool): Promise<void> {
    // A pool that still has ready sandboxes refills in a pause of the executions, unless someone waits for it.
    await this.quiet.wait(performance.now(), () => pool.ready.length === 0 || pool.waiters.length > 0 || this.closed);
    if (this.closed) return;
    const id = newId('sb');
    let info: SandboxInfo;
    try {
      info = await this.runtime.create({
        id,
        image: pool.shape.image,
        env: {},
        workingDir: pool.shape.workingDir,
        limits: limitsOf(pool.shape),
        labels: { 'faas.kind': 'pool', 'faas.tenant': pool.shape.tenant },
        volumes: await this.volumesFor(pool.shape.tenant),
      });
    } catch (err) {
      // Reported on the pool (GET /api/v1/pools), never on unrelated requests; a prewarm clears it.
      pool.error = errorMessage(err);
      return;
    }
    if (this.closed || pool.ready.length >= pool.size) await this.runtime.remove(id).catch(() => undefined);
    else pool.ready.push({ id, imageId: info.imageId });
  }

  /** Removes ready sandboxes beyond the pool's size. */
  private trim(pool: Pool): void {
    while (pool.ready.length > pool.size) {
      const { id } = pool.ready.pop()!;
      void this.runtime.remove(id).catch(() => undefined);
    }
    this.gauge();
  }

  /** Empties and removes the pools of an image (before the image itself is removed), waiting for the removals. */
  async evictImage(image: string): Promise<void> {
    const ids: string[] = [];
    for (const [key, pool] of this.pools) {
      if (pool.shape.image !== image) continue;
      pool.size = 0;
      pool.floor = 0;
      ids.push(...pool.ready.splice(0).map((r) => r.id));
      if (pool.creating === 0 && pool.inUse === 0) this.pools.delete(key);
    }
    await Promise.all(ids.map((id) => this.runtime.remove(id).catch(() => undefined)));
    this.gauge();
  }

  /**
   * Periodic upkeep: resumes filling that stopped short (for memory, or at the global cap), and halves pools that
   * have not been used for a while (never below their prewarmed floor).
   */
  maintain(now = Date.now()): void {
    for (const pool of this.pools.values()) {
      this.fill(pool);
      if (now - pool.lastUsed < this.opts.idleShrinkMs || pool.size <= pool.floor) continue;
      pool.size = Math.max(pool.floor, Math.floor(pool.size / 2));
      pool.lastUsed = now;
      this.trim(pool);
    }
  }

  list(tenant: string): PoolInfo[] {
    return [...this.pools.values()].filter((p) => p.shape.tenant === tenant).map((p) => this.info(p));
  }

  private info(p: Pool): PoolInfo {
    return {
      key: p.key,
      image: p.shape.image,
      working_dir: p.shape.workingDir,
      memory_mb: p.shape.memoryMb ?? null,
      cpu_cores: p.shape.cpuCores ?? null,
      pids_limit: p.shape.pidsLimit ?? null,
      network: p.shape.network,
      read_only: p.shape.readOnly === true,
      size: p.size,
      ready: p.ready.length,
      creating: p.creating,
      in_use: p.inUse,
      hits: p.hits,
      misses: p.misses,
      error: p.error ?? p.held,
    };
  }

  private gauge(): void {
    let ready = 0;
    let creating = 0;
    for (const p of this.pools.values()) {
      ready += p.ready.length;
      creating += p.creating;
    }
    this.metrics.liveSandboxes.set({ kind: 'pool', status: 'ready' }, ready);
    this.metrics.liveSandboxes.set({ kind: 'pool', status: 'creating' }, creating);
  }

  /** Removes every pooled sandbox (on shutdown; a crash leaves them to the next start's reconcile). */
  async close(): Promise<void> {
    this.closed = true;
    for (const pool of this.pools.values()) this.fill(pool);
    this.quiet.release();
    await Promise.all([...this.filling]);
    const ids = [...this.pools.values()].flatMap((p) => p.ready.splice(0).map((r) => r.id));
    await Promise.all(ids.map((id) => this.runtime.remove(id).catch(() => undefined)));
    this.gauge();
  }
}
