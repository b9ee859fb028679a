/** `faas run` and `faas sandbox` (the compiled CLI as a child process) against a real gateway and Docker. */
import crypto from 'node:crypto';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import { createServer } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { FaasClient } from '@faas/sdk';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { BIN, ROOT, buildCli } from './build.js';


let gw: TestGateway;
let client: FaasClient;
const sandboxes: string[] = [];

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `faas ARGS` with FAAS_URL set to the test gateway. */
function faas(args: string[], opts: { env?: Record<string, string>; input?: string } = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      cwd: ROOT,
      env: { ...process.env, FAAS_URL: gw.url, ...opts.env },
      stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    if (opts.input !== undefined) child.stdin?.end(opts.input);
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  await new Promise((r) => server.close(r));
  return port;
}

beforeAll(async () => {
  buildCli();
  gw = await startTestGateway();
  client = new FaasClient({ baseUrl: gw.url });
});
afterEach(async () => {
  for (const id of sandboxes.splice(0)) await client.containers.delete(id).catch(() => undefined);
});
afterAll(async () => {
  await gw?.close();
});

describe('faas run', () => {
  it('prints the output and exits with the command\'s exit code', async () => {
    const r = await faas(['run', '--', 'sh', '-c', 'echo hi; exit 4']);
    expect(r.stdout).toBe('hi\n');
    expect(r.stderr).toBe('');
    expect(r.code).toBe(4);
  });

  it('keeps stdout and stderr apart', async () => {
    const r = await faas(['run', '--', 'sh', '-c', 'echo to-out; echo to-err >&2']);
    expect(r.stdout).toBe('to-out\n');
    expect(r.stderr).toBe('to-err\n');
    expect(r.code).toBe(0);
  });

  it('passes env, workdir and stdin', async () => {
    const r = await faas(['run', '-e', 'A=1', '--env', 'B=two', '--workdir', '/tmp', '-i', '--', 'sh', '-c', 'echo "$A $B $(pwd)"; cat'], { input: 'piped' });
    expect(r.stdout).toBe('1 two /tmp\npiped');
    expect(r.code).toBe(0);
  });

  it('copies local files in with --file, keeping their permission bits, to their name or to DEST', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'faas-cli-files-'));
    try {
      fs.writeFileSync(path.join(dir, 'job.sh'), '#!/bin/sh\necho "job ran with $1"\n', { mode: 0o755 });
      fs.writeFileSync(path.join(dir, 'data.csv'), 'a,b\n');
      const r = await faas(['run', '-f', path.join(dir, 'job.sh'), '--file', `${path.join(dir, 'data.csv')}=/data/in.csv`, '--', 'sh', '-c', './job.sh x && cat /data/in.csv']);
      expect(r).toMatchObject({ code: 0, stdout: 'job ran with x\na,b\n' });
      const missing = await faas(['run', '-f', path.join(dir, 'nope'), '--', 'true']);
      expect(missing.code).toBe(2);
      expect(missing.stderr).toContain('no such file');
      const folder = await faas(['run', '-f', dir, '--', 'true']);
      expect(folder.code).toBe(2);
      expect(folder.stderr).toContain('not a regular file');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('--json prints the result object', async () => {
    const r = await faas(['run', '--json', '--', 'sh', '-c', 'echo hi; echo e >&2; exit 2']);
    const result = JSON.parse(r.stdout);
    expect(result).toMatchObject({ exitCode: 2, stdout: 'hi\n', stderr: 'e\n', timedOut: false });
    expect(r.code).toBe(2);
  });

  it('--mode persistent keeps the sandbox and names it', async () => {
    const r = await faas(['run', '--mode', 'persistent', '-e', 'K=v', '--', 'sh', '-c', 'echo "$K" > f; cat f']);
    const id = /sandbox (\S+) kept/.exec(r.stderr)?.[1];
    expect(id, r.stderr).toBeDefined();
    sandboxes.push(id!);
    expect(r).toMatchObject({ code: 0, stdout: 'v\n' });
    expect((await client.containers.exec(id!, 'cat f')).stdout).toBe('v\n');
    const json = JSON.parse((await faas(['run', '--json', '--mode', 'persistent', '--', 'true'])).stdout) as { containerId: string };
    sandboxes.push(json.containerId);
    expect(json.containerId).toMatch(/\S/);
  });

  it('--mode branched points to faas fork, not to an HTTP route', async () => {
    const r = await faas(['run', '--mode', 'branched', '--', 'true']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('faas fork PARENT -- COMMAND');
  });

  it('reports a timeout on stderr', async () => {
    const r = await faas(['run', '--timeout', '300', '--', 'sleep', '5']);
    expect(r.stderr).toContain('timed out');
    expect(r.code).not.toBe(0);
  });

  it('rejects an unknown option in one line', async () => {
    const r = await faas(['run', '--bogus', '--', 'true']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^faas run: Unknown option '--bogus'/);
    expect(r.stderr).not.toContain('    at ');
  });

  it('rejects a bad option value naming the option', async () => {
    const r = await faas(['run', '--memory', '1', '--', 'true']);
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/^faas run: invalid --memory: /);
    const noCmd = await faas(['run']);
    expect(noCmd.code).toBe(2);
    expect(noCmd.stderr).toContain('missing the command');
    // A value starting with "-" is taken for an option: say how to give it.
    const negative = await faas(['run', '--timeout', '-5', '--', 'true']);
    expect(negative).toMatchObject({ code: 2, stderr: 'faas run: --timeout needs a value; for one starting with "-" write --timeout=VALUE; run `faas run --help` for usage\n' });
  });

  it('says in one line when the gateway cannot be reached, exit 1', async () => {
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const r = await faas(['run', '--url', url, '--', 'true']);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`faas run: cannot reach the gateway at ${url}: connect ECONNREFUSED 127.0.0.1:${port}\n`);
    const viaEnv = await faas(['sandbox', 'ls'], { env: { FAAS_URL: url } });
    expect(viaEnv.code).toBe(1);
    expect(viaEnv.stderr).toBe(`faas sandbox: cannot reach the gateway at ${url}: connect ECONNREFUSED 127.0.0.1:${port}\n`);
  });

  it('--help', async () => {
    for (const args of [['run', '--help'], ['sandbox', '--help'], ['sandbox', 'exec', '--help'], ['shell', '--help'], ['attach', '--help']]) {
      const r = await faas(args);
      expect(r.code, args.join(' ')).toBe(0);
      expect(r.stdout).toMatch(/^Usage: faas /);
    }
  });
});

describe('faas sandbox', () => {
  it('create, ls, get, exec, stop, resume, rm', async () => {
    const created = await faas(['sandbox', 'create', '--memory', '128', '-e', 'X=y']);
    expect(created.code).toBe(0);
    const id = created.stdout.trim();
    sandboxes.push(id);
    expect(id).toMatch(/^\S+$/);

    const ls = await faas(['sandbox', 'ls']);
    expect(ls.stdout).toMatch(/^ID\s+STATUS\s+IMAGE/);
    expect(ls.stdout).toContain(id);
    const lsJson = JSON.parse((await faas(['sandbox', 'list', '--json'])).stdout) as Array<{ id: string; status: string }>;
    expect(lsJson.find((s) => s.id === id)?.status).toBe('running');

    const get = await faas(['sandbox', 'get', id]);
    expect(get.stdout).toMatch(/status:\s+running/);
    expect(get.stdout).toMatch(/memory:\s+128 MiB/);
    expect(JSON.parse((await faas(['sandbox', 'get', id, '--json'])).stdout)).toMatchObject({ id, env: { X: 'y' } });

    const exec = await faas(['sandbox', 'exec', id, '--', 'sh', '-c', 'echo "$X" > f; cat f; echo err >&2; exit 6']);
    expect(exec).toMatchObject({ code: 6, stdout: 'y\n', stderr: 'err\n' });
    const execJson = await faas(['sandbox', 'exec', '--json', id, '--', 'cat', 'f']);
    expect(JSON.parse(execJson.stdout)).toMatchObject({ exitCode: 0, stdout: 'y\n' });

    expect((await faas(['sandbox', 'stop', id])).stdout).toBe(`${id} stopped\n`);
    const stoppedExec = await faas(['sandbox', 'exec', id, '--', 'true']);
    expect(stoppedExec.code).toBe(1);
    expect(stoppedExec.stderr).toContain('(conflict)');
    expect(JSON.parse((await faas(['sandbox', 'resume', id, '--json'])).stdout)).toMatchObject({ id, status: 'running' });
    // Its history shows what happened to it, and why it stopped.
    const history = (await faas(['sandbox', 'get', id])).stdout;
    expect(history).toMatch(/^lifecycle:$/m);
    expect(history).toMatch(/^ {2}\S+ {2}created image="faas\/busybox:latest"$/m);
    expect(history).toMatch(/^ {2}\S+ {2}stopped reason="request"$/m);
    expect(history).toMatch(/^ {2}\S+ {2}resumed$/m);

    const rm = await faas(['sandbox', 'rm', id]);
    expect(rm).toMatchObject({ code: 0, stdout: `${id}\n` });
    const gone = await faas(['sandbox', 'get', id]);
    expect(gone.code).toBe(1);
    expect(gone.stderr.trim().split('\n')).toHaveLength(1);
    expect(gone.stderr).toContain('(not_found)');
  });

  it('rejects an unknown subcommand', async () => {
    const r = await faas(['sandbox', 'frobnicate']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^faas sandbox: unknown subcommand "frobnicate"/);
  });
});

describe('faas attach', () => {
  it('prints the sandbox\'s events as lines until Ctrl-C', async () => {
    const box = await client.containers.create();
    sandboxes.push(box.id);
    const child = spawn(process.execPath, [BIN, 'attach', box.id], { cwd: ROOT, env: { ...process.env, FAAS_URL: gw.url }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const exited = new Promise<number | null>((r) => child.on('close', (code) => r(code)));
    // It prints only what happens once it is connected, and a CLI can take seconds to start on a loaded machine:
    // run a probe until its output shows up.
    for (let i = 0; !out.includes('attach-probe'); i++) {
      if (i >= 100) throw new Error(`faas attach printed no probe output:\n${out}${err}`);
      await client.containers.exec(box.id, 'echo attach-probe');
      await new Promise((r) => setTimeout(r, 200));
    }
    const stream = await box.stream();
    const execId = await stream.exec('echo attached-line; exit 3');
    for await (const ev of stream) if (ev.type === 'exit' && ev.exec_id === execId) break;
    await stream.close();
    const deadline = Date.now() + 5000;
    while (!/exit \[.*\]: code 3/.test(out) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    child.kill('SIGINT');
    expect(await exited).toBe(0);
    expect(err).toBe('');
    expect(out).toMatch(new RegExp(`stdout \\[${execId.slice(0, 12)}\\]: attached-line`));
    expect(out).toMatch(/exit \[.*\]: code 3/);
  });
});

describe('faas sandbox cp', () => {
  /** Like faas(), with stdout kept as bytes and stdin given as bytes. */
  function faasBytes(args: string[], input?: Buffer): Promise<{ code: number | null; stdout: Buffer; stderr: string }> {
    return new Promise((resolve, reject) => {
      const child = spawn(process.execPath, [BIN, ...args], {
        cwd: ROOT,
        env: { ...process.env, FAAS_URL: gw.url },
        stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
      });
      const out: Buffer[] = [];
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => out.push(d));
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      if (input !== undefined) child.stdin?.end(input);
      child.on('error', reject);
      child.on('close', (code) => resolve({ code, stdout: Buffer.concat(out), stderr }));
    });
  }

  it('copies files in (keeping their permission bits) and out (to a file, into a folder, or to stdout)', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'faas-cli-cp-'));
    try {
      const id = (await client.containers.create()).id;
      sandboxes.push(id);
      const bytes = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
      const local = path.join(dir, 'tool.bin');
      fs.writeFileSync(local, bytes);
      fs.chmodSync(local, 0o750);

      const into = await faas(['sandbox', 'cp', local, `${id}:/opt/bin/tool.bin`]);
      expect(into).toMatchObject({ code: 0, stdout: `${id}:/opt/bin/tool.bin\n`, stderr: '' });
      // A PATH ending in "/" (or none at all) is a folder: the file keeps its name there.
      expect((await faas(['sandbox', 'cp', local, `${id}:sub/`])).stdout).toBe(`${id}:/workspace/sub/tool.bin\n`);
      expect(JSON.parse((await faas(['sandbox', 'cp', '--json', local, `${id}:`])).stdout)).toEqual({ path: '/workspace/tool.bin', size: 256, mode: 0o750 });
      const inside = await client.containers.exec(id, 'stat -c %a /opt/bin/tool.bin sub/tool.bin tool.bin; md5sum < /opt/bin/tool.bin');
      expect(inside.stdout).toBe(`750\n750\n750\n${crypto.createHash('md5').update(bytes).digest('hex')}  -\n`);

      // Out to stdout, byte for byte.
      const stdout = await faasBytes(['sandbox', 'cp', `${id}:/opt/bin/tool.bin`, '-']);
      expect(stdout.code).toBe(0);
      expect(stdout.stdout.equals(bytes)).toBe(true);
      // Out to a new file (its mode within the umask) and into a folder.
      const outFile = path.join(dir, 'copy.bin');
      expect((await faas(['sandbox', 'cp', `${id}:tool.bin`, outFile])).stdout).toBe(`${outFile}\n`);
      expect(fs.readFileSync(outFile).equals(bytes)).toBe(true);
      expect(fs.statSync(outFile).mode & 0o777).toBe(0o750 & ~process.umask());
      const sub = path.join(dir, 'sub');
      fs.mkdirSync(sub);
      expect((await faas(['sandbox', 'cp', `${id}:/opt/bin/tool.bin`, sub])).stdout).toBe(`${path.join(sub, 'tool.bin')}\n`);
      expect(fs.readFileSync(path.join(sub, 'tool.bin')).equals(bytes)).toBe(true);

      // In from stdin.
      const piped = await faasBytes(['sandbox', 'cp', '-', `${id}:piped.bin`], bytes);
      expect(piped.code).toBe(0);
      expect(Buffer.from(await client.containers.readFile(id, 'piped.bin')).equals(bytes)).toBe(true);
      // Nothing but the copies is left in the local folder (no partial files).
      expect(fs.readdirSync(dir).sort()).toEqual(['copy.bin', 'sub', 'tool.bin']);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('answers usage errors with exit 2 and failures with exit 1, in one line', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'faas-cli-cp-'));
    try {
      const id = (await client.containers.create()).id;
      sandboxes.push(id);
      for (const args of [['sandbox', 'cp', 'only-one'], ['sandbox', 'cp', 'a', 'b'], ['sandbox', 'cp', `${id}:a`, `${id}:b`], ['sandbox', 'cp', `${id}:`, path.join(dir, 'x')]]) {
        const r = await faas(args);
        expect(r.code, args.join(' ')).toBe(2);
        expect(r.stderr.trim().split('\n'), args.join(' ')).toHaveLength(1);
        expect(r.stderr).toMatch(/^faas sandbox: /);
      }
      const failures: Array<[string[], RegExp]> = [
        [['sandbox', 'cp', `${id}:/nope`, path.join(dir, 'x')], new RegExp(`no file at /nope in sandbox ${id} \\(not_found\\)`)],
        [['sandbox', 'cp', `${id}:/etc`, path.join(dir, 'x')], /is a directory; list it with an exec of ls \(conflict\)/],
        [['sandbox', 'cp', path.join(dir, 'missing'), `${id}:x`], /missing: no such file/],
        [['sandbox', 'cp', dir, `${id}:x`], /not a regular file/],
        [['sandbox', 'cp', `${id}:/etc/hostname`, path.join(dir, 'no-folder', 'x')], /failed: no folder/],
      ];
      for (const [args, message] of failures) {
        const r = await faas(args);
        expect(r.code, args.join(' ')).toBe(1);
        expect(r.stderr.trim().split('\n'), args.join(' ')).toHaveLength(1);
        expect(r.stderr, args.join(' ')).toMatch(message);
      }
      expect(fs.readdirSync(dir)).toEqual([]);
      const help = await faas(['sandbox', 'cp', '--help']);
      expect(help.code).toBe(0);
      expect(help.stdout).toMatch(/^Usage: faas sandbox cp ID:PATH LOCAL/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
