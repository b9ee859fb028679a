/**
 * Per-tenant quotas: ceilings on what one sandbox may ask for (403, and the ceiling is also the default so that
 * leaving a limit out cannot escape it), how many sandboxes may run at once and how many executions may start
 * per minute (429 with Retry-After).
 */
import type { TenantQuotas } from '@faas/protocol';
import { FaasError } from '../errors.js';

export interface ResourceAsk {
  memory_mb?: number | undefined;
  cpu_cores?: number | undefined;
  pids_limit?: number | undefined;
}

const WINDOW_MS = 60_000;

export class QuotaGuard {
  /** Start times of recent executions per tenant (a rolling one-minute window). */
  private readonly starts = new Map<string, number[]>();

  constructor(
    private readonly quotasOf: (tenant: string) => TenantQuotas,
    /** Sandboxes of the tenant that hold resources now. */
    private readonly runningOf: (tenant: string) => number,
  ) {}

  /** The request's limits with the tenant's ceilings applied as defaults; refuses asks above a ceiling. */
  limits<T extends ResourceAsk>(tenant: string, ask: T): T {
    const q = this.quotasOf(tenant);
    const check = (field: keyof ResourceAsk, quota: keyof TenantQuotas, ceiling: number | undefined): number | undefined => {
      const value = ask[field];
      if (ceiling === undefined) return value;
      if (value !== undefined && value > ceiling) {
        throw new FaasError('forbidden', `${field} ${value} is above this tenant's ceiling of ${ceiling} (quota ${quota})`, field);
      }
      return value ?? ceiling;
    };
    return {
      ...ask,
      memory_mb: check('memory_mb', 'max_memory_mb', q.max_memory_mb),
      cpu_cores: check('cpu_cores', 'max_cpu_cores', q.max_cpu_cores),
      pids_limit: check('pids_limit', 'max_pids', q.max_pids),
    };
  }

  /** Counts an execution (or exec) against the per-minute rate; refuses it when the rate is used up. */
  admitExecution(tenant: string, now = Date.now()): void {
    const limit = this.quotasOf(tenant).executions_per_minute;
    if (limit === undefined) return;
    const recent = (this.starts.get(tenant) ?? []).filter((t) => now - t < WINDOW_MS);
    if (recent.length >= limit) {
      const retryAfterS = Math.max(1, Math.ceil((recent[0]! + WINDOW_MS - now) / 1000));
      this.starts.set(tenant, recent);
      throw new FaasError('rate_limited', `this tenant may start ${limit} executions per minute (quota executions_per_minute); retry in ${retryAfterS} s`, undefined, retryAfterS);
    }
    recent.push(now);
    this.starts.set(tenant, recent);
  }

  /** Refuses a new sandbox when the tenant already runs as many as it may. */
  admitSandbox(tenant: string): void {
    const limit = this.quotasOf(tenant).max_sandboxes;
    if (limit === undefined) return;
    const running = this.runningOf(tenant);
    if (running >= limit) {
      throw new FaasError(
        'rate_limited',
        `this tenant already runs ${running} of its ${limit} sandboxes (quota max_sandboxes); stop or delete one, or retry when an execution ends`,
        undefined,
        5,
      );
    }
  }
}
