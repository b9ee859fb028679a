import { describe, expect, it } from 'vitest';
import { buildContainerOptions } from '../../src/runtimes/docker/container-spec.js';
import { runRootFor } from '../../src/platform/platform.js';

const ctx = { agentPath: '/opt/agent', hostRunDir: '/data/run/sb-1', instanceId: 'inst', bridgeNetwork: 'faas-isolated' };

describe('buildContainerOptions', () => {
  it('runs the agent behind an init, mounts it read-only, labels the container and disables the network', () => {
    const o = buildContainerOptions({ id: 'sb-1', image: 'img', env: { A: 'b' }, workingDir: '/workspace', limits: { network: 'none' } }, ctx);
    expect(o.Entrypoint).toEqual(['/.faas/bin/faas-agent']);
    expect(o.HostConfig?.Init).toBe(true);
    expect(o.HostConfig?.Binds).toEqual(['/opt/agent:/.faas/bin/faas-agent:ro', '/data/run/sb-1:/.faas/run']);
    expect(o.HostConfig?.NetworkMode).toBe('none');
    expect(o.Labels).toMatchObject({ 'faas.managed': 'true', 'faas.sandbox': 'sb-1', 'faas.instance': 'inst' });
    expect(o.Env).toEqual(expect.arrayContaining(['A=b', 'FAAS_EVENTS=/.faas/run/events']));
    expect(o.HostConfig?.SecurityOpt).toContain('no-new-privileges');
    expect(o.HostConfig?.CapDrop).toEqual(['ALL']);
    expect(o.HostConfig?.ReadonlyRootfs).toBe(false);
  });

  it('makes the root read-only with small writable tmpfs mounts when asked', () => {
    const o = buildContainerOptions({ id: 'sb-1', image: 'img', env: {}, workingDir: '/work', limits: { network: 'none', readOnly: true } }, ctx);
    expect(o.HostConfig?.ReadonlyRootfs).toBe(true);
    expect(Object.keys(o.HostConfig?.Tmpfs ?? {})).toEqual(['/tmp', '/work']);
  });

  it('turns limits into kernel limits, without swap', () => {
    const o = buildContainerOptions({ id: 'sb-1', image: 'img', env: {}, workingDir: '/w', limits: { memoryMb: 64, cpuCores: 0.5, pidsLimit: 10, network: 'bridge' } }, ctx);
    expect(o.HostConfig).toMatchObject({ Memory: 64 * 2 ** 20, MemorySwap: 64 * 2 ** 20, NanoCpus: 5e8, PidsLimit: 12, NetworkMode: 'faas-isolated' });
  });
});

describe('runRootFor', () => {
  it('keeps socket paths short enough for a unix socket', () => {
    expect(runRootFor('/data')).toBe('/data/run');
    const deep = `/${'very-long-folder-name/'.repeat(8)}data`;
    const root = runRootFor(deep);
    expect(root).not.toContain('very-long');
    expect(`${root}/sb-0123456789abcdef/agent.sock`.length).toBeLessThan(100);
    expect(runRootFor(deep)).toBe(root);
  });
});
