/** `client.pools`: warm pools, sandboxes started ahead of time for fast ephemeral executions. */
import { LIMITS } from '@faas/protocol';
import type { Transport } from './http.js';
import { poolFromWire, poolListFromWire, prewarmRequestToWire, type PoolInfo, type PrewarmOptions } from './wire-admin.js';

/** Time for the answer beyond the gateway's wait. */
const WAIT_MARGIN_MS = 10_000;

export class Pools {
  constructor(private readonly transport: Transport) {}

  /**
   * Keeps `count` ready sandboxes of this image and resource shape (0 empties the pool); resolves to the pool once
   * it is full, or after `waitS` seconds with what is ready then.
   */
  async prewarm(options: PrewarmOptions): Promise<PoolInfo> {
    const body = prewarmRequestToWire(options);
    const timeoutMs = Math.max(this.transport.options.timeoutMs, (body.wait_s ?? LIMITS.defaultPrewarmWaitS) * 1000 + WAIT_MARGIN_MS);
    return poolFromWire(await this.transport.json('POST', '/prewarm', { body, timeoutMs }));
  }

  /** The pools of the caller's tenant. */
  async list(): Promise<PoolInfo[]> {
    return poolListFromWire(await this.transport.json('GET', '/pools'));
  }
}
