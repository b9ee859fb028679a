/**
 * Cached mode: results of executions keyed by SHA-256 over a canonical form (sorted keys) of everything that
 * decides the output: tenant, image id (not its tag), argv, env, working dir, stdin, limits, network, timeout,
 * runtime and the checkpoint it starts from. The result JSON is a blob in the BlobStore (referenced by
 * `cache:<key>` so gc keeps it), indexed in SQLite (`result_cache`). Recent results are also kept in memory, so
 * a hit costs a map lookup and never touches the engine.
 *
 * Invalidation: `expires_at` (the request's `cache_ttl_s`, default FAAS_CACHE_TTL_S = 3600), a different image id
 * (the key changes when the image is rebuilt under the same tag), and explicit deletes (one key, all, by image).
 */
import { createHash } from 'node:crypto';
import type { ExecuteResult } from '@faas/protocol';
import type Database from 'better-sqlite3';
import { type Db, preparedStatements } from '../db/sqlite.js';
import type { BlobStore } from '../storage/index.js';

export const DEFAULT_CACHE_TTL_S = 3600;
/** Results kept in memory besides the blob store (a hit then costs no disk read). */
const MEMORY_ENTRIES = 512;
/** Results larger than this are not kept in memory (they are still cached in the blob store). */
const MEMORY_MAX_BYTES = 256 * 1024;

/** What a cached result carries: the outcome of the run, without the ids of the request that produced it. */
export type CachedOutcome = Pick<
  ExecuteResult,
  'exit_code' | 'signal' | 'stdout' | 'stderr' | 'stdout_truncated' | 'stderr_truncated' | 'duration_ms' | 'timed_out' | 'oom_killed'
>;

export interface CacheKeyParts {
  tenant: string;
  imageId: string;
  argv: string[];
  env: Record<string, string>;
  workingDir: string;
  stdin: string | null;
  /** Digest of the input files (input-files.ts); left out of the key when there are none. */
  files?: string | undefined;
  limits: { memory_mb: number | null; cpu_cores: number | null; pids_limit: number | null; network: string; read_only: boolean };
  timeoutMs: number;
  runtime: string;
  checkpoint: string | null;
}

interface Row {
  key: string;
  tenant_id: string;
  image: string;
  image_id: string;
  blob_id: string;
  created_at: number;
  expires_at: number;
}

/** JSON with object keys sorted at every level: the same value always gives the same text. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
}

export function cacheKey(parts: CacheKeyParts): string {
  return createHash('sha256').update(canonicalJson({ v: 1, ...parts })).digest('hex');
}

export function cacheTtlFromEnv(env: NodeJS.ProcessEnv): number {
  const raw = env.FAAS_CACHE_TTL_S;
  if (raw === undefined || raw.trim() === '') return DEFAULT_CACHE_TTL_S;
  const n = Number(raw);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`FAAS_CACHE_TTL_S="${raw}" must be a positive whole number of seconds`);
  return n;
}

export class ResultCache {
  private readonly stmt: (sql: string) => Database.Statement;
  private readonly memory = new Map<string, { tenant: string; expiresAt: number; outcome: CachedOutcome }>();
  /** Runs under way per key: concurrent identical requests wait for the first instead of running again. */
  readonly flights = new Map<string, Promise<CachedOutcome | null>>();

  constructor(
    db: Db,
    private readonly blobs: BlobStore,
    readonly defaultTtlS: number = DEFAULT_CACHE_TTL_S,
  ) {
    this.stmt = preparedStatements(db);
    db.exec(`
      CREATE TABLE IF NOT EXISTS result_cache (
        key TEXT PRIMARY KEY,
        tenant_id TEXT NOT NULL,
        image TEXT NOT NULL,
        image_id TEXT NOT NULL,
        blob_id TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL
      );
      CREATE INDEX IF NOT EXISTS result_cache_tenant ON result_cache(tenant_id, image);
    `);
  }


  /** The cached outcome of `key` for `tenant`, or null (expired entries are dropped on the way). */
  async lookup(tenant: string, key: string, now = Date.now()): Promise<CachedOutcome | null> {
    const mem = this.memory.get(key);
    if (mem && mem.tenant === tenant && mem.expiresAt > now) {
      // Most recently used last.
      this.memory.delete(key);
      this.memory.set(key, mem);
      return mem.outcome;
    }
    const row = this.stmt('SELECT * FROM result_cache WHERE key = ?').get(key) as Row | undefined;
    if (!row || row.tenant_id !== tenant) return null;
    if (row.expires_at <= now) {
      this.drop([row]);
      return null;
    }
    let outcome: CachedOutcome;
    try {
      outcome = JSON.parse((await this.blobs.get(row.blob_id)).toString('utf8')) as CachedOutcome;
    } catch {
      // A result whose blob is gone or damaged is a miss; the run that follows stores it again.
      this.drop([row]);
      return null;
    }
    this.remember(key, tenant, row.expires_at, outcome);
    return outcome;
  }

  private remember(key: string, tenant: string, expiresAt: number, outcome: CachedOutcome): void {
    if (outcome.stdout.length + outcome.stderr.length > MEMORY_MAX_BYTES) return;
    this.memory.delete(key);
    this.memory.set(key, { tenant, expiresAt, outcome });
    while (this.memory.size > MEMORY_ENTRIES) this.memory.delete(this.memory.keys().next().value!);
  }

  async store(tenant: string, key: string, image: string, imageId: string, outcome: CachedOutcome, ttlS: number): Promise<void> {
    const now = Date.now();
    const expiresAt = now + ttlS * 1000;
    const put = await this.blobs.put(Buffer.from(JSON.stringify(outcome)), { ref: `cache:${key}`, chunked: false });
    const previous = this.stmt('SELECT blob_id FROM result_cache WHERE key = ?').get(key) as { blob_id: string } | undefined;
    this.stmt(
      `INSERT OR REPLACE INTO result_cache (key, tenant_id, image, image_id, blob_id, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
    ).run(key, tenant, image, imageId, put.id, now, expiresAt);
    if (previous && previous.blob_id !== put.id) this.blobs.removeRef(`cache:${key}`, previous.blob_id);
    this.remember(key, tenant, expiresAt, outcome);
  }

  private drop(rows: Row[]): void {
    for (const row of rows) {
      this.memory.delete(row.key);
      this.stmt('DELETE FROM result_cache WHERE key = ?').run(row.key);
      try {
        this.blobs.removeRefs(`cache:${row.key}`);
      } catch {
        // the store is closing: gc finds the blob unreferenced later anyway
      }
    }
  }

  /** Removes one entry of the tenant; false when it has none with that key. */
  delete(tenant: string, key: string): boolean {
    const row = this.stmt('SELECT * FROM result_cache WHERE key = ? AND tenant_id = ?').get(key, tenant) as Row | undefined;
    if (!row) return false;
    this.drop([row]);
    return true;
  }

  /** Removes every entry of the tenant, or those of one image (tag or id); returns how many. */
  clear(tenant: string, image?: string): number {
    const rows = (
      image === undefined
        ? this.stmt('SELECT * FROM result_cache WHERE tenant_id = ?').all(tenant)
        : this.stmt('SELECT * FROM result_cache WHERE tenant_id = ? AND (image = ? OR image_id = ?)').all(tenant, image, image)
    ) as Row[];
    this.drop(rows);
    return rows.length;
  }

  /** Drops expired entries (called periodically). */
  sweep(now = Date.now()): number {
    const rows = this.stmt('SELECT * FROM result_cache WHERE expires_at <= ?').all(now) as Row[];
    this.drop(rows);
    return rows.length;
  }
}
