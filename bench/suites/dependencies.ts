/**
 * Proof that the shared dependency caches pay: a dependency-heavy step run in fresh sandboxes (network `none`,
 * nothing from a registry) without a cache, then twice with the tenant's cache volume (the first run fills it,
 * the second reuses it). The headline is the warm run against the no-cache run of the same step in the same run.
 *
 * - pip: `pip install --no-index --find-links` of local source distributions. Without a cache pip builds a
 *   wheel from every sdist; with ~/.cache/pip it reuses the wheels it built the first time.
 * - npm (full mode only): `npm install --offline` of local tarballs made with `npm pack`. Measured: no gain
 *   (0.93× here): npm's cache keeps registry metadata and tarballs, and a local tarball is read from disk either
 *   way. It is reported, without a goal, as the honest counterpart; the npm registry is not reachable from
 *   sandboxes on this machine, which is where the npm cache would pay.
 *
 * The sources are generated inside each sandbox before the clock starts.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { DEFAULT_AGENT_PATH, loadConfig } from '../../src/config.js';
import { DependencyCaches, cacheConfigFromEnv } from '../../src/platform/dependency-caches.js';
import { DockerRuntime } from '../../src/runtimes/docker/docker-runtime.js';
import type { VolumeMount } from '../../src/runtimes/runtime.js';
import type { BenchRow, BenchSuite } from '../lib.js';

interface Scenario {
  name: string;
  image: string;
  /** Untimed: makes the sources. */
  prepare: string;
  /** Timed: the dependency-heavy step. */
  step: string;
  /** Smallest speedup (no cache / warm cache) that counts as paying; none = reported only. */
  goal?: number;
}

const PY_SDISTS = `
import io, os, sys, tarfile
n = int(sys.argv[1]); out = '/tmp/sdists'; os.makedirs(out, exist_ok=True)
for i in range(n):
    name = f'benchpkg{i}'; base = f'{name}-1.0'
    files = {
        f'{base}/pyproject.toml': f'[build-system]\\nrequires = ["setuptools"]\\nbuild-backend = "setuptools.build_meta"\\n[project]\\nname = "{name}"\\nversion = "1.0"\\n',
        f'{base}/PKG-INFO': f'Metadata-Version: 2.1\\nName: {name}\\nVersion: 1.0\\n',
        f'{base}/{name}/__init__.py': ''.join(f'def f{j}(x):\\n    return x + {j}\\n' for j in range(300)),
    }
    with tarfile.open(f'{out}/{base}.tar.gz', 'w:gz') as t:
        for p, text in files.items():
            data = text.encode(); info = tarfile.TarInfo(p); info.size = len(data); t.addfile(info, io.BytesIO(data))
`;

function pipScenario(n: number): Scenario {
  const names = Array.from({ length: n }, (_, i) => `benchpkg${i}`).join(' ');
  return {
    name: `pip install of ${n} local sdists (faas/python:3)`,
    image: 'faas/python:3',
    prepare: `python3 -c ${shellQuote(PY_SDISTS)} ${n}`,
    step: `pip install -q --no-index --find-links /tmp/sdists --no-build-isolation ${names}`,
    goal: 2,
  };
}

function npmScenario(n: number): Scenario {
  const files = 60;
  return {
    name: `npm install of ${n} local tarballs (faas/node:18)`,
    image: 'faas/node:18',
    prepare: [
      'set -e; mkdir -p /tmp/tgz /tmp/src; cd /tmp/src',
      `for i in $(seq 0 ${n - 1}); do d=benchpkg$i; mkdir -p $d/lib; printf '{"name":"%s","version":"1.0.0","main":"lib/f0.js"}' $d > $d/package.json;`,
      `  for j in $(seq 0 ${files - 1}); do echo "module.exports = (x) => x + $j; // $(head -c 600 /dev/zero | tr '\\0' 'x')" > $d/lib/f$j.js; done;`,
      // Packed with a throwaway cache, so the cache under test starts empty.
      '  (cd /tmp/tgz && npm pack --cache /tmp/pack-cache -q /tmp/src/$d >/dev/null); done',
    ].join('\n'),
    step: 'mkdir -p /tmp/app && cd /tmp/app && echo "{}" > package.json && npm install --offline --no-audit --no-fund --loglevel=error /tmp/tgz/*.tgz >/dev/null',
  };
}

function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

export const suite: BenchSuite = {
  name: 'dependencies',
  async run({ quick, workDir }) {
    const config = loadConfig();
    const tag = crypto.randomBytes(4).toString('hex');
    const runRoot = path.join(workDir, `deps-${tag}`);
    fs.mkdirSync(runRoot, { recursive: true });
    const runtime = new DockerRuntime({ socketPath: config.dockerSocket, agentPath: DEFAULT_AGENT_PATH, runRoot, instanceId: `bench-deps-${tag}` });
    const docker = runtime.docker;
    const tenant = `bench-${tag}`;
    const caches = new DependencyCaches(docker, cacheConfigFromEnv({ FAAS_DEPENDENCY_CACHES: 'npm,pip' }));
    const scenarios = quick ? [pipScenario(6)] : [pipScenario(30), npmScenario(60)];
    let seq = 0;

    const sh = async (id: string, command: string): Promise<void> => {
      const p = await runtime.exec(id, { argv: ['sh', '-c', command] });
      let out = '';
      p.on('stdout', (b: Buffer) => (out += b.toString()));
      p.on('stderr', (b: Buffer) => (out += b.toString()));
      const exit = await p.exited;
      if (exit.exitCode !== 0) throw new Error(`"${command.slice(0, 80)}…" failed (exit ${exit.exitCode}): ${out.slice(-2000)}`);
    };
    /** One fresh sandbox: prepare, then time the step. */
    const once = async (s: Scenario, volumes: VolumeMount[]): Promise<number> => {
      const id = `sb-bench-deps-${tag}-${seq++}`;
      await runtime.create({ id, image: s.image, env: {}, workingDir: '/workspace', limits: { network: 'none' }, labels: { 'faas.kind': 'bench' }, volumes });
      try {
        await sh(id, s.prepare);
        const t = performance.now();
        await sh(id, s.step);
        return (performance.now() - t) / 1000;
      } finally {
        await runtime.remove(id).catch(() => undefined);
      }
    };

    const rows: BenchRow[] = [];
    try {
      for (const s of scenarios) {
        try {
          await runtime.resolveImage(s.image);
        } catch {
          throw new Error(`${s.image} is missing: run \`faas images build\` first`);
        }
      }
      const mounts = await caches.mountsFor(tenant);
      for (const s of scenarios) {
        const none = await once(s, []);
        const cold = await once(s, mounts);
        const warm = await once(s, mounts);
        const speedup = none / warm;
        rows.push({
          suite: 'dependencies',
          name: `${s.name}, warm cache`,
          unit: 's',
          value: warm,
          baseline: { name: 'same step, no cache', value: none },
          ratio: warm / none,
          ...(s.goal !== undefined ? { goal: `≥ ${s.goal}× faster than without a cache`, met: speedup >= s.goal } : {}),
          note: `speedup ${speedup.toFixed(2)}×; first run with the (empty) cache ${cold.toFixed(2)} s`,
        });
        console.error(`[bench] dependencies: ${s.name}: no cache ${none.toFixed(2)} s, cold cache ${cold.toFixed(2)} s, warm cache ${warm.toFixed(2)} s (${speedup.toFixed(2)}×)`);
      }
    } finally {
      for (const c of await runtime.list().catch(() => [])) await runtime.remove(c.id).catch(() => undefined);
      for (const name of ['npm', 'pip']) await caches.purge(tenant, name).catch(() => undefined);
      await runtime.close();
    }
    return rows;
  },
};
