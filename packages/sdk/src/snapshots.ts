/** `client.snapshots`, `client.cache` and `client.fork()`: snapshots of sandboxes, the result cache, forks. */
import { ForkRequest, type ForkResult as WireForkResult, type Snapshot as WireSnapshot } from '@faas/protocol';
import { ValidationError } from './errors.js';
import type { Transport } from './http.js';
import { filesToWire, resultFromWire, validationErrorFrom, type ExecutionResult, type ProcessOptions, type ResourceOptions } from './wire.js';

/** Forks wait for all their variants: give them room. */
const FORK_TIMEOUT_MS = 10 * 60_000;

export interface Snapshot {
  id: string;
  name: string | null;
  image: string;
  imageId: string;
  /** The snapshot the sandbox had been restored from, or null. */
  parent: string | null;
  /** The sandbox or execution it was taken from. */
  source: string | null;
  files: number;
  deletions: number;
  sizeBytes: number;
  logicalBytes: number;
  storedBytes: number;
  createdAt: string;
}

export function snapshotFromWire(s: WireSnapshot): Snapshot {
  return {
    id: s.id,
    name: s.name,
    image: s.image,
    imageId: s.image_id,
    parent: s.parent,
    source: s.source,
    files: s.files,
    deletions: s.deletions,
    sizeBytes: s.size_bytes,
    logicalBytes: s.logical_bytes,
    storedBytes: s.stored_bytes,
    createdAt: s.created_at,
  };
}

function requireId(id: unknown, what: string): string {
  if (typeof id !== 'string' || id === '') throw new ValidationError('validation_error', `a ${what} id is required`, { field: 'id' });
  return encodeURIComponent(id);
}

export class Snapshots {
  constructor(private readonly transport: Transport) {}

  async list(): Promise<Snapshot[]> {
    const body = (await this.transport.json('GET', '/snapshots')) as { snapshots: WireSnapshot[] };
    return body.snapshots.map(snapshotFromWire);
  }

  async get(id: string): Promise<Snapshot> {
    return snapshotFromWire((await this.transport.json('GET', `/snapshots/${requireId(id, 'snapshot')}`)) as WireSnapshot);
  }

  /** Refused (ConflictError) while other snapshots name it as their parent, unless `force`. */
  async delete(id: string, opts: { force?: boolean } = {}): Promise<void> {
    await this.transport.json('DELETE', `/snapshots/${requireId(id, 'snapshot')}${opts.force ? '?force=true' : ''}`);
  }

  /** Snapshot of a running sandbox (also `sandbox.checkpoint()`). */
  async checkpoint(containerId: string, name?: string): Promise<Snapshot> {
    const body = name === undefined ? {} : { name };
    return snapshotFromWire((await this.transport.json('POST', `/containers/${requireId(containerId, 'sandbox')}/checkpoint`, { body })) as WireSnapshot);
  }
}

/** `client.cache`: results of cached-mode executions. */
export class ResultCache {
  constructor(private readonly transport: Transport) {}

  /** Drops one cached result (NotFoundError when there is none with that key). */
  async delete(key: string): Promise<void> {
    await this.transport.json('DELETE', `/cache/${requireId(key, 'cache key')}`);
  }

  /** Drops every cached result of the caller, or those of one image (tag or id); returns how many. */
  async clear(opts: { image?: string } = {}): Promise<number> {
    const query = opts.image !== undefined ? `?image=${encodeURIComponent(opts.image)}` : '';
    return ((await this.transport.json('DELETE', `/cache${query}`)) as { deleted: number }).deleted;
  }
}

export type ForkVariantOptions = ProcessOptions;

export interface ForkOptions extends ProcessOptions, ResourceOptions {
  /** An execution id (within its retention window), a snapshot id, or a live sandbox id. */
  parent: string;
  /** Commands run in parallel, each on its own copy of the parent (at most 16); or give `command`/`argv`. */
  variants?: ForkVariantOptions[];
  /** Must be the parent's image when given. */
  image?: string;
  /** Keep each variant as a live sandbox (`result.containerId`). */
  keep?: boolean;
}

export type ForkVariantResult =
  | { status: 'ok'; index: number; parent: string; snapshotId: string; result: ExecutionResult }
  | { status: 'error'; index: number; parent: string; error: string; message: string };

export interface ForkResult {
  parent: string;
  parentSnapshotId: string;
  variants: ForkVariantResult[];
}

function processToWire(o: ProcessOptions): Record<string, unknown> {
  const wire: Record<string, unknown> = {};
  if (o.command !== undefined) wire.command = o.command;
  if (o.argv !== undefined) wire.argv = o.argv;
  if (o.env !== undefined) wire.env = o.env;
  if (o.workingDir !== undefined) wire.working_dir = o.workingDir;
  if (o.stdin !== undefined) wire.stdin = o.stdin;
  if (o.files !== undefined) wire.files = filesToWire(o.files);
  if (o.timeoutMs !== undefined) wire.timeout_ms = o.timeoutMs;
  return wire;
}

export function forkRequestToWire(o: ForkOptions): Record<string, unknown> {
  const wire: Record<string, unknown> = { parent: o.parent, ...processToWire(o) };
  if (o.variants !== undefined) wire.variants = o.variants.map(processToWire);
  if (o.memoryMb !== undefined) wire.memory_mb = o.memoryMb;
  if (o.cpuCores !== undefined) wire.cpu_cores = o.cpuCores;
  if (o.pidsLimit !== undefined) wire.pids_limit = o.pidsLimit;
  if (o.network !== undefined) wire.network = o.network;
  if (o.readOnly !== undefined) wire.read_only = o.readOnly;
  if (o.image !== undefined) wire.image = o.image;
  if (o.keep !== undefined) wire.keep = o.keep;
  const parsed = ForkRequest.safeParse(wire);
  if (!parsed.success) throw validationErrorFrom(parsed.error, 'fork options');
  return wire;
}

export async function fork(transport: Transport, options: ForkOptions): Promise<ForkResult> {
  const body = forkRequestToWire(options);
  const answer = (await transport.json('POST', '/fork', { body, timeoutMs: Math.max(transport.options.timeoutMs, FORK_TIMEOUT_MS) })) as WireForkResult;
  return {
    parent: answer.parent,
    parentSnapshotId: answer.parent_snapshot_id,
    variants: answer.variants.map((v) =>
      v.status === 'ok'
        ? { status: 'ok', index: v.index, parent: v.parent, snapshotId: v.snapshot_id, result: resultFromWire(v.result) }
        : { status: 'error', index: v.index, parent: v.parent, error: v.error, message: v.message },
    ),
  };
}
