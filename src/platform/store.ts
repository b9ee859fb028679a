/**
 * What the platform remembers across restarts, in the embedded SQLite database: persistent sandboxes, executions
 * and the gateway's instance id.
 */
import { randomBytes } from 'node:crypto';
import type { ContainerStatus, ExecutionMode, Limits } from '@faas/protocol';
import type Database from 'better-sqlite3';
import { type Db, preparedStatements } from '../db/sqlite.js';

export interface SandboxRecord {
  id: string;
  /** The tenant that owns it; other tenants never see it. */
  tenantId: string;
  status: ContainerStatus;
  image: string;
  command: string[] | null;
  env: Record<string, string>;
  workingDir: string;
  limits: Limits;
  idleTimeoutS: number;
  createdAt: string;
  lastActiveAt: string;
  stoppedReason: string | null;
}

export type ExecutionStatus = 'running' | 'finished' | 'failed';

export interface ExecutionRecord {
  id: string;
  tenantId: string;
  mode: ExecutionMode;
  sandboxId: string | null;
  status: ExecutionStatus;
  exitCode: number | null;
  error: string | null;
  startedAt: string;
  endedAt: string | null;
}

function migrate(db: Db): void {
  db.exec(`
    CREATE TABLE IF NOT EXISTS platform_settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE IF NOT EXISTS platform_sandboxes (
      id TEXT PRIMARY KEY,
      status TEXT NOT NULL,
      image TEXT NOT NULL,
      command TEXT,
      env TEXT NOT NULL,
      working_dir TEXT NOT NULL,
      limits TEXT NOT NULL,
      idle_timeout_s INTEGER NOT NULL,
      created_at TEXT NOT NULL,
      last_active_at TEXT NOT NULL,
      stopped_reason TEXT,
      deleted INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE IF NOT EXISTS platform_executions (
      id TEXT PRIMARY KEY,
      mode TEXT NOT NULL,
      sandbox_id TEXT,
      status TEXT NOT NULL,
      exit_code INTEGER,
      error TEXT,
      started_at TEXT NOT NULL,
      ended_at TEXT
    );
    CREATE INDEX IF NOT EXISTS platform_executions_status ON platform_executions(status);
    CREATE TABLE IF NOT EXISTS platform_sandbox_events (
      seq INTEGER PRIMARY KEY AUTOINCREMENT,
      sandbox_id TEXT NOT NULL,
      at TEXT NOT NULL,
      event TEXT NOT NULL,
      detail TEXT NOT NULL
    );
    CREATE INDEX IF NOT EXISTS platform_sandbox_events_sandbox ON platform_sandbox_events(sandbox_id, seq);
  `);
  // Tables made before tenancy get the column, their rows belonging to the default tenant.
  for (const table of ['platform_sandboxes', 'platform_executions']) {
    const columns = db.prepare(`PRAGMA table_info(${table})`).all() as Array<{ name: string }>;
    if (!columns.some((c) => c.name === 'tenant_id')) db.exec(`ALTER TABLE ${table} ADD COLUMN tenant_id TEXT NOT NULL DEFAULT 'default'`);
  }
}

interface SandboxRow {
  id: string;
  tenant_id: string;
  status: string;
  image: string;
  command: string | null;
  env: string;
  working_dir: string;
  limits: string;
  idle_timeout_s: number;
  created_at: string;
  last_active_at: string;
  stopped_reason: string | null;
}

function toSandbox(row: SandboxRow): SandboxRecord {
  return {
    id: row.id,
    tenantId: row.tenant_id,
    status: row.status as ContainerStatus,
    image: row.image,
    command: row.command === null ? null : (JSON.parse(row.command) as string[]),
    env: JSON.parse(row.env) as Record<string, string>,
    workingDir: row.working_dir,
    limits: JSON.parse(row.limits) as Limits,
    idleTimeoutS: row.idle_timeout_s,
    createdAt: row.created_at,
    lastActiveAt: row.last_active_at,
    stoppedReason: row.stopped_reason,
  };
}

export class PlatformStore {
  private readonly stmt: (sql: string) => Database.Statement;

  constructor(db: Db) {
    migrate(db);
    this.stmt = preparedStatements(db);
  }

  /** A stable id for this gateway's data dir: labels its containers so gateways sharing an engine keep apart. */
  instanceId(): string {
    const row = this.stmt('SELECT value FROM platform_settings WHERE key = ?').get('instance_id') as { value: string } | undefined;
    if (row) return row.value;
    const id = randomBytes(8).toString('hex');
    this.stmt('INSERT INTO platform_settings (key, value) VALUES (?, ?)').run('instance_id', id);
    return id;
  }

  insertSandbox(s: SandboxRecord): void {
    this
      .stmt(
        `INSERT INTO platform_sandboxes (id, tenant_id, status, image, command, env, working_dir, limits, idle_timeout_s, created_at, last_active_at, stopped_reason)
         VALUES (@id, @tenant_id, @status, @image, @command, @env, @working_dir, @limits, @idle_timeout_s, @created_at, @last_active_at, @stopped_reason)`,
      )
      .run({
        id: s.id,
        tenant_id: s.tenantId,
        status: s.status,
        image: s.image,
        command: s.command === null ? null : JSON.stringify(s.command),
        env: JSON.stringify(s.env),
        working_dir: s.workingDir,
        limits: JSON.stringify(s.limits),
        idle_timeout_s: s.idleTimeoutS,
        created_at: s.createdAt,
        last_active_at: s.lastActiveAt,
        stopped_reason: s.stoppedReason,
      });
  }

  getSandbox(id: string): SandboxRecord | null {
    const row = this.stmt('SELECT * FROM platform_sandboxes WHERE id = ? AND deleted = 0').get(id) as SandboxRow | undefined;
    return row ? toSandbox(row) : null;
  }

  /** The tenant of a sandbox that is not deleted, or null: the check made on every call on a sandbox. */
  sandboxTenant(id: string): string | null {
    const row = this.stmt('SELECT tenant_id FROM platform_sandboxes WHERE id = ? AND deleted = 0').get(id) as { tenant_id: string } | undefined;
    return row?.tenant_id ?? null;
  }

  listSandboxes(): SandboxRecord[] {
    return (this.stmt('SELECT * FROM platform_sandboxes WHERE deleted = 0 ORDER BY created_at').all() as SandboxRow[]).map(toSandbox);
  }

  setSandboxStatus(id: string, status: ContainerStatus, stoppedReason: string | null): void {
    this.stmt('UPDATE platform_sandboxes SET status = ?, stopped_reason = ? WHERE id = ?').run(status, stoppedReason, id);
  }

  touchSandbox(id: string, at: string): void {
    this.stmt('UPDATE platform_sandboxes SET last_active_at = ? WHERE id = ?').run(at, id);
  }

  markSandboxDeleted(id: string): void {
    this.stmt('UPDATE platform_sandboxes SET deleted = 1 WHERE id = ?').run(id);
  }

  insertExecution(e: ExecutionRecord): void {
    this
      .stmt(
        `INSERT INTO platform_executions (id, tenant_id, mode, sandbox_id, status, exit_code, error, started_at, ended_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(e.id, e.tenantId, e.mode, e.sandboxId, e.status, e.exitCode, e.error, e.startedAt, e.endedAt);
  }

  finishExecution(id: string, status: ExecutionStatus, exitCode: number | null, error: string | null, endedAt: string): void {
    this
      .stmt('UPDATE platform_executions SET status = ?, exit_code = ?, error = ?, ended_at = ? WHERE id = ?')
      .run(status, exitCode, error, endedAt, id);
  }

  getExecution(id: string): ExecutionRecord | null {
    const row = this.stmt('SELECT * FROM platform_executions WHERE id = ?').get(id) as
      | { id: string; tenant_id: string; mode: string; sandbox_id: string | null; status: string; exit_code: number | null; error: string | null; started_at: string; ended_at: string | null }
      | undefined;
    if (!row) return null;
    return {
      id: row.id,
      tenantId: row.tenant_id,
      mode: row.mode as ExecutionMode,
      sandboxId: row.sandbox_id,
      status: row.status as ExecutionStatus,
      exitCode: row.exit_code,
      error: row.error,
      startedAt: row.started_at,
      endedAt: row.ended_at,
    };
  }

  recordLifecycle(sandboxId: string, event: string, detail: Record<string, unknown>, at: string): void {
    this.stmt('INSERT INTO platform_sandbox_events (sandbox_id, at, event, detail) VALUES (?, ?, ?, ?)').run(sandboxId, at, event, JSON.stringify(detail));
  }

  /** The most recent lifecycle events of a sandbox, oldest first. */
  lifecycleOf(sandboxId: string, limit: number): Array<{ at: string; event: string; detail: Record<string, unknown> }> {
    const rows = this.stmt('SELECT at, event, detail FROM platform_sandbox_events WHERE sandbox_id = ? ORDER BY seq DESC LIMIT ?').all(sandboxId, limit) as Array<{
      at: string;
      event: string;
      detail: string;
    }>;
    return rows.reverse().map((r) => ({ at: r.at, event: r.event, detail: JSON.parse(r.detail) as Record<string, unknown> }));
  }

  /** Executions that were running when the gateway died: recorded as failed, never silently lost. */
  failInterruptedExecutions(reason: string, at: string): number {
    return this
      .stmt("UPDATE platform_executions SET status = 'failed', error = ?, ended_at = ? WHERE status = 'running'")
      .run(reason, at).changes;
  }
}
