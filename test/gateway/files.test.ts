// The files API of persistent sandboxes (GET, HEAD and PUT /api/v1/containers/:id/files?path=P) against a real
// gateway and engine: round trips, modes, relative paths, errors, stopped sandboxes, tenants, large files streamed.
import crypto from 'node:crypto';
import http from 'node:http';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { collectGarbage } from '../../src/platform/heap-tidy.js';
import { api, startTestGateway, type TestGateway } from '../helpers/gateway.js';

const ADMIN = 'admin-key-for-files-tests-0123456789';
let gw: TestGateway;
let a: Record<string, string>;
let b: Record<string, string>;
const created: Array<{ id: string; headers: Record<string, string> }> = [];

async function tenantHeaders(name: string): Promise<Record<string, string>> {
  const admin = { authorization: `Bearer ${ADMIN}` };
  const tenant = await api(gw.url, 'POST', '/api/v1/tenants', { name }, admin);
  expect(tenant.status).toBe(201);
  const key = await api(gw.url, 'POST', `/api/v1/tenants/${tenant.body.id}/keys`, undefined, admin);
  return { authorization: `Bearer ${key.body.key}` };
}

beforeAll(async () => {
  // Idle sandboxes are looked for often, so that a transfer counting as activity can be seen.
  gw = await startTestGateway({ env: { FAAS_ADMIN_KEY: ADMIN, FAAS_IDLE_CHECK_MS: '200' } });
  a = await tenantHeaders('files-a');
  b = await tenantHeaders('files-b');
});
afterEach(async () => {
  for (const box of created.splice(0)) await api(gw.url, 'DELETE', `/api/v1/containers/${box.id}`, undefined, box.headers);
});
afterAll(async () => {
  await gw?.close();
});

async function sandbox(body: object = {}, headers = a): Promise<string> {
  const res = await api(gw.url, 'POST', '/api/v1/containers', body, headers);
  expect(res.status).toBe(201);
  created.push({ id: res.body.id, headers });
  return res.body.id;
}

const filesUrl = (id: string, path: string, mode?: string) => `${gw.url}/api/v1/containers/${id}/files?path=${encodeURIComponent(path)}${mode ? `&mode=${mode}` : ''}`;

async function put(id: string, path: string, data: string | Uint8Array, opts: { mode?: string; headers?: Record<string, string>; contentType?: string } = {}) {
  const res = await fetch(filesUrl(id, path, opts.mode), {
    method: 'PUT',
    headers: { 'content-type': opts.contentType ?? 'application/octet-stream', ...(opts.headers ?? a) },
    body: data,
  });
  return { status: res.status, body: (await res.json()) as any };
}

async function get(id: string, path: string, headers = a) {
  const res = await fetch(filesUrl(id, path), { headers });
  const bytes = Buffer.from(await res.arrayBuffer());
  return { status: res.status, bytes, headers: res.headers, json: res.headers.get('content-type')?.includes('json') ? JSON.parse(bytes.toString()) : undefined };
}

const exec = async (id: string, command: string) => (await api(gw.url, 'POST', `/api/v1/containers/${id}/exec`, { command, timeout_ms: 120_000 }, a)).body;

describe('files of a sandbox', () => {
  it('writes and reads back text and binary files (all 256 byte values), keeping the mode; 201 creates, 200 replaces', async () => {
    const id = await sandbox();
    const text = 'héllo wörld\nline 2\n';
    expect(await put(id, '/workspace/hello.txt', text)).toEqual({ status: 201, body: { path: '/workspace/hello.txt', size: Buffer.byteLength(text), mode: '0644' } });
    const binary = Buffer.from(Array.from({ length: 512 }, (_, i) => i % 256));
    expect((await put(id, '/workspace/bin.dat', binary, { mode: '0755' })).body).toEqual({ path: '/workspace/bin.dat', size: 512, mode: '0755' });

    const readText = await get(id, '/workspace/hello.txt');
    expect(readText.status).toBe(200);
    expect(readText.bytes.toString('utf8')).toBe(text);
    expect(readText.headers.get('content-type')).toBe('application/octet-stream');
    expect(readText.headers.get('content-length')).toBe(String(Buffer.byteLength(text)));
    expect(readText.headers.get('x-faas-file-mode')).toBe('0644');
    const readBinary = await get(id, '/workspace/bin.dat');
    expect(readBinary.bytes.equals(binary)).toBe(true);
    expect(readBinary.headers.get('x-faas-file-mode')).toBe('0755');
    // What the sandbox sees: same bytes, mode and owner.
    expect((await exec(id, 'stat -c "%a %U %s" hello.txt bin.dat; md5sum bin.dat')).stdout).toBe(
      `644 root ${Buffer.byteLength(text)}\n755 root 512\n${crypto.createHash('md5').update(binary).digest('hex')}  bin.dat\n`,
    );

    // Replacing answers 200, and the new mode (default 0644 when none is given) replaces the old one.
    expect(await put(id, '/workspace/bin.dat', 'short')).toEqual({ status: 200, body: { path: '/workspace/bin.dat', size: 5, mode: '0644' } });
    const replaced = await get(id, '/workspace/bin.dat');
    expect([replaced.bytes.toString(), replaced.headers.get('x-faas-file-mode')]).toEqual(['short', '0644']);
    // An empty body writes an empty file; any content type is the file's bytes.
    expect((await put(id, 'empty', '')).body).toMatchObject({ size: 0 });
    expect((await get(id, 'empty')).bytes.length).toBe(0);
    expect((await put(id, 'data.json', '{"a":1}', { contentType: 'application/json' })).body).toMatchObject({ size: 7 });
    expect((await get(id, 'data.json')).bytes.toString()).toBe('{"a":1}');
  });

  it('takes relative paths from the sandbox working directory, makes parent folders, and reads what commands wrote', async () => {
    const id = await sandbox({ working_dir: '/srv/app' });
    expect((await put(id, 'deep/er/notes.txt', 'n\n')).body.path).toBe('/srv/app/deep/er/notes.txt');
    expect((await put(id, '../sibling/x', 'x', { mode: '600' })).body).toEqual({ path: '/srv/sibling/x', size: 1, mode: '0600' });
    expect((await exec(id, 'cat deep/er/notes.txt /srv/sibling/x; stat -c %a deep deep/er /srv/sibling/x')).stdout).toBe('n\nx755\n755\n600\n');
    await exec(id, 'printf made > made.txt; chmod 4750 made.txt');
    const made = await get(id, 'made.txt');
    expect([made.bytes.toString(), made.headers.get('x-faas-file-mode')]).toEqual(['made', '4750']);
    // HEAD: size and mode, no content.
    const head = await fetch(filesUrl(id, '/srv/app/made.txt'), { method: 'HEAD', headers: a });
    expect([head.status, head.headers.get('content-length'), head.headers.get('x-faas-file-mode')]).toEqual([200, '4', '4750']);
    expect((await head.arrayBuffer()).byteLength).toBe(0);
    // A HEAD lets go of the engine's archive at once (a big file's would not fit in the socket's buffers): the next
    // call on the sandbox does not wait for it.
    await exec(id, 'head -c 33554432 /dev/zero > big');
    const bigHead = await fetch(filesUrl(id, 'big'), { method: 'HEAD', headers: a });
    expect(bigHead.headers.get('content-length')).toBe('33554432');
    const t = performance.now();
    expect((await put(id, 'after-head.txt', 'x')).status).toBe(201);
    expect(performance.now() - t).toBeLessThan(3000);
  });

  it('answers 404 naming the path and the sandbox for a missing file', async () => {
    const id = await sandbox();
    for (const [path, suffix] of [
      ['nope.txt', ''],
      ['/no/such/dir/f', ''],
      ['/etc/hostname/below', ' (a folder on the way is a file)'],
    ]) {
      const res = await get(id, path!);
      expect(res.status, path).toBe(404);
      const absolute = path!.startsWith('/') ? path : `/workspace/${path}`;
      expect(res.json).toEqual({ error: 'not_found', message: `no file at ${absolute} in sandbox ${id}${suffix}` });
    }
    expect((await fetch(filesUrl(id, 'nope.txt'), { method: 'HEAD', headers: a })).status).toBe(404);
  });

  it('answers 409 for a directory or a symlink, reading or writing, and leaves them alone', async () => {
    const id = await sandbox();
    await exec(id, 'mkdir -p dir && echo kept > dir/inside && ln -s dir/inside link && ln -s /nowhere dangling');
    const dir = await get(id, 'dir');
    expect(dir.status).toBe(409);
    expect(dir.json).toEqual({ error: 'conflict', message: `/workspace/dir in sandbox ${id} is a directory; list it with an exec of ls` });
    const link = await get(id, 'link');
    expect(link.status).toBe(409);
    expect(link.json.message).toBe(`/workspace/link in sandbox ${id} is a symbolic link to dir/inside (/workspace/dir/inside); read /workspace/dir/inside instead`);
    expect((await get(id, 'dangling')).json.message).toContain('is a symbolic link to /nowhere; read /nowhere instead');

    // The engine would replace a directory by the file, contents and all: refused before it is asked.
    const overDir = await put(id, 'dir', 'x');
    expect(overDir).toEqual({ status: 409, body: { error: 'conflict', message: `/workspace/dir in sandbox ${id} is a directory; name a file inside it` } });
    const overLink = await put(id, 'link', 'x');
    expect(overLink.status).toBe(409);
    expect(overLink.body.message).toContain('is a symbolic link to /workspace/dir/inside; write /workspace/dir/inside instead');
    const throughFile = await put(id, 'dir/inside/below', 'x');
    expect(throughFile.status).toBe(409);
    expect(throughFile.body.message).toContain('not a directory');
    expect((await exec(id, 'cat dir/inside; readlink link')).stdout).toBe('kept\ndir/inside\n');
  });

  it('answers 400 naming the field for a bad path or mode', async () => {
    const id = await sandbox();
    const cases: Array<[string, string | undefined, string, RegExp]> = [
      ['', undefined, 'path', /path must not be empty/],
      ['a\u0000b', undefined, 'path', /NUL/],
      ['dir/', undefined, 'path', /not end with "\/"/],
      ['..', undefined, 'path', /names the root folder/],
      ['/../..', undefined, 'path', /names the root folder/],
      ['/proc/1/environ', undefined, 'path', /kernel or engine mount/],
      ['/.faas/run/agent.sock', undefined, 'path', /platform's agent/],
      ['ok.txt', '999', 'mode', /octal/],
      ['ok.txt', '10000', 'mode', /at most 07777/],
      ['ok.txt', '0o755', 'mode', /octal/],
    ];
    for (const [path, mode, field, message] of cases) {
      const res = await put(id, path, 'x', { mode });
      expect(res.status, `${path} ${mode}`).toBe(400);
      expect(res.body, `${path} ${mode}`).toMatchObject({ error: 'validation_error', field, message: expect.stringMatching(message) });
      if (field === 'path') {
        const read = await get(id, path);
        expect([read.status, read.json?.field], path).toEqual([400, 'path']);
      }
    }
    const noPath = await fetch(`${gw.url}/api/v1/containers/${id}/files`, { headers: a });
    expect(await noPath.json()).toEqual({ error: 'validation_error', message: 'path: path is required, e.g. ?path=/workspace/out.txt', field: 'path' });
    expect((await exec(id, 'ls -A /workspace')).stdout).toBe('');
  });

  it('answers 413 naming the route\'s limit for a body over 64 MiB, and writes nothing', async () => {
    const id = await sandbox();
    const res = await put(id, 'big.bin', Buffer.alloc(64 * 1024 * 1024 + 1));
    expect(res.status).toBe(413);
    expect(res.body).toMatchObject({ error: 'payload_too_large', message: expect.stringContaining('the 64 MiB this route accepts') });
    expect((await get(id, 'big.bin')).status).toBe(404);
  });

  it('reads the files of a stopped sandbox; writing needs it running (409, like exec)', async () => {
    const id = await sandbox();
    await put(id, 'kept.txt', 'still here\n', { mode: '0640' });
    expect((await api(gw.url, 'POST', `/api/v1/containers/${id}/stop`, undefined, a)).body.status).toBe('stopped');
    const read = await get(id, 'kept.txt');
    expect([read.status, read.bytes.toString(), read.headers.get('x-faas-file-mode')]).toEqual([200, 'still here\n', '0640']);
    expect((await get(id, 'missing')).status).toBe(404);
    const write = await put(id, 'kept.txt', 'no');
    expect(write).toEqual({ status: 409, body: { error: 'conflict', message: `sandbox ${id} is stopped (request); resume it first` } });
    await api(gw.url, 'POST', `/api/v1/containers/${id}/resume`, undefined, a);
    expect((await put(id, 'kept.txt', 'yes')).status).toBe(200);
  });

  it("answers 404 for another tenant's sandbox and for an unknown one, as other container routes do", async () => {
    const id = await sandbox();
    await put(id, 'secret.txt', 'mine');
    const theirs = await get(id, 'secret.txt', b);
    expect([theirs.status, theirs.json]).toEqual([404, { error: 'not_found', message: `no sandbox with id "${id}"` }]);
    expect((await fetch(filesUrl(id, 'secret.txt'), { method: 'HEAD', headers: b })).status).toBe(404);
    expect(await put(id, 'secret.txt', 'theirs', { headers: b })).toEqual({ status: 404, body: { error: 'not_found', message: `no sandbox with id "${id}"` } });
    expect((await get(id, 'secret.txt')).bytes.toString()).toBe('mine');
    expect((await get('sb-0000000000000000', 'x')).status).toBe(404);
    expect((await fetch(filesUrl(id, 'secret.txt'))).status).toBe(401);
  });

  it('refuses the tmpfs folders of a read-only sandbox, which the engine cannot see, and reads the rest', async () => {
    const id = await sandbox({ read_only: true });
    const tmp = await get(id, '/tmp/x');
    expect(tmp.status).toBe(409);
    expect(tmp.json.message).toContain('is on a tmpfs of read-only sandbox');
    expect((await get(id, 'in-workdir')).status).toBe(409);
    const write = await put(id, '/etc/x', 'x');
    expect(write.status).toBe(409);
    expect(write.body.message).toContain('read-only root filesystem');
    const passwd = await get(id, '/etc/passwd');
    expect([passwd.status, passwd.bytes.toString()]).toEqual([200, expect.stringContaining('root:')]);
  });
});

describe('large files', () => {
  it('writes 50 MiB and reads the same bytes back (sha256)', async () => {
    const id = await sandbox();
    const data = crypto.randomBytes(50 * 1024 * 1024);
    expect((await put(id, 'big.bin', data)).body).toEqual({ path: '/workspace/big.bin', size: data.length, mode: '0644' });
    const res = await fetch(filesUrl(id, 'big.bin'), { headers: a });
    expect(res.headers.get('content-length')).toBe(String(data.length));
    const hash = crypto.createHash('sha256');
    for await (const chunk of res.body!) hash.update(chunk);
    expect(hash.digest('hex')).toBe(crypto.createHash('sha256').update(data).digest('hex'));
    expect((await exec(id, 'sha256sum big.bin')).stdout.split(' ')[0]).toBe(crypto.createHash('sha256').update(data).digest('hex'));
  });

  it('streams: a client that stops reading a 128 MiB file holds the gateway to a small buffer, then gets every byte', async () => {
    const id = await sandbox();
    const made = await exec(id, 'head -c 134217728 /dev/urandom > big && sha256sum big');
    const expected = made.stdout.split(' ')[0];
    // Memory is compared after full collections: the chunks this client already took and dropped (20 MiB and more
    // in the 100 ms it reads, on a fast machine) are garbage, and would count until V8 happened to collect them.
    collectGarbage();
    const before = process.memoryUsage();
    let received = 0;
    const hash = crypto.createHash('sha256');
    const response = await new Promise<http.IncomingMessage>((resolve, reject) => http.get(filesUrl(id, 'big'), { headers: a }, resolve).on('error', reject));
    expect([response.statusCode, response.headers['content-length']]).toEqual([200, String(128 * 1024 * 1024)]);
    response.on('data', (chunk: Buffer) => {
      received += chunk.length;
      hash.update(chunk);
    });
    await new Promise((r) => setTimeout(r, 100));
    response.pause();
    await new Promise((r) => setTimeout(r, 1500));
    collectGarbage();
    const paused = process.memoryUsage();
    // Neither the gateway nor anything else in this process took the file in: it waits in the engine.
    expect(received).toBeLessThan(128 * 1024 * 1024);
    expect(paused.arrayBuffers - before.arrayBuffers).toBeLessThan(32 * 1024 * 1024);
    const ended = new Promise((resolve, reject) => response.on('end', resolve).on('error', reject));
    response.resume();
    await ended;
    expect(received).toBe(128 * 1024 * 1024);
    expect(hash.digest('hex')).toBe(expected);
  });

  it('counts a download under way as activity: an idle timeout does not stop the sandbox (and cut it) meanwhile', async () => {
    const id = await sandbox({ idle_timeout_s: 1 });
    // Larger than the socket buffers between engine, gateway and client can hold: a smaller file is all taken
    // from the engine at once, the transfer ends, and the idle timeout may rightly stop the sandbox meanwhile.
    const size = 64 * 1024 * 1024;
    await exec(id, `head -c ${size} /dev/zero > big`);
    const response = await new Promise<http.IncomingMessage>((resolve, reject) => http.get(filesUrl(id, 'big'), { headers: a }, resolve).on('error', reject));
    let received = 0;
    response.on('data', (chunk: Buffer) => (received += chunk.length));
    response.pause();
    // Well past the idle timeout, well within the 30 s a read may wait for its reader.
    await new Promise((r) => setTimeout(r, 2500));
    expect(received).toBeLessThan(size);
    const ended = new Promise((resolve, reject) => response.on('end', resolve).on('error', reject));
    response.resume();
    await ended;
    expect(received).toBe(size);
    expect((await api(gw.url, 'GET', `/api/v1/containers/${id}`, undefined, a)).body.status).toBe('running');
  });

  it('does not let a client that stopped reading hold up a delete (its download is cut), nor one that left the next read', async () => {
    const id = await sandbox();
    await exec(id, 'head -c 67108864 /dev/zero > big');
    // A client that goes away: the engine's archive is let go at once.
    const left = new AbortController();
    const first = await fetch(filesUrl(id, 'big'), { headers: a, signal: left.signal });
    await first.body!.getReader().read();
    left.abort();
    let t = performance.now();
    expect((await put(id, 'after.txt', 'x')).status).toBe(201);
    expect(performance.now() - t).toBeLessThan(5000);

    // A client that stays but reads nothing: deleting the sandbox cuts its download instead of waiting for it.
    const stalled = await fetch(filesUrl(id, 'big'), { headers: a });
    const reader = stalled.body!.getReader();
    await reader.read();
    await new Promise((r) => setTimeout(r, 300));
    t = performance.now();
    expect((await api(gw.url, 'DELETE', `/api/v1/containers/${id}`, undefined, a)).status).toBe(204);
    expect(performance.now() - t).toBeLessThan(5000);
    created.splice(created.findIndex((c) => c.id === id), 1);
    let got = 0;
    const cut = await (async () => {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) return false;
        got += value.length;
      }
    })().catch(() => true);
    expect(cut).toBe(true);
    expect(got).toBeLessThan(64 * 1024 * 1024);
  });
});
