// Input files (`files`) of executions, persistent execs and forks: written before the command runs, part of the
// result cache's key, and every bad path or content answered with a 400 that leaves nothing behind.
import { describe, expect, it } from 'vitest';
import { api, useTestGateway } from '../helpers/gateway.js';

const gw = useTestGateway();

const execute = (body: unknown) => api(gw.url, 'POST', '/api/v1/execute', body);

describe('input files', () => {
  it('writes text, base64 and mode, relative to working_dir or absolute, making parent folders', async () => {
    const res = await execute({
      command: 'sh run.sh; cat sub/deep/data.txt; stat -c %a sub/deep/data.txt tool; od -An -tx1 bin.dat; cat /etc/abs.conf; ./tool',
      working_dir: '/work',
      files: {
        'run.sh': 'echo "hello from $(pwd)"\n',
        'sub/deep/data.txt': { content: 'secret\n', mode: 0o600 },
        tool: { content: '#!/bin/sh\necho tool ran\n', mode: 0o755 },
        'bin.dat': { base64: Buffer.from([0, 1, 2, 255]).toString('base64') },
        '/etc/abs.conf': 'absolute\n',
      },
    });
    expect(res.status).toBe(200);
    expect(res.body.stderr).toBe('');
    expect(res.body.stdout).toBe('hello from /work\nsecret\n600\n755\n 00 01 02 ff\nabsolute\ntool ran\n');
  });

  it('replaces a file of the image and works on a pooled sandbox too', async () => {
    expect((await api(gw.url, 'POST', '/api/v1/prewarm', { count: 1, memory_mb: 64 })).body.ready).toBe(1);
    const res = await execute({ command: 'cat /etc/hostname.txt /etc/motd 2>/dev/null; cat /etc/motd', memory_mb: 64, files: { '/etc/motd': 'replaced\n' } });
    expect(res.body.stdout).toBe('replaced\nreplaced\n');
    const pool = (await api(gw.url, 'GET', '/api/v1/pools')).body.pools.find((p: { memory_mb: number | null }) => p.memory_mb === 64);
    expect(pool.hits).toBe(1);
  });

  it('are part of the cache key: other content misses, the same content hits', async () => {
    const run = (content: string) => execute({ mode: 'cached', command: 'cat in.txt', files: { 'in.txt': content } });
    const a = await run('one');
    const b = await run('two');
    const again = await run('one');
    expect([a.body.stdout, b.body.stdout, again.body.stdout]).toEqual(['one', 'two', 'one']);
    expect(b.body.cache_key).not.toBe(a.body.cache_key);
    expect(again.body).toMatchObject({ cached: true, cache_key: a.body.cache_key });
    // A mode is content too.
    const executable = await execute({ mode: 'cached', command: 'cat in.txt', files: { 'in.txt': { content: 'one', mode: 0o755 } } });
    expect(executable.body).toMatchObject({ cached: false });
    expect(executable.body.cache_key).not.toBe(a.body.cache_key);
  });

  it('are written before a persistent exec, from the sandbox working directory', async () => {
    const box = await api(gw.url, 'POST', '/api/v1/containers', {});
    try {
      const res = await api(gw.url, 'POST', `/api/v1/containers/${box.body.id}/exec`, { command: 'cat note.txt; pwd', files: { 'note.txt': 'kept\n' } });
      expect(res.body).toMatchObject({ exit_code: 0, stdout: 'kept\n/workspace\n' });
      const later = await api(gw.url, 'POST', `/api/v1/containers/${box.body.id}/exec`, { command: 'cat /workspace/note.txt' });
      expect(later.body.stdout).toBe('kept\n');
    } finally {
      await api(gw.url, 'DELETE', `/api/v1/containers/${box.body.id}`);
    }
  });

  it('never replace a directory or symlink of a persistent sandbox, and are refused with read_only', async () => {
    const box = await api(gw.url, 'POST', '/api/v1/containers', {});
    try {
      await api(gw.url, 'POST', `/api/v1/containers/${box.body.id}/exec`, { command: 'mkdir -p keep && echo precious > keep/data && ln -s keep link' });
      for (const name of ['keep', 'link']) {
        const res = await api(gw.url, 'POST', `/api/v1/containers/${box.body.id}/exec`, { command: 'true', files: { [name]: 'x', 'other.txt': 'y' } });
        expect(res.status).toBe(409);
        expect(res.body.message).toContain(`/workspace/${name}`);
      }
      const after = await api(gw.url, 'POST', `/api/v1/containers/${box.body.id}/exec`, { command: 'cat keep/data; test -L link && echo link; test -e other.txt || echo nothing-written' });
      expect(after.body.stdout).toBe('precious\nlink\nnothing-written\n');
    } finally {
      await api(gw.url, 'DELETE', `/api/v1/containers/${box.body.id}`);
    }
    const ro = await execute({ command: 'true', read_only: true, files: { a: 'x' } });
    expect(ro.status).toBe(400);
    expect(ro.body).toMatchObject({ error: 'validation_error', field: 'files' });
    const roBox = await api(gw.url, 'POST', '/api/v1/containers', { read_only: true });
    try {
      const res = await api(gw.url, 'POST', `/api/v1/containers/${roBox.body.id}/exec`, { command: 'true', files: { a: 'x' } });
      expect(res.status).toBe(409);
      expect(res.body.message).toContain('read_only');
    } finally {
      await api(gw.url, 'DELETE', `/api/v1/containers/${roBox.body.id}`);
    }
    // Persistent mode through execute writes them too.
    const kept = await execute({ mode: 'persistent', command: 'cat in.txt', files: { 'in.txt': 'kept mode' } });
    expect(kept.body.stdout).toBe('kept mode');
    await api(gw.url, 'DELETE', `/api/v1/containers/${kept.body.container_id}`);
  });

  it('go to every fork variant, each variant adding or replacing its own', async () => {
    const parent = await execute({ mode: 'checkpointed', command: 'echo base > /workspace/base' });
    const res = await api(gw.url, 'POST', '/api/v1/fork', {
      parent: parent.body.snapshot_id,
      files: { 'shared.txt': 'shared', 'which.txt': 'default' },
      variants: [{ command: 'cat base shared.txt which.txt' }, { command: 'cat base shared.txt which.txt', files: { 'which.txt': 'mine' } }],
    });
    expect(res.status).toBe(200);
    expect(res.body.variants.map((v: { result: { stdout: string } }) => v.result.stdout)).toEqual(['base\nshareddefault', 'base\nsharedmine']);
  });

  const bad: Array<[string, unknown, string]> = [
    ['the root folder', { '/': 'x' }, 'files./'],
    ['climbing to the root', { '../../..': 'x' }, 'files.../../..'],
    ['an empty path', { '': 'x' }, 'files.'],
    ['a NUL in a path', { 'a\u0000b': 'x' }, 'files.a\u0000b'],
    ['content that is no text nor object', { a: 5 }, 'files.a'],
    ['base64 that is not', { a: { base64: '!!' } }, 'files.a.base64'],
    ['a mode above 07777', { a: { content: 'x', mode: 0o10000 } }, 'files.a.mode'],
    ['both content and base64', { a: { content: 'x', base64: 'eA==' } }, 'files.a'],
  ];
  for (const [what, files, field] of bad) {
    it(`answers 400 naming the file for ${what}, leaving nothing behind`, async () => {
      await gw.gateway.platform.executor.drain();
      const before = (await gw.gateway.platform.runtime.list()).filter((s) => s.labels['faas.kind'] !== 'pool').length;
      const res = await execute({ command: 'true', files });
      expect(res.status).toBe(400);
      expect(res.body).toMatchObject({ error: 'validation_error', field });
      await gw.gateway.platform.executor.drain();
      expect((await gw.gateway.platform.runtime.list()).filter((s) => s.labels['faas.kind'] !== 'pool').length).toBe(before);
    });
  }

  it('answers 413 naming the size the route accepts for a body larger than that', async () => {
    const res = await execute({ command: 'true', stdin: 'x'.repeat(40 * 1024 * 1024) });
    expect(res.status).toBe(413);
    expect(res.body).toMatchObject({ error: 'payload_too_large' });
    expect(res.body.message).toMatch(/larger than the \d+(\.\d)? MiB this route accepts/);
  });

  it('answers 400 when the files hold more than the limit in all', async () => {
    const big = 'x'.repeat(3 * 1024 * 1024);
    const res = await execute({ command: 'true', files: { a: big, b: big, c: big } });
    expect(res.status).toBe(400);
    expect(res.body.message).toMatch(/at most 8 MiB in all/);
  });
});
