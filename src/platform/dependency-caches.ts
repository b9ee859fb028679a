/**
 * Shared dependency caches: named volumes mounted into every sandbox at the paths package managers use, so the
 * second `npm install` / `pip install` / `go build` of a tenant finds what the first one downloaded.
 *
 * Security first: a writable cache shared by two tenants lets one poison the other's installs, so by default a
 * cache belongs to one tenant (volume `faas-cache-<tenant>-<cache>`, labels `faas.tenant`, `faas.cache`). Sharing a
 * cache across tenants is an explicit opt-in (FAAS_SHARED_CACHES=<cache>=<owner>,…): the owner tenant (say a
 * trusted CI tenant that warms it) mounts it read-write, every other tenant mounts that same volume read-only
 * instead of its own.
 *
 * Configuration (environment):
 * - FAAS_DEPENDENCY_CACHES: unset = npm,pip,cargo,go-mod,go-build; `off` (or `none`) = no caches; otherwise a
 *   comma-separated list of known names and extra `name:/absolute/path` entries (which may also move a known one).
 * - FAAS_SHARED_CACHES: `cache=owner-tenant,…` (empty by default). Not npm: npm fails on a read-only cache.
 *
 * Sizes come from the engine's `/system/df` (measured here: 8–60 ms, against 600–700 ms for a helper container
 * running `du -sb`). Purging removes the volume when no container uses it; otherwise it is emptied through a
 * short-lived helper container, so running sandboxes keep a valid mount (an empty cache is still a cache).
 */
import type Docker from 'dockerode';
import { type CacheInfo, type CachePurgeResult, DEFAULT_IMAGE } from '@faas/protocol';
import { FaasError, errorMessage } from '../errors.js';
import { engineError, isNotFound } from '../runtimes/docker/engine-errors.js';
import type { VolumeMount } from '../runtimes/runtime.js';

export const KNOWN_CACHES: Readonly<Record<string, string>> = {
  npm: '/root/.npm',
  pip: '/root/.cache/pip',
  cargo: '/usr/local/cargo/registry',
  'go-mod': '/go/pkg/mod',
  'go-build': '/root/.cache/go-build',
};

export const CACHE_LABELS = { managed: 'faas.managed', cache: 'faas.cache', tenant: 'faas.tenant' } as const;

const NAME_RE = /^[a-z0-9][a-z0-9_-]{0,31}$/;
const TENANT_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$/;

export interface CacheDef {
  name: string;
  /** Absolute path inside sandboxes. */
  target: string;
}

export interface DependencyCacheConfig {
  caches: CacheDef[];
  /** cache name → the tenant that owns the one copy every tenant mounts (read-only for all but the owner). */
  shared: Record<string, string>;
}

export function cacheConfigFromEnv(env: NodeJS.ProcessEnv = process.env): DependencyCacheConfig {
  const raw = env.FAAS_DEPENDENCY_CACHES?.trim();
  const caches: CacheDef[] = [];
  const add = (def: CacheDef) => {
    const at = caches.findIndex((c) => c.name === def.name);
    if (at >= 0) caches[at] = def;
    else caches.push(def);
  };
  if (raw === undefined || raw === '' || raw === 'default') {
    for (const [name, target] of Object.entries(KNOWN_CACHES)) add({ name, target });
  } else if (raw !== 'off' && raw !== 'none') {
    for (const item of raw.split(',').map((s) => s.trim()).filter(Boolean)) {
      const colon = item.indexOf(':');
      const name = colon === -1 ? item : item.slice(0, colon);
      const target = colon === -1 ? KNOWN_CACHES[name] : item.slice(colon + 1);
      if (!NAME_RE.test(name)) throw new Error(`FAAS_DEPENDENCY_CACHES: "${name}" is not a valid cache name (a-z, 0-9, _ and -, at most 32)`);
      if (target === undefined) {
        throw new Error(`FAAS_DEPENDENCY_CACHES: unknown cache "${name}"; known: ${Object.keys(KNOWN_CACHES).join(', ')}; add others as name:/absolute/path, or "off"`);
      }
      if (!target.startsWith('/') || target === '/' || target.split('/').includes('..')) {
        throw new Error(`FAAS_DEPENDENCY_CACHES: the path of "${name}" must be an absolute path below /, got "${target}"`);
      }
      add({ name, target });
    }
  }
  const shared: Record<string, string> = {};
  for (const item of (env.FAAS_SHARED_CACHES ?? '').split(',').map((s) => s.trim()).filter(Boolean)) {
    const [name, owner, ...rest] = item.split('=');
    if (!name || !owner || rest.length || !caches.some((c) => c.name === name) || !TENANT_RE.test(owner)) {
      throw new Error(`FAAS_SHARED_CACHES: "${item}" must be <cache>=<owner tenant> naming an enabled cache (${caches.map((c) => c.name).join(', ') || 'none enabled'})`);
    }
    if (name === 'npm') {
      // Measured: npm fails on a read-only cache (EROFS writing its index and logs), even for local tarballs.
      throw new Error('FAAS_SHARED_CACHES: npm cannot work with a read-only cache, so sharing it would break npm for every other tenant; keep npm per tenant');
    }
    shared[name] = owner;
  }
  return { caches, shared };
}

export function checkTenant(tenant: string): string {
  if (!TENANT_RE.test(tenant)) throw new FaasError('validation_error', `invalid tenant id "${tenant}"`);
  return tenant;
}

export function cacheVolumeName(tenant: string, cache: string): string {
  return `faas-cache-${tenant}-${cache}`;
}

interface Planned {
  def: CacheDef;
  owner: string;
  volume: string;
  readOnly: boolean;
}

export class DependencyCaches {
  private readonly created = new Map<string, Promise<void>>();

  constructor(
    private readonly docker: Docker,
    readonly config: DependencyCacheConfig,
    private readonly opts: { helperImage?: string } = {},
  ) {}

  static fromEnv(docker: Docker, env: NodeJS.ProcessEnv = process.env): DependencyCaches {
    return new DependencyCaches(docker, cacheConfigFromEnv(env));
  }

  get enabled(): boolean {
    return this.config.caches.length > 0;
  }

  /** Which volume each cache of `tenant` is, and whether the tenant may write it. */
  plan(tenant: string): Planned[] {
    checkTenant(tenant);
    return this.config.caches.map((def) => {
      const owner = this.config.shared[def.name] ?? tenant;
      return { def, owner, volume: cacheVolumeName(owner, def.name), readOnly: owner !== tenant };
    });
  }

  /** The mounts to add to a sandbox of `tenant` (volumes created on first use). */
  async mountsFor(tenant: string): Promise<VolumeMount[]> {
    const plan = this.plan(tenant);
    await Promise.all(plan.map((p) => this.ensureVolume(p.volume, p.owner, p.def.name)));
    return plan.map((p) => ({ volume: p.volume, target: p.def.target, ...(p.readOnly ? { readOnly: true } : {}) }));
  }

  private ensureVolume(volume: string, owner: string, cache: string): Promise<void> {
    let pending = this.created.get(volume);
    if (!pending) {
      pending = (async () => {
        const labels = { [CACHE_LABELS.managed]: 'true', [CACHE_LABELS.cache]: cache, [CACHE_LABELS.tenant]: owner };
        let got: { Labels?: Record<string, string> | null };
        try {
          await this.docker.createVolume({ Name: volume, Labels: labels });
          got = await this.docker.getVolume(volume).inspect();
        } catch (err) {
          throw engineError(err, 'the Docker engine', `creating the cache volume ${volume}`);
        }
        // Creating an existing volume answers it unchanged: make sure it is this tenant's cache and not a name clash.
        if (got.Labels?.[CACHE_LABELS.tenant] !== owner || got.Labels?.[CACHE_LABELS.cache] !== cache) {
          throw new FaasError('internal_error', `volume ${volume} exists but is not the ${cache} cache of tenant ${owner} (labels ${JSON.stringify(got.Labels ?? {})}); refusing to mount it`);
        }
      })();
      this.created.set(volume, pending);
      pending.catch(() => this.created.delete(volume));
    }
    return pending;
  }

  /** The caches `tenant` sees, with their sizes. */
  async list(tenant: string): Promise<CacheInfo[]> {
    const plan = this.plan(tenant);
    let volumes: Array<{ Name: string; UsageData?: { Size?: number } | null }> = [];
    try {
      volumes = ((await this.docker.df()) as { Volumes?: typeof volumes | null }).Volumes ?? [];
    } catch (err) {
      throw engineError(err, 'the Docker engine', 'measuring the cache volumes');
    }
    return plan.map((p) => {
      const v = volumes.find((x) => x.Name === p.volume);
      const size = v?.UsageData?.Size;
      return {
        name: p.def.name,
        target: p.def.target,
        volume: p.volume,
        owner: p.owner,
        read_only: p.readOnly,
        exists: v !== undefined,
        size_bytes: v === undefined ? 0 : size !== undefined && size >= 0 ? size : null,
      };
    });
  }

  /**
   * Empties `tenant`'s cache `name`: removes the volume when nothing uses it, otherwise deletes its content
   * through a helper container so that running sandboxes keep their mount.
   */
  async purge(tenant: string, name: string): Promise<CachePurgeResult> {
    const p = this.plan(tenant).find((x) => x.def.name === name);
    if (!p) throw new FaasError('not_found', `no dependency cache named "${name}"; enabled: ${this.config.caches.map((c) => c.name).join(', ') || 'none'}`);
    if (p.readOnly) throw new FaasError('forbidden', `the ${name} cache is shared by tenant "${p.owner}"; only that tenant may purge it`);
    try {
      await this.docker.getVolume(p.volume).inspect();
    } catch (err) {
      if (isNotFound(err)) return { name, volume: p.volume, method: 'absent' };
      throw engineError(err, 'the Docker engine', `looking up ${p.volume}`);
    }
    const users = await this.docker.listContainers({ all: true, filters: { volume: [p.volume] } });
    if (users.length === 0) {
      try {
        await this.docker.getVolume(p.volume).remove();
        this.created.delete(p.volume);
        return { name, volume: p.volume, method: 'removed' };
      } catch (err) {
        if (isNotFound(err)) {
          this.created.delete(p.volume);
          return { name, volume: p.volume, method: 'absent' };
        }
        // 409: a sandbox started meanwhile; empty it instead.
        if ((err as { statusCode?: number }).statusCode !== 409) throw engineError(err, 'the Docker engine', `removing ${p.volume}`);
      }
    }
    await this.empty(p.volume);
    return { name, volume: p.volume, method: 'emptied' };
  }

  /**
   * Removes every cache volume owned by `tenant` (for when a tenant is deleted), whatever the configuration says
   * today; volumes still mounted by a container are emptied instead. Returns the volumes handled.
   */
  async forget(tenant: string): Promise<string[]> {
    checkTenant(tenant);
    const { Volumes } = await this.docker.listVolumes({ filters: { label: [`${CACHE_LABELS.tenant}=${tenant}`, `${CACHE_LABELS.managed}=true`] } });
    const names = (Volumes ?? []).map((v) => v.Name);
    for (const name of names) {
      this.created.delete(name);
      try {
        await this.docker.getVolume(name).remove();
      } catch (err) {
        if (isNotFound(err)) continue;
        if ((err as { statusCode?: number }).statusCode !== 409) throw engineError(err, 'the Docker engine', `removing ${name}`);
        await this.empty(name);
      }
    }
    return names;
  }

  private async empty(volume: string): Promise<void> {
    const container = await this.docker
      .createContainer({
        Image: this.opts.helperImage ?? DEFAULT_IMAGE,
        Cmd: ['find', '/cache', '-mindepth', '1', '-maxdepth', '1', '-exec', 'rm', '-rf', '{}', '+'],
        Labels: { [CACHE_LABELS.managed]: 'true', 'faas.kind': 'cache-purge' },
        NetworkDisabled: true,
        HostConfig: { NetworkMode: 'none', Mounts: [{ Type: 'volume', Source: volume, Target: '/cache' }], SecurityOpt: ['no-new-privileges'] },
      })
      .catch((err: unknown) => {
        throw engineError(err, 'the Docker engine', `starting a helper to empty ${volume} (it runs ${this.opts.helperImage ?? DEFAULT_IMAGE}: \`faas images build busybox\`)`);
      });
    try {
      await container.start();
      const result = (await container.wait()) as { StatusCode?: number };
      if (result.StatusCode !== 0) {
        const logs = await container.logs({ stdout: true, stderr: true }).catch(() => Buffer.from(''));
        throw new FaasError('internal_error', `emptying ${volume} failed (exit ${result.StatusCode}): ${logs.toString('utf8').slice(-2000)}`);
      }
    } catch (err) {
      if (err instanceof FaasError) throw err;
      throw engineError(err, 'the Docker engine', `emptying ${volume}: ${errorMessage(err)}`);
    } finally {
      await container.remove({ force: true }).catch(() => undefined);
    }
  }
}
