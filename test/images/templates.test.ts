// User templates through the gateway: build from a Dockerfile (JSON answer and NDJSON log), run the result,
// list, remove, and every kind of bad input answered with a clear 4xx.
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { main } from '../../src/cli/main.js';
import { tarFiles } from '../../src/platform/tar-files.js';
import { contextTar, fromImages, normalizeName } from '../../src/platform/templates.js';
import { api, startTestGateway, type TestGateway } from '../helpers/gateway.js';

const docker = new Docker({ socketPath: '/var/run/docker.sock' });
const prefix = `faas-test-${crypto.randomBytes(4).toString('hex')}`;
let gw: TestGateway;

beforeAll(async () => {
  gw = await startTestGateway();
});
afterAll(async () => {
  await gw?.close();
  const images = await docker.listImages({ filters: { label: ['faas.template=true'] } });
  for (const img of images) if ((img.RepoTags ?? []).some((t) => t.startsWith(`${prefix}/`))) await docker.getImage(img.Id).remove({ force: true }).catch(() => undefined);
});

const build = (body: unknown, headers?: Record<string, string>) => api(gw.url, 'POST', '/api/v1/images', body, headers);

async function ndjson(body: unknown): Promise<{ status: number; events: Array<Record<string, any>> }> {
  const res = await fetch(`${gw.url}/api/v1/images`, { method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/x-ndjson' }, body: JSON.stringify(body) });
  const text = await res.text();
  return { status: res.status, events: text.split('\n').filter(Boolean).map((l) => JSON.parse(l)) };
}

describe('helpers', () => {
  it('finds the FROM images, skipping stages, scratch and variables', () => {
    expect(fromImages('# c\nFROM faas/busybox:latest AS a\nRUN x\nFROM a\nFROM --platform=linux/amd64 scratch\nARG B\nFROM $B\nFROM faas/debian:bookworm')).toEqual(['faas/busybox:latest', 'faas/debian:bookworm']);
    expect(() => fromImages('RUN true')).toThrow(/no FROM/);
    expect(normalizeName('a/b')).toBe('a/b:latest');
    expect(normalizeName('localhost:5000/a/b')).toBe('localhost:5000/a/b:latest');
    expect(normalizeName('a/b:1')).toBe('a/b:1');
  });

  it('rejects paths leaving the context and archives that are not tars', () => {
    expect(() => contextTar({ dockerfile: 'FROM x', files: { '../etc/passwd': 'x' } })).toThrow(/stay inside the context/);
    expect(() => contextTar({ dockerfile: 'FROM x', context: Buffer.from('not a tar at all').toString('base64') })).toThrow(/not a tar archive/);
    const gz = zlib.gzipSync(tarFiles([{ name: 'a.txt', data: Buffer.from('A') }])).toString('base64');
    expect(contextTar({ dockerfile: 'FROM x', context: gz }).length % 512).toBe(0);
  });
});

describe('POST /api/v1/images', () => {
  const name = `${prefix}/hello:1`;

  it('builds a template from a Dockerfile and sandboxes run it', async () => {
    const res = await build({ name, dockerfile: 'FROM faas/busybox:latest\nRUN echo hi > /hi\nCOPY greeting.txt /greeting.txt\n', files: { 'greeting.txt': 'hello from the context\n' } });
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({ name, kind: 'template', present: true });
    expect(res.body.id).toMatch(/^sha256:/);
    const info = await docker.getImage(name).inspect();
    expect(info.Config.Labels).toMatchObject({ 'faas.template': 'true' });

    const ran = await api(gw.url, 'POST', '/api/v1/execute', { image: name, command: 'cat /hi /greeting.txt' });
    expect(ran.status).toBe(200);
    expect(ran.body.stdout).toBe('hi\nhello from the context\n');

    const list = await api(gw.url, 'GET', '/api/v1/images');
    expect(list.status).toBe(200);
    expect(list.body.images.find((i: { name: string }) => i.name === name)).toMatchObject({ kind: 'template', present: true });
    expect(list.body.images[0]).toMatchObject({ name: 'faas/busybox:latest', kind: 'builtin', present: true, up_to_date: true });
  });

  it('streams the build log as NDJSON with a base64 tar context, ending with done', async () => {
    const context = tarFiles([{ name: 'dir/run.sh', data: Buffer.from('#!/bin/sh\necho from-script\n'), mode: 0o755 }]).toString('base64');
    const { status, events } = await ndjson({ name: `${prefix}/streamed`, dockerfile: 'FROM faas/busybox:latest\nCOPY dir/ /opt/\nRUN /opt/run.sh\n', context });
    expect(status).toBe(200);
    const lines = events.filter((e) => e.type === 'log').map((e) => e.line);
    expect(lines).toContainEqual(expect.stringMatching(/^Step 3\/\d+ : RUN \/opt\/run.sh$/));
    expect(lines).toContain('from-script');
    expect(events.at(-1)).toMatchObject({ type: 'done', image: { name: `${prefix}/streamed:latest`, kind: 'template' } });
  });

  it('a failing Dockerfile answers 400 naming the failing step and its output', async () => {
    const res = await build({ name: `${prefix}/broken`, dockerfile: 'FROM faas/busybox:latest\nRUN echo ok\nRUN echo going wrong >&2; exit 3\n' });
    expect(res.status).toBe(400);
    expect(res.body.field).toBe('dockerfile');
    expect(res.body.message).toMatch(/failed at step 3\/\d+ : RUN echo going wrong >&2; exit 3:/);
    expect(res.body.message).toMatch(/--- output of that step ---\ngoing wrong$/);
    expect(res.body.message).toContain('returned a non-zero code: 3');
    expect(res.body.message).toContain('going wrong');
    const streamed = await ndjson({ name: `${prefix}/broken`, dockerfile: 'FROM faas/busybox:latest\nRUN exit 4\n' });
    expect(streamed.events.at(-1)).toMatchObject({ type: 'error', code: 'validation_error', message: expect.stringContaining('non-zero code: 4') });
    await expect(docker.getImage(`${prefix}/broken`).inspect()).rejects.toMatchObject({ statusCode: 404 });
  });

  it('answers 400 for a name that is not a Docker reference', async () => {
    for (const bad of ['Upper/Case', 'a b', 'x/y@sha256:abc', '-lead', 'a/b:']) {
      const res = await build({ name: bad, dockerfile: 'FROM faas/busybox:latest\n' });
      expect(res.status, bad).toBe(400);
      expect(res.body).toMatchObject({ error: 'validation_error', field: 'name' });
    }
  });

  it('answers 404 image_not_found for a FROM image the engine does not have, without trying a registry', async () => {
    const started = Date.now();
    const res = await build({ name: `${prefix}/nofrom`, dockerfile: 'FROM no-such-base/anywhere:1\nRUN true\n' });
    expect(res.status).toBe(404);
    expect(res.body).toMatchObject({ error: 'image_not_found', field: 'dockerfile' });
    expect(res.body.message).toContain('no-such-base/anywhere:1');
    expect(Date.now() - started).toBeLessThan(3000);
    // Streaming requests get the same status: nothing was sent before the check.
    expect((await ndjson({ name: `${prefix}/nofrom`, dockerfile: 'FROM no-such-base/anywhere:1\n' })).status).toBe(404);
    // Named through a build argument: found out by the build itself, still a 404.
    const viaArg = await build({ name: `${prefix}/nofrom`, dockerfile: 'ARG BASE=no-such-base/anywhere:1\nFROM $BASE\nRUN true\n' });
    expect(viaArg.status).toBe(404);
    expect(viaArg.body.message).toContain('FROM $BASE');
  });

  it('answers 400 for a FROM image that is no reference, without asking the engine', async () => {
    // The engine redirects a name with ".." segments, and following that redirect crashed the gateway.
    const res = await build({ name: `${prefix}/badfrom`, dockerfile: 'FROM ../../etc\nRUN true\n' });
    expect(res.status).toBe(400);
    expect(res.body).toMatchObject({ error: 'validation_error', field: 'dockerfile' });
    expect(res.body.message).toContain('../../etc');
  });

  it('answers 413 for a context over 64 MiB', async () => {
    const res = await build({ name: `${prefix}/big`, dockerfile: 'FROM faas/busybox:latest\n', files: { big: 'x'.repeat(64 * 1024 * 1024 + 1) } });
    expect(res.status).toBe(413);
    expect(res.body.error).toBe('payload_too_large');
    expect(res.body.message).toContain('64 MiB');
  });

  it('refuses to overwrite a built-in or an image it did not build', async () => {
    const builtin = await build({ name: 'faas/busybox:latest', dockerfile: 'FROM faas/busybox:latest\n' });
    expect(builtin.status).toBe(409);
    expect(builtin.body.message).toContain('built-in');
  });
});

describe('DELETE /api/v1/images/:name', () => {
  it('removes a template, and refuses built-ins and unknown names', async () => {
    const name = `${prefix}/doomed:2`;
    expect((await build({ name, dockerfile: 'FROM faas/busybox:latest\nRUN touch /x\n' })).status).toBe(201);
    expect((await api(gw.url, 'DELETE', `/api/v1/images/${encodeURIComponent(name)}`)).status).toBe(204);
    await expect(docker.getImage(name).inspect()).rejects.toMatchObject({ statusCode: 404 });
    expect((await api(gw.url, 'DELETE', `/api/v1/images/${encodeURIComponent(name)}`)).status).toBe(404);
    const builtin = await api(gw.url, 'DELETE', `/api/v1/images/${encodeURIComponent('faas/busybox:latest')}`);
    expect(builtin.status).toBe(403);
    expect(builtin.body.error).toBe('forbidden');
  });
});

describe('faas images build -f … --name … DIR / faas images rm', () => {
  it('builds a template from a folder through the gateway, streams its log, and removes it', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'faas-tpl-'));
    const log = vi.spyOn(console, 'log').mockImplementation(() => undefined);
    const err = vi.spyOn(console, 'error').mockImplementation(() => undefined);
    try {
      fs.mkdirSync(path.join(dir, 'app'));
      fs.writeFileSync(path.join(dir, 'app', 'hello.sh'), '#!/bin/sh\necho hello from the folder\n', { mode: 0o755 });
      fs.writeFileSync(path.join(dir, 'Dockerfile'), 'FROM faas/busybox:latest\nCOPY app/ /app/\nRUN /app/hello.sh > /greeting\n');
      const name = `${prefix}/cli:1`;
      expect(await main(['images', 'build', '-f', path.join(dir, 'Dockerfile'), '--name', name, '--url', gw.url, dir])).toBe(0);
      const lines = log.mock.calls.map((c) => String(c[0]));
      expect(lines).toContainEqual(expect.stringMatching(/^Step 3\/\d+ : RUN \/app\/hello.sh > \/greeting$/));
      expect(lines.at(-1)).toMatch(new RegExp(`^built ${name} \\(`));
      const ran = await api(gw.url, 'POST', '/api/v1/execute', { image: name, command: 'cat /greeting' });
      expect(ran.body.stdout).toBe('hello from the folder\n');

      fs.writeFileSync(path.join(dir, 'Broken'), 'FROM faas/busybox:latest\nRUN echo nope >&2; exit 5\n');
      expect(await main(['images', 'build', '-f', path.join(dir, 'Broken'), '--name', `${prefix}/cli-broken`, '--url', gw.url, dir])).toBe(1);
      expect(String(err.mock.calls.at(-1)?.[0])).toMatch(/RUN echo nope >&2; exit 5.*non-zero code: 5.*nope/s);

      expect(await main(['images', 'rm', name, '--url', gw.url])).toBe(0);
      await expect(docker.getImage(name).inspect()).rejects.toMatchObject({ statusCode: 404 });
    } finally {
      log.mockRestore();
      err.mockRestore();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('faas images on a gateway that requires API keys', () => {
  it('sends the key from --api-key or $FAAS_API_KEY when it builds and removes a template', async () => {
    const adminKey = `review-admin-${crypto.randomBytes(8).toString('hex')}`;
    const keyed = await startTestGateway({ env: { FAAS_ADMIN_KEY: adminKey } });
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'faas-tpl-'));
    const log = vi.spyOn(console, 'log').mockImplementation(() => undefined);
    const err = vi.spyOn(console, 'error').mockImplementation(() => undefined);
    const saved = process.env.FAAS_API_KEY;
    try {
      fs.writeFileSync(path.join(dir, 'Dockerfile'), 'FROM faas/busybox:latest\nRUN echo keyed > /keyed\n');
      const name = `${prefix}/keyed:1`;
      const build = ['images', 'build', '-f', path.join(dir, 'Dockerfile'), '--name', name, '--url', keyed.url, dir];
      delete process.env.FAAS_API_KEY;
      expect(await main(build)).toBe(1);
      expect(String(err.mock.calls.at(-1)?.[0])).toMatch(/needs an API key/);
      process.env.FAAS_API_KEY = adminKey;
      expect(await main(build)).toBe(0);
      delete process.env.FAAS_API_KEY;
      expect(await main(['images', 'rm', name, '--url', keyed.url])).toBe(1);
      expect(await main(['images', 'rm', name, '--url', keyed.url, '--api-key', adminKey])).toBe(0);
      await expect(docker.getImage(name).inspect()).rejects.toMatchObject({ statusCode: 404 });
    } finally {
      if (saved === undefined) delete process.env.FAAS_API_KEY;
      else process.env.FAAS_API_KEY = saved;
      log.mockRestore();
      err.mockRestore();
      fs.rmSync(dir, { recursive: true, force: true });
      await keyed.close();
    }
  });
});

describe('tenants and limits', () => {
  it("keeps one tenant's templates out of another's list and reach", async () => {
    const { TemplateService } = await import('../../src/platform/templates.js');
    const service = new TemplateService(docker);
    const name = `${prefix}/owned:1`;
    await service.build({ name, dockerfile: 'FROM faas/busybox:latest\nRUN touch /owned\n' }, undefined, 'tenant-a');
    expect((await service.list('tenant-a')).map((i) => i.name)).toContain(name);
    expect((await service.list('tenant-b')).map((i) => i.name)).not.toContain(name);
    await expect(service.remove(name, 'tenant-b')).rejects.toMatchObject({ code: 'not_found' });
    await expect(service.prepare({ name, dockerfile: 'FROM faas/busybox:latest\n' }, 'tenant-b')).rejects.toMatchObject({ code: 'conflict' });
    await service.remove(name, 'tenant-a');
  });

  it('cancels a build that runs past its time limit', async () => {
    const { TemplateService } = await import('../../src/platform/templates.js');
    const service = new TemplateService(docker, { timeoutMs: 1500 });
    const started = Date.now();
    await expect(service.build({ name: `${prefix}/slow`, dockerfile: 'FROM faas/busybox:latest\nRUN sleep 30\n' })).rejects.toThrow(/longer than 2 s and was cancelled/);
    expect(Date.now() - started).toBeLessThan(10_000);
  });
});

describe('an image with a USER', () => {
  it('runs its commands as that user, ephemeral and persistent', async () => {
    const name = `${prefix}/user:1`;
    const res = await build({ name, dockerfile: 'FROM faas/busybox:latest\nRUN mkdir -p /workspace && chown 65534:65534 /workspace\nUSER 65534:65534\n' });
    expect(res.status).toBe(201);
    const ran = await api(gw.url, 'POST', '/api/v1/execute', { image: name, command: 'id -u; id -g; echo ok > /workspace/f && cat /workspace/f' });
    expect(ran.body).toMatchObject({ exit_code: 0, stdout: '65534\n65534\nok\n' });
    const box = await api(gw.url, 'POST', '/api/v1/containers', { image: name });
    expect(box.status).toBe(201);
    const exec = await api(gw.url, 'POST', `/api/v1/containers/${box.body.id}/exec`, { command: 'id -u' });
    expect(exec.body).toMatchObject({ exit_code: 0, stdout: '65534\n' });
    await api(gw.url, 'DELETE', `/api/v1/containers/${box.body.id}`);
  });
});
