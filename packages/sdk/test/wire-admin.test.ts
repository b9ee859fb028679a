import { describe, expect, it } from 'vitest';
import { ADMIN_OPTION_TO_WIRE, FaasError, ValidationError } from '@faas/sdk';
import {
  buildImageRequestToWire,
  cacheListFromWire,
  createTenantRequestToWire,
  createdApiKeyFromWire,
  poolFromWire,
  prewarmRequestToWire,
  quotasToWire,
  tenantFromWire,
} from '../src/wire-admin.js';

describe('admin option mapping (camelCase → wire)', () => {
  it('maps prewarm options, readOnly included', () => {
    expect(prewarmRequestToWire({ count: 2, image: 'x', workingDir: '/w', memoryMb: 64, cpuCores: 0.5, pidsLimit: 10, network: 'bridge', readOnly: true })).toEqual({
      count: 2,
      image: 'x',
      working_dir: '/w',
      memory_mb: 64,
      cpu_cores: 0.5,
      pids_limit: 10,
      network: 'bridge',
      read_only: true,
    });
  });

  it('maps tenant options and quotas', () => {
    expect(createTenantRequestToWire({ name: 'acme', quotas: { maxSandboxes: 1, maxCpuCores: 1.5, executionsPerMinute: 5 } })).toEqual({
      name: 'acme',
      quotas: { max_sandboxes: 1, max_cpu_cores: 1.5, executions_per_minute: 5 },
    });
    expect(quotasToWire({ maxMemoryMb: 256, maxPids: 64, snapshotBytes: 0 })).toEqual({ max_memory_mb: 256, max_pids: 64, snapshot_bytes: 0 });
  });

  it('encodes a byte context as base64 and keeps file paths as given', () => {
    const body = buildImageRequestToWire({ name: 'a/b:1', dockerfile: 'FROM x', context: new Uint8Array([1, 2, 3]) });
    expect(body.context).toBe('AQID');
    expect(buildImageRequestToWire({ name: 'a/b', dockerfile: 'FROM x', files: { 'dir/max_pids': 'x' } }).files).toEqual({ 'dir/max_pids': 'x' });
  });

  it('names the camelCase option in validation errors, before sending', () => {
    const err = (() => {
      try {
        quotasToWire({ maxSandboxes: -1 });
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(ValidationError);
    expect(err).toMatchObject({ field: 'maxSandboxes', status: 0 });
    expect(() => createTenantRequestToWire({ name: 'acme', quotas: { maxPids: 0 } })).toThrow(/`quotas.maxPids`/);
    expect(() => prewarmRequestToWire({ count: 1, working_dir: '/x' } as never)).toThrow(/unknown option `working_dir`/);
    expect(() => buildImageRequestToWire({ name: 'a', dockerfile: 'FROM x', files: {}, context: 'AA==' })).toThrow(ValidationError);
  });

  it('has a reverse name for every wire field', () => {
    const wires = Object.values(ADMIN_OPTION_TO_WIRE);
    expect(new Set(wires).size).toBe(wires.length);
  });
});

describe('admin answers (wire → camelCase)', () => {
  it('maps pools, tenants, keys and caches', () => {
    expect(
      poolFromWire({ key: 'k', image: 'i', working_dir: '/w', memory_mb: null, cpu_cores: 1, pids_limit: null, network: 'none', read_only: false, size: 2, ready: 1, creating: 1, in_use: 0, hits: 3, misses: 4, error: null }),
    ).toEqual({ key: 'k', image: 'i', workingDir: '/w', memoryMb: null, cpuCores: 1, pidsLimit: null, network: 'none', readOnly: false, size: 2, ready: 1, creating: 1, inUse: 0, hits: 3, misses: 4, error: null });
    expect(tenantFromWire({ id: 't', name: 'n', quotas: { max_sandboxes: 2 }, created_at: 'c' })).toEqual({ id: 't', name: 'n', quotas: { maxSandboxes: 2 }, createdAt: 'c' });
    expect(createdApiKeyFromWire({ id: 'k', tenant_id: 't', prefix: 'p', created_at: 'c', revoked_at: null, last_used_at: null, key: 'secret' })).toEqual({
      id: 'k',
      tenantId: 't',
      prefix: 'p',
      createdAt: 'c',
      revokedAt: null,
      lastUsedAt: null,
      key: 'secret',
    });
    expect(cacheListFromWire({ caches: [{ name: 'pip', target: '/c', volume: 'v', owner: 'o', read_only: true, exists: false, size_bytes: null }] })).toEqual([
      { name: 'pip', target: '/c', volume: 'v', owner: 'o', readOnly: true, exists: false, sizeBytes: null },
    ]);
  });

  it('reports an answer that breaks the protocol as invalid_response', () => {
    expect(() => tenantFromWire({ id: 1 })).toThrow(FaasError);
    expect(() => tenantFromWire({ id: 1 })).toThrow(/tenant does not match the protocol/);
  });
});
