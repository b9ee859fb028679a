/**
 * The camelCase ↔ snake_case mapping of the admin-side resources (warm pools, tenants and keys, image templates,
 * dependency caches), next to `wire.ts` and built the same way: options are checked against the protocol's
 * schemas before anything is sent, and answers are checked before they are mapped.
 */
import {
  ApiKey as WireApiKey,
  ApiKeyList,
  BuildImageRequest,
  CacheInfo as WireCacheInfo,
  CacheList,
  CachePurgeResult as WireCachePurgeResult,
  CreateTenantRequest,
  CreatedApiKey as WireCreatedApiKey,
  ImageInfo as WireImageInfo,
  ImageList,
  PoolInfo as WirePoolInfo,
  PoolList,
  PrewarmRequest,
  Tenant as WireTenant,
  TenantList,
  TenantQuotas as WireTenantQuotas,
  type NetworkMode,
} from '@faas/protocol';
import { FaasError, ValidationError } from './errors.js';
import { parseAnswer, type Schema, type SchemaIssue } from './wire.js';

// ---------------------------------------------------------------------------------------------------------------
// Public types (camelCase).

export interface PrewarmOptions {
  /** Default `faas/busybox:latest`. */
  image?: string;
  /** Ready sandboxes to keep; 0 empties the pool. */
  count: number;
  workingDir?: string;
  memoryMb?: number;
  cpuCores?: number;
  pidsLimit?: number;
  network?: NetworkMode;
  readOnly?: boolean;
  /** Seconds to wait for the pool to be full before answering (default 60; 0 answers at once). */
  waitS?: number;
}

export interface PoolInfo {
  key: string;
  image: string;
  workingDir: string;
  memoryMb: number | null;
  cpuCores: number | null;
  pidsLimit: number | null;
  network: NetworkMode;
  readOnly: boolean;
  /** Ready sandboxes the pool aims to keep. */
  size: number;
  ready: number;
  creating: number;
  inUse: number;
  hits: number;
  misses: number;
  /** Why the pool cannot fill (e.g. its image is missing), or null. */
  error: string | null;
}

/** Absent fields mean no limit. */
export interface TenantQuotas {
  /** Sandboxes running at once (persistent ones plus ephemeral executions under way). */
  maxSandboxes?: number;
  /** Ceiling and default of `memoryMb` per sandbox. */
  maxMemoryMb?: number;
  /** Ceiling and default of `cpuCores` per sandbox. */
  maxCpuCores?: number;
  /** Ceiling and default of `pidsLimit` per sandbox. */
  maxPids?: number;
  /** Executions and execs started per rolling minute. */
  executionsPerMinute?: number;
  /** Stored bytes of snapshots. */
  snapshotBytes?: number;
}

export interface CreateTenantOptions {
  /** 1-63 lowercase letters, digits, `.`, `_` or `-`, starting with a letter or digit. */
  name: string;
  quotas?: TenantQuotas;
}

export interface Tenant {
  id: string;
  name: string;
  quotas: TenantQuotas;
  /** ISO 8601. */
  createdAt: string;
}

export interface ApiKeyInfo {
  id: string;
  tenantId: string;
  /** The start of the key, to recognise it. */
  prefix: string;
  createdAt: string;
  revokedAt: string | null;
  lastUsedAt: string | null;
}

export interface CreatedApiKey extends ApiKeyInfo {
  /** The secret: shown once, store it now. */
  key: string;
}

export interface BuildImageOptions {
  /** Image reference such as `myteam/tools:1` (`:latest` is added when there is no tag). */
  name: string;
  /** The Dockerfile text. */
  dockerfile: string;
  /** Build context: a tar (optionally gzip-compressed) as bytes, or already base64-encoded. */
  context?: Uint8Array | string;
  /** Build context as relative path → UTF-8 content (instead of `context`). */
  files?: Record<string, string>;
  /** Network of the build's RUN steps: `none` (default) or `bridge`. */
  network?: NetworkMode;
}

export interface ImageInfo {
  name: string;
  kind: 'builtin' | 'template';
  /** Whether the engine has it (a built-in may not be built yet). */
  present: boolean;
  id: string | null;
  created: string | null;
  sizeBytes: number | null;
  description?: string;
  /** Built-ins: the image matches its current recipe. */
  upToDate?: boolean;
}

export interface CacheInfo {
  name: string;
  /** Where it is mounted in sandboxes. */
  target: string;
  volume: string;
  /** Tenant whose cache it is. */
  owner: string;
  /** Mounted read-only for this tenant (a cache shared by another tenant). */
  readOnly: boolean;
  exists: boolean;
  sizeBytes: number | null;
}

export interface CachePurgeResult {
  name: string;
  volume: string;
  /** `emptied` when sandboxes were using it (their mounts stay valid). */
  method: 'removed' | 'emptied' | 'absent';
}

// ---------------------------------------------------------------------------------------------------------------
// Options → wire bodies.

export const ADMIN_OPTION_TO_WIRE = {
  image: 'image',
  count: 'count',
  workingDir: 'working_dir',
  memoryMb: 'memory_mb',
  cpuCores: 'cpu_cores',
  pidsLimit: 'pids_limit',
  network: 'network',
  readOnly: 'read_only',
  waitS: 'wait_s',
  maxSandboxes: 'max_sandboxes',
  maxMemoryMb: 'max_memory_mb',
  maxCpuCores: 'max_cpu_cores',
  maxPids: 'max_pids',
  executionsPerMinute: 'executions_per_minute',
  snapshotBytes: 'snapshot_bytes',
  name: 'name',
  quotas: 'quotas',
  dockerfile: 'dockerfile',
  context: 'context',
  files: 'files',
} as const;
type AdminKey = keyof typeof ADMIN_OPTION_TO_WIRE;

const WIRE_TO_ADMIN: Record<string, string> = Object.fromEntries(Object.entries(ADMIN_OPTION_TO_WIRE).map(([k, v]) => [v, k]));

const PREWARM_KEYS: readonly AdminKey[] = ['image', 'count', 'workingDir', 'memoryMb', 'cpuCores', 'pidsLimit', 'network', 'readOnly', 'waitS'];
const QUOTA_KEYS: readonly AdminKey[] = ['maxSandboxes', 'maxMemoryMb', 'maxCpuCores', 'maxPids', 'executionsPerMinute', 'snapshotBytes'];
const BUILD_KEYS: readonly AdminKey[] = ['name', 'dockerfile', 'context', 'files', 'network'];

function validationError(issues: readonly SchemaIssue[], what: string): ValidationError {
  const issue = issues[0];
  if (issue === undefined) return new ValidationError('validation_error', `invalid ${what}`);
  if (issue.code === 'unrecognized_keys') {
    const names = (issue.keys ?? []).map((k) => WIRE_TO_ADMIN[k] ?? k);
    return new ValidationError('validation_error', `invalid ${what}: unknown option ${names.map((n) => `\`${n}\``).join(', ')}`, { field: names[0] });
  }
  // Keys of records (file paths) are kept; known wire names become option names.
  const field = issue.path.map((p) => WIRE_TO_ADMIN[String(p)] ?? String(p)).join('.');
  return new ValidationError('validation_error', `invalid ${what}${field === '' ? '' : ` \`${field}\``}: ${issue.message}`, {
    field: field === '' ? undefined : field,
  });
}

function mapKeys(options: unknown, allowed: readonly AdminKey[], what: string): Record<string, unknown> {
  if (options === null || typeof options !== 'object' || Array.isArray(options)) {
    throw new ValidationError('validation_error', `invalid ${what}: options must be an object`);
  }
  const body: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(options)) {
    if (!(allowed as readonly string[]).includes(key)) {
      throw new ValidationError('validation_error', `invalid ${what}: unknown option \`${key}\``, { field: key });
    }
    if (value !== undefined) body[ADMIN_OPTION_TO_WIRE[key as AdminKey]] = value;
  }
  return body;
}

function check<T>(schema: Schema<T>, body: unknown, what: string): T {
  const parsed = schema.safeParse(body);
  if (!parsed.success) throw validationError(parsed.error.issues, what);
  return parsed.data;
}

export function prewarmRequestToWire(options: PrewarmOptions): PrewarmRequest {
  return check(PrewarmRequest, mapKeys(options, PREWARM_KEYS, 'prewarm option'), 'prewarm option');
}

export function quotasToWire(quotas: TenantQuotas): WireTenantQuotas {
  return check(WireTenantQuotas, mapKeys(quotas, QUOTA_KEYS, 'quota'), 'quota');
}

export function createTenantRequestToWire(options: CreateTenantOptions): CreateTenantRequest {
  const body = mapKeys(options, ['name', 'quotas'], 'tenant option');
  if (options.quotas !== undefined) body.quotas = mapKeys(options.quotas, QUOTA_KEYS, 'quota');
  return check(CreateTenantRequest, body, 'tenant option');
}

export function buildImageRequestToWire(options: BuildImageOptions): BuildImageRequest {
  const body = mapKeys(options, BUILD_KEYS, 'image build option');
  if (options.context instanceof Uint8Array) body.context = Buffer.from(options.context).toString('base64');
  return check(BuildImageRequest, body, 'image build option');
}

// ---------------------------------------------------------------------------------------------------------------
// Wire answers → results.


function poolFrom(p: WirePoolInfo): PoolInfo {
  return {
    key: p.key,
    image: p.image,
    workingDir: p.working_dir,
    memoryMb: p.memory_mb,
    cpuCores: p.cpu_cores,
    pidsLimit: p.pids_limit,
    network: p.network,
    readOnly: p.read_only,
    size: p.size,
    ready: p.ready,
    creating: p.creating,
    inUse: p.in_use,
    hits: p.hits,
    misses: p.misses,
    error: p.error,
  };
}
export const poolFromWire = (body: unknown): PoolInfo => poolFrom(parseAnswer(WirePoolInfo, body, 'pool'));
export const poolListFromWire = (body: unknown): PoolInfo[] => parseAnswer(PoolList, body, 'pool list').pools.map(poolFrom);

export function quotasFromWire(q: WireTenantQuotas): TenantQuotas {
  const out: TenantQuotas = {};
  if (q.max_sandboxes !== undefined) out.maxSandboxes = q.max_sandboxes;
  if (q.max_memory_mb !== undefined) out.maxMemoryMb = q.max_memory_mb;
  if (q.max_cpu_cores !== undefined) out.maxCpuCores = q.max_cpu_cores;
  if (q.max_pids !== undefined) out.maxPids = q.max_pids;
  if (q.executions_per_minute !== undefined) out.executionsPerMinute = q.executions_per_minute;
  if (q.snapshot_bytes !== undefined) out.snapshotBytes = q.snapshot_bytes;
  return out;
}
function tenantFrom(t: WireTenant): Tenant {
  return { id: t.id, name: t.name, quotas: quotasFromWire(t.quotas), createdAt: t.created_at };
}
export const tenantFromWire = (body: unknown): Tenant => tenantFrom(parseAnswer(WireTenant, body, 'tenant'));
export const tenantListFromWire = (body: unknown): Tenant[] => parseAnswer(TenantList, body, 'tenant list').tenants.map(tenantFrom);

function keyFrom(k: WireApiKey): ApiKeyInfo {
  return { id: k.id, tenantId: k.tenant_id, prefix: k.prefix, createdAt: k.created_at, revokedAt: k.revoked_at, lastUsedAt: k.last_used_at };
}
export const apiKeyFromWire = (body: unknown): ApiKeyInfo => keyFrom(parseAnswer(WireApiKey, body, 'API key'));
export const apiKeyListFromWire = (body: unknown): ApiKeyInfo[] => parseAnswer(ApiKeyList, body, 'API key list').keys.map(keyFrom);
export function createdApiKeyFromWire(body: unknown): CreatedApiKey {
  const k = parseAnswer(WireCreatedApiKey, body, 'created API key');
  return { ...keyFrom(k), key: k.key };
}

function imageFrom(i: WireImageInfo): ImageInfo {
  const out: ImageInfo = { name: i.name, kind: i.kind, present: i.present, id: i.id, created: i.created, sizeBytes: i.size_bytes };
  if (i.description !== undefined) out.description = i.description;
  if (i.up_to_date !== undefined) out.upToDate = i.up_to_date;
  return out;
}
export const imageFromWire = (body: unknown): ImageInfo => imageFrom(parseAnswer(WireImageInfo, body, 'image'));
export const imageListFromWire = (body: unknown): ImageInfo[] => parseAnswer(ImageList, body, 'image list').images.map(imageFrom);

function cacheFrom(c: WireCacheInfo): CacheInfo {
  return { name: c.name, target: c.target, volume: c.volume, owner: c.owner, readOnly: c.read_only, exists: c.exists, sizeBytes: c.size_bytes };
}
export const cacheListFromWire = (body: unknown): CacheInfo[] => parseAnswer(CacheList, body, 'cache list').caches.map(cacheFrom);
export function cachePurgeFromWire(body: unknown): CachePurgeResult {
  const r = parseAnswer(WireCachePurgeResult, body, 'cache purge result');
  return { name: r.name, volume: r.volume, method: r.method };
}
