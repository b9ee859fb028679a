/** `client.caches`: the shared dependency caches of the caller's tenant. */
import { ValidationError } from './errors.js';
import type { Transport } from './http.js';
import { cacheListFromWire, cachePurgeFromWire, type CacheInfo, type CachePurgeResult } from './wire-admin.js';

export class Caches {
  constructor(private readonly transport: Transport) {}

  async list(): Promise<CacheInfo[]> {
    return cacheListFromWire(await this.transport.json('GET', '/caches'));
  }

  /** Empties a cache (removes its volume, or empties it when sandboxes are using it). */
  async purge(name: string): Promise<CachePurgeResult> {
    if (typeof name !== 'string' || name === '') throw new ValidationError('validation_error', 'a cache name is required', { field: 'name' });
    return cachePurgeFromWire(await this.transport.json('DELETE', `/caches/${encodeURIComponent(name)}`));
  }
}
