// The built-in images: each is built (only when its recipe changed: the engine keeps them between runs, so only a
// fresh machine pays for mmdebstrap), a second build is a no-op, and the language images run their programs
// through POST /api/v1/execute.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { main } from '../../src/cli/main.js';
import { DEFAULT_AGENT_PATH } from '../../src/config.js';
import { DockerRuntime } from '../../src/runtimes/docker/docker-runtime.js';
import { BASE_IMAGES, RECIPE_LABEL, ensureBaseImage } from '../../src/runtimes/docker/base-images.js';
import { debianSources } from '../../src/runtimes/docker/debian-images.js';
import { api, startTestGateway, type TestGateway } from '../helpers/gateway.js';

const docker = new Docker({ socketPath: '/var/run/docker.sock' });

describe('apt sources', () => {
  const etc = fs.mkdtempSync(path.join(os.tmpdir(), 'faas-apt-'));
  afterAll(() => fs.rmSync(etc, { recursive: true, force: true }));

  it('takes the Debian mirror from apt\'s configuration (deb822 and one-line), ignoring other repositories', () => {
    fs.mkdirSync(path.join(etc, 'sources.list.d'));
    fs.writeFileSync(
      path.join(etc, 'sources.list.d', 'debian.sources'),
      '# snapshot 2025\nTypes: deb\nURIs: http://mirror.example/debian\nSuites: bookworm bookworm-updates\nComponents: main\n\nTypes: deb-src\nURIs: http://src.example/debian\nSuites: bookworm\nComponents: main\n',
    );
    fs.writeFileSync(path.join(etc, 'sources.list.d', 'node.list'), 'deb [signed-by=/k.gpg] https://deb.nodesource.com/node_20.x nodistro main\n');
    fs.writeFileSync(path.join(etc, 'sources.list'), 'deb http://security.example/debian-security bookworm-security main contrib\n# deb http://old.example/debian bookworm main\n');
    expect(debianSources({}, etc).map((s) => `${s.uri} ${s.suite}`)).toEqual([
      'http://security.example/debian-security bookworm-security',
      'http://mirror.example/debian bookworm',
      'http://mirror.example/debian bookworm-updates',
    ]);
    expect(debianSources({ FAAS_DEBIAN_MIRROR: 'http://other.example/debian' }, etc)).toMatchObject([{ uri: 'http://other.example/debian', suite: 'bookworm' }]);
    // A host on another release: its Debian mirror serves bookworm too.
    fs.writeFileSync(path.join(etc, 'sources.list.d', 'debian.sources'), 'Types: deb\nURIs: http://mirror.example/debian/\nSuites: trixie trixie-updates\nComponents: main\n');
    fs.writeFileSync(path.join(etc, 'sources.list'), '');
    expect(debianSources({}, etc).map((s) => `${s.uri} ${s.suite}`)).toEqual(['http://mirror.example/debian/ bookworm']);
    fs.writeFileSync(path.join(etc, 'sources.list.d', 'debian.sources'), '');
    expect(() => debianSources({}, etc)).toThrow(/no Debian "bookworm" source/);
  });
});

describe('built-in images', () => {
  it('lists busybox first, then the Debian images', () => {
    expect(BASE_IMAGES.map((i) => i.tag)).toEqual(['faas/busybox:latest', 'faas/debian:bookworm', 'faas/python:3', 'faas/node:18', 'faas/build:latest']);
  });

  for (const image of BASE_IMAGES) {
    it(
      `builds ${image.tag} when its recipe changed, and a second build is a no-op`,
      async () => {
        const first = await ensureBaseImage(docker, image);
        const second = await ensureBaseImage(docker, image);
        expect(second).toMatchObject({ status: 'up-to-date', id: first.id });
        expect(second.ms).toBeLessThan(2000);
        const info = await docker.getImage(image.tag).inspect();
        expect(info.Config.Labels?.[RECIPE_LABEL]).toBe(image.recipeHash());
      },
      // Cold on a fresh machine: mmdebstrap downloads and installs; measured 40–130 s per Debian image.
      15 * 60_000,
    );
  }

  it('`faas images build` is a fast no-op when everything is up to date', async () => {
    const log = vi.spyOn(console, 'log').mockImplementation(() => undefined);
    try {
      const started = Date.now();
      expect(await main(['images', 'build'])).toBe(0);
      expect(Date.now() - started).toBeLessThan(5000);
      const lines = log.mock.calls.map((c) => String(c[0]));
      expect(lines.filter((l) => l.includes('up-to-date'))).toHaveLength(BASE_IMAGES.length);
    } finally {
      log.mockRestore();
    }
  });
});

describe('language images in sandboxes of the Docker runtime', () => {
  const runRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'faas-img-test-'));
  const runtime = new DockerRuntime({ socketPath: '/var/run/docker.sock', agentPath: DEFAULT_AGENT_PATH, runRoot, instanceId: `test-images-${process.pid}` });
  afterAll(async () => {
    for (const c of await runtime.list().catch(() => [])) await runtime.remove(c.id).catch(() => undefined);
    await runtime.close();
    fs.rmSync(runRoot, { recursive: true, force: true });
  });
  let seq = 0;
  async function run(image: string, argv: string[]): Promise<{ code: number; out: string }> {
    const id = `sb-img-${process.pid}-${seq++}`;
    await runtime.create({ id, image, env: {}, workingDir: '/workspace', limits: { network: 'none' }, labels: { 'faas.kind': 'test' } });
    try {
      const p = await runtime.exec(id, { argv });
      let out = '';
      p.on('stdout', (b: Buffer) => (out += b.toString()));
      p.on('stderr', (b: Buffer) => (out += b.toString()));
      return { code: (await p.exited).exitCode, out };
    } finally {
      await runtime.remove(id);
    }
  }

  it('python3, node, gcc and bash run in their images', async () => {
    expect(await run('faas/python:3', ['python3', '-c', 'print(6*7)'])).toEqual({ code: 0, out: '42\n' });
    expect(await run('faas/node:18', ['node', '-e', 'console.log(6*7)'])).toEqual({ code: 0, out: '42\n' });
    expect(await run('faas/build:latest', ['sh', '-c', 'echo "int main(){return 42;}" > /tmp/a.c && gcc -o /tmp/a /tmp/a.c; /tmp/a; echo $?'])).toEqual({ code: 0, out: '42\n' });
    expect(await run('faas/debian:bookworm', ['bash', '-c', 'echo $BASH_VERSION | cut -c1'])).toEqual({ code: 0, out: '5\n' });
  });
});

describe('language images through POST /api/v1/execute', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startTestGateway();
  });
  afterAll(async () => {
    await gw?.close();
  });
  const execute = (body: unknown) => api(gw.url, 'POST', '/api/v1/execute', body);

  it("runs python3 -c 'print(6*7)' in faas/python:3, with pip and venv", async () => {
    const res = await execute({ image: 'faas/python:3', argv: ['python3', '-c', 'print(6*7)'] });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ exit_code: 0, stdout: '42\n' });
    const tools = await execute({ image: 'faas/python:3', command: 'python3 -m pip --version >/dev/null && python3 -c "import ensurepip" && python3 -m venv --without-pip /tmp/v && /tmp/v/bin/python -c "print(1)"' });
    expect(tools.body).toMatchObject({ exit_code: 0, stdout: '1\n' });
  });

  it("runs node -e 'console.log(6*7)' in faas/node:18, with npm", async () => {
    const res = await execute({ image: 'faas/node:18', argv: ['node', '-e', 'console.log(6*7)'] });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ exit_code: 0, stdout: '42\n' });
    const npm = await execute({ image: 'faas/node:18', command: 'node --version; npm --version' });
    expect(npm.body.exit_code).toBe(0);
    expect(npm.body.stdout).toMatch(/^v18\./);
  });

  it('compiles C in faas/build and has git and make', async () => {
    const res = await execute({
      image: 'faas/build:latest',
      command: 'echo "int main(){return 42;}" > /tmp/a.c && gcc -o /tmp/a /tmp/a.c && git --version >/dev/null && make --version >/dev/null; /tmp/a; echo $?',
    });
    expect(res.body).toMatchObject({ exit_code: 0, stdout: '42\n' });
  });

  it('runs bash in faas/debian:bookworm', async () => {
    const res = await execute({ image: 'faas/debian:bookworm', argv: ['bash', '-c', '. /etc/os-release; echo $VERSION_CODENAME'] });
    expect(res.body).toMatchObject({ exit_code: 0, stdout: 'bookworm\n' });
  });
});
