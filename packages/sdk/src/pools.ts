/** `client.pools`: warm pools, sandboxes started ahead of time for fast ephemeral executions. */
import type { Transport } from './http.js';
import { poolFromWire, poolListFromWire, prewarmRequestToWire, type PoolInfo, type PrewarmOptions } from './wire-admin.js';

export class Pools {
  constructor(private readonly transport: Transport) {}

  /** Keeps `count` ready sandboxes of this image and resource shape (0 empties the pool); resolves to the pool. */
  async prewarm(options: PrewarmOptions): Promise<PoolInfo> {
    const body = prewarmRequestToWire(options);
    return poolFromWire(await this.transport.json('POST', '/prewarm', { body }));
  }

  /** The pools of the caller's tenant. */
  async list(): Promise<PoolInfo[]> {
    return poolListFromWire(await this.transport.json('GET', '/pools'));
  }
}
