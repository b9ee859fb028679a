/**
 * Tenants, their API keys and quotas. Keys are stored only as SHA-256 hashes (they are 256-bit random secrets, so
 * a slow password hash buys nothing) and compared in constant time. A key reads `faas_<key id>_<secret>`: the id
 * finds the row, the secret is checked against its hash.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type Database from 'better-sqlite3';
import { type TenantQuotas, TenantQuotas as TenantQuotasSchema } from '@faas/protocol';
import { type Db, preparedStatements } from '../db/sqlite.js';
import { FaasError, notFound } from '../errors.js';
import { nowIso } from './ids.js';

export type Principal = { kind: 'admin' } | { kind: 'tenant'; tenantId: string };

export interface TenantRecord {
  id: string;
  name: string;
  quotas: TenantQuotas;
  createdAt: string;
}

export interface KeyRecord {
  id: string;
  tenantId: string;
  prefix: string;
  createdAt: string;
  revokedAt: string | null;
  lastUsedAt: string | null;
}

const KEY_RE = /^faas_([a-z0-9]{12})_([A-Za-z0-9_-]{43})$/;
export const DEFAULT_TENANT = 'default';

function sha256(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}

function sameHash(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

function migrate(db: Db): void {
  db.exec(`
    CREATE TABLE IF NOT EXISTS platform_settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE IF NOT EXISTS tenants (
      id TEXT PRIMARY KEY,
      name TEXT NOT NULL UNIQUE,
      quotas TEXT NOT NULL,
      created_at TEXT NOT NULL
    );
    CREATE TABLE IF NOT EXISTS tenant_keys (
      id TEXT PRIMARY KEY,
      tenant_id TEXT NOT NULL REFERENCES tenants(id),
      hash BLOB NOT NULL,
      prefix TEXT NOT NULL,
      created_at TEXT NOT NULL,
      revoked_at TEXT,
      last_used_at TEXT
    );
  `);
}

export class TenantStore {
  private readonly stmt: (sql: string) => Database.Statement;
  private readonly quotaCache = new Map<string, TenantQuotas>();
  /** Last-used times are written at most once a minute per key. */
  private readonly lastUsedWritten = new Map<string, number>();

  constructor(db: Db) {
    migrate(db);
    this.stmt = preparedStatements(db);
  }

  createTenant(name: string, quotas: TenantQuotas = {}): TenantRecord {
    if (this.stmt('SELECT 1 FROM tenants WHERE name = ?').get(name)) {
      throw new FaasError('conflict', `a tenant named "${name}" already exists`, 'name');
    }
    const record: TenantRecord = { id: `tn-${randomBytes(6).toString('hex')}`, name, quotas, createdAt: nowIso() };
    this.stmt('INSERT INTO tenants (id, name, quotas, created_at) VALUES (?, ?, ?, ?)').run(record.id, name, JSON.stringify(quotas), record.createdAt);
    return record;
  }

  getTenant(id: string): TenantRecord | null {
    const row = this.stmt('SELECT * FROM tenants WHERE id = ?').get(id) as { id: string; name: string; quotas: string; created_at: string } | undefined;
    return row ? { id: row.id, name: row.name, quotas: TenantQuotasSchema.parse(JSON.parse(row.quotas)), createdAt: row.created_at } : null;
  }

  requireTenant(id: string): TenantRecord {
    const tenant = this.getTenant(id);
    if (!tenant) throw notFound('tenant', id);
    return tenant;
  }

  listTenants(): TenantRecord[] {
    const rows = this.stmt('SELECT id FROM tenants ORDER BY created_at').all() as Array<{ id: string }>;
    return rows.map((r) => this.getTenant(r.id)!);
  }

  setQuotas(id: string, quotas: TenantQuotas): TenantRecord {
    this.requireTenant(id);
    this.stmt('UPDATE tenants SET quotas = ? WHERE id = ?').run(JSON.stringify(quotas), id);
    this.quotaCache.delete(id);
    return this.requireTenant(id);
  }

  /** Quotas of a tenant; the default (development) tenant and unknown ones have none. Asked on every request, so kept in memory. */
  quotasOf(tenantId: string): TenantQuotas {
    let quotas = this.quotaCache.get(tenantId);
    if (!quotas) {
      quotas = this.getTenant(tenantId)?.quotas ?? {};
      this.quotaCache.set(tenantId, quotas);
    }
    return quotas;
  }

  /** A new key for the tenant. The secret is returned here and never again. */
  createKey(tenantId: string): { record: KeyRecord; key: string } {
    this.requireTenant(tenantId);
    const id = randomBytes(6).toString('hex');
    const secret = randomBytes(32).toString('base64url');
    const key = `faas_${id}_${secret}`;
    const record: KeyRecord = { id, tenantId, prefix: key.slice(0, 22), createdAt: nowIso(), revokedAt: null, lastUsedAt: null };
    this.stmt('INSERT INTO tenant_keys (id, tenant_id, hash, prefix, created_at) VALUES (?, ?, ?, ?, ?)').run(id, tenantId, sha256(secret), record.prefix, record.createdAt);
    return { record, key };
  }

  listKeys(tenantId: string): KeyRecord[] {
    this.requireTenant(tenantId);
    const rows = this.stmt('SELECT id, tenant_id, prefix, created_at, revoked_at, last_used_at FROM tenant_keys WHERE tenant_id = ? ORDER BY created_at').all(tenantId) as Array<{
      id: string;
      tenant_id: string;
      prefix: string;
      created_at: string;
      revoked_at: string | null;
      last_used_at: string | null;
    }>;
    return rows.map((r) => ({ id: r.id, tenantId: r.tenant_id, prefix: r.prefix, createdAt: r.created_at, revokedAt: r.revoked_at, lastUsedAt: r.last_used_at }));
  }

  revokeKey(tenantId: string, keyId: string): KeyRecord {
    const key = this.listKeys(tenantId).find((k) => k.id === keyId);
    if (!key) throw notFound('key', keyId);
    if (!key.revokedAt) this.stmt('UPDATE tenant_keys SET revoked_at = ? WHERE id = ?').run(nowIso(), keyId);
    return this.listKeys(tenantId).find((k) => k.id === keyId)!;
  }

  /** The tenant a key belongs to, or null for anything that is not a live key. */
  authenticateTenantKey(presented: string): string | null {
    const match = KEY_RE.exec(presented);
    if (!match) return null;
    const row = this.stmt('SELECT tenant_id, hash, revoked_at FROM tenant_keys WHERE id = ?').get(match[1]) as
      | { tenant_id: string; hash: Buffer; revoked_at: string | null }
      | undefined;
    if (!row || row.revoked_at !== null || !sameHash(sha256(match[2]!), row.hash)) return null;
    const now = Date.now();
    if (now - (this.lastUsedWritten.get(match[1]!) ?? 0) > 60_000) {
      this.lastUsedWritten.set(match[1]!, now);
      this.stmt('UPDATE tenant_keys SET last_used_at = ? WHERE id = ?').run(new Date(now).toISOString(), match[1]);
    }
    return row.tenant_id;
  }

  storedAdminKeyHash(): Buffer | null {
    const row = this.stmt("SELECT value FROM platform_settings WHERE key = 'admin_key_sha256'").get() as { value: string } | undefined;
    return row ? Buffer.from(row.value, 'hex') : null;
  }

  /** Generates the admin key on first start with auth on (no FAAS_ADMIN_KEY); only its hash is kept. */
  generateAdminKey(): string {
    const key = `faas_admin_${randomBytes(32).toString('base64url')}`;
    this.stmt("INSERT OR REPLACE INTO platform_settings (key, value) VALUES ('admin_key_sha256', ?)").run(sha256(key).toString('hex'));
    return key;
  }
}

/** Who presented `key`: the admin (whose key hash is given), a tenant, or nobody. */
export function authenticate(tenants: TenantStore, adminKeyHash: Buffer | null, key: string): Principal | null {
  if (adminKeyHash && sameHash(sha256(key), adminKeyHash)) return { kind: 'admin' };
  const tenantId = tenants.authenticateTenantKey(key);
  return tenantId ? { kind: 'tenant', tenantId } : null;
}

export function hashAdminKey(key: string): Buffer {
  return sha256(key);
}
