/**
 * Who is calling. With API keys on, every request but /health and the OpenAPI document carries a key
 * (`Authorization: Bearer <key>` or `X-API-Key: <key>`; a WebSocket upgrade may also use `?api_key=`, since browsers
 * cannot set headers there). The admin key manages tenants; a tenant key acts as its tenant, and everything a tenant
 * creates is invisible to the others. With keys off (single-user development on loopback) every request is the
 * admin acting as the `default` tenant.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { FaasError } from '../errors.js';
import type { GatewayConfig } from '../config.js';
import { DEFAULT_TENANT, type Principal, type TenantStore, authenticate, hashAdminKey } from '../platform/tenants.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** The tenant whose resources this request sees and creates. */
    tenant: string;
    principal: Principal;
  }
}

/** The tenant the admin key acts as for sandbox APIs. */
export const ADMIN_TENANT = 'admin';

const PUBLIC_PATHS = new Set(['/health', '/api/v1/openapi.json']);

export interface AuthSettings {
  enabled: boolean;
  /** SHA-256 of the admin key (from FAAS_ADMIN_KEY or generated on first start). */
  adminKeyHash: Buffer | null;
}

function presentedKey(request: FastifyRequest): string | undefined {
  const header = request.headers.authorization;
  if (header) {
    const match = /^Bearer\s+(\S+)$/i.exec(header);
    if (!match) throw new FaasError('unauthorized', 'the Authorization header must read "Bearer <key>"');
    return match[1];
  }
  const apiKey = request.headers['x-api-key'];
  if (typeof apiKey === 'string' && apiKey) return apiKey;
  if (request.headers.upgrade?.toLowerCase() === 'websocket') {
    const query = request.query as Record<string, unknown> | undefined;
    if (typeof query?.api_key === 'string') return query.api_key;
  }
  return undefined;
}

export function installAuth(app: FastifyInstance, tenants: TenantStore, settings: AuthSettings): void {
  app.decorateRequest('tenant', '');
  app.decorateRequest('principal', null as never);
  app.addHook('onRequest', async (request) => {
    if (!settings.enabled) {
      request.principal = { kind: 'admin' };
      request.tenant = DEFAULT_TENANT;
      return;
    }
    if (PUBLIC_PATHS.has(request.url.split('?')[0]!)) return;
    const key = presentedKey(request);
    if (!key) throw new FaasError('unauthorized', 'this gateway needs an API key: send "Authorization: Bearer <key>" or "X-API-Key: <key>"');
    const principal = authenticate(tenants, settings.adminKeyHash, key);
    if (!principal) throw new FaasError('unauthorized', 'the API key is not valid (unknown or revoked); ask the admin for a key of your tenant');
    request.principal = principal;
    request.tenant = principal.kind === 'tenant' ? principal.tenantId : ADMIN_TENANT;
  });
}

export function requireAdmin(request: FastifyRequest): void {
  if (request.principal?.kind !== 'admin') throw new FaasError('forbidden', 'only the admin key may do this (manage tenants, keys and metrics)');
}

export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || host === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/**
 * Decides whether keys are required. Once an admin key was generated for a data dir, keys stay on for it. A
 * gateway that would listen beyond loopback without keys refuses to start.
 */
export function resolveAuth(config: GatewayConfig, tenants: TenantStore): { settings: AuthSettings; generatedAdminKey: string | null } {
  const stored = tenants.storedAdminKeyHash();
  const enabled = config.auth.requested || stored !== null;
  if (!enabled) {
    if (!isLoopback(config.host)) {
      throw new Error(`refusing to listen on ${config.host} without API keys: set FAAS_ADMIN_KEY (or FAAS_AUTH=on to generate an admin key), or listen on 127.0.0.1`);
    }
    return { settings: { enabled: false, adminKeyHash: null }, generatedAdminKey: null };
  }
  if (config.auth.adminKey) return { settings: { enabled: true, adminKeyHash: hashAdminKey(config.auth.adminKey) }, generatedAdminKey: null };
  if (stored) return { settings: { enabled: true, adminKeyHash: stored }, generatedAdminKey: null };
  const generated = tenants.generateAdminKey();
  return { settings: { enabled: true, adminKeyHash: hashAdminKey(generated) }, generatedAdminKey: generated };
}
