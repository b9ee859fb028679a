/**
 * `client.tenants`: tenants, their API keys and quotas. Admin API: the client's `apiKey` must be the gateway's
 * admin key (else `AuthError`, code `forbidden` or `unauthorized`).
 */
import { ValidationError } from './errors.js';
import type { Transport } from './http.js';
import {
  apiKeyFromWire,
  apiKeyListFromWire,
  createTenantRequestToWire,
  createdApiKeyFromWire,
  quotasToWire,
  tenantFromWire,
  tenantListFromWire,
  type ApiKeyInfo,
  type CreateTenantOptions,
  type CreatedApiKey,
  type Tenant,
  type TenantQuotas,
} from './wire-admin.js';

function segment(value: string, what: string): string {
  if (typeof value !== 'string' || value === '') throw new ValidationError('validation_error', `a ${what} is required`, { field: what === 'tenant id' ? 'id' : 'keyId' });
  return encodeURIComponent(value);
}

export class Tenants {
  constructor(private readonly transport: Transport) {}

  async create(options: CreateTenantOptions): Promise<Tenant> {
    const body = createTenantRequestToWire(options);
    return tenantFromWire(await this.transport.json('POST', '/tenants', { body }));
  }

  async list(): Promise<Tenant[]> {
    return tenantListFromWire(await this.transport.json('GET', '/tenants'));
  }

  async get(id: string): Promise<Tenant> {
    return tenantFromWire(await this.transport.json('GET', `/tenants/${segment(id, 'tenant id')}`));
  }

  /** Replaces the tenant's quotas (absent fields mean no limit); resolves to the tenant. */
  async setQuotas(id: string, quotas: TenantQuotas): Promise<Tenant> {
    const body = quotasToWire(quotas);
    return tenantFromWire(await this.transport.json('PUT', `/tenants/${segment(id, 'tenant id')}/quotas`, { body }));
  }

  /** Creates an API key for the tenant. Its secret `key` is in this answer only: store it now. */
  async createKey(id: string): Promise<CreatedApiKey> {
    return createdApiKeyFromWire(await this.transport.json('POST', `/tenants/${segment(id, 'tenant id')}/keys`));
  }

  /** The tenant's keys (prefixes only, never the secrets), revoked ones included. */
  async listKeys(id: string): Promise<ApiKeyInfo[]> {
    return apiKeyListFromWire(await this.transport.json('GET', `/tenants/${segment(id, 'tenant id')}/keys`));
  }

  /** Revokes a key: requests with it fail with `AuthError` from now on. Resolves to the key (`revokedAt` set). */
  async revokeKey(id: string, keyId: string): Promise<ApiKeyInfo> {
    return apiKeyFromWire(await this.transport.json('DELETE', `/tenants/${segment(id, 'tenant id')}/keys/${segment(keyId, 'key id')}`));
  }
}
