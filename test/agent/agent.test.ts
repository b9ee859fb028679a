import { createHash } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';

import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';

import { AgentClient, type FileEvent, type ProcessEvent } from '../../src/runtimes/agent/index.js';
import { FrameDecoder, FrameType, encodeFrame, encodePing, type Frame } from '../../src/runtimes/agent/protocol.js';
import { buildAgent, collect, connect, pidAlive, startAgent, type RunningAgent } from './helpers.js';
import { waitFor } from '../helpers/wait.js';

let agent: RunningAgent;
let clients: AgentClient[] = [];

async function client(): Promise<AgentClient> {
  const c = await connect(agent);
  clients.push(c);
  return c;
}

beforeAll(() => buildAgent());
beforeEach(async () => {
  agent = await startAgent();
});
afterEach(async () => {
  for (const c of clients) c.close();
  clients = [];
  await agent.stop();
});

describe('faas-agent: processes', () => {
  it('runs a command with separate stdout/stderr and an exit code', async () => {
    const c = await client();
    const p = c.spawn({ argv: ['sh', '-c', 'echo out; echo err >&2; exit 3'] });
    const res = collect(p); // listeners must be attached before awaiting anything
    const pid = await p.started;
    expect(pid).toBeGreaterThan(1);
    const r = await res;
    expect(r.stdout.toString()).toBe('out\n');
    expect(r.stderr.toString()).toBe('err\n');
    expect(r).toMatchObject({ exitCode: 3, signal: null, oomKilled: false });
  });

  it('passes env and cwd, sets FAAS_EVENTS and a default PATH', async () => {
    const c = await client();
    fs.mkdirSync(path.join(agent.workspace, 'sub'));
    const r = await collect(c.spawn({ argv: ['sh', '-c', 'echo "$FOO|$FAAS_EVENTS|$(pwd)"'], env: { FOO: 'bar baz' }, cwd: 'sub' }));
    expect(r.stdout.toString().trim()).toBe(`bar baz|${agent.events}|${path.join(agent.workspace, 'sub')}`);
    const r2 = await collect(c.spawn({ argv: ['pwd'] }));
    expect(r2.stdout.toString().trim()).toBe(agent.workspace);
    const r3 = await collect(c.spawn({ argv: ['/bin/sh', '-c', 'echo $PATH'], env: { PATH: '/x' } }));
    expect(r3.stdout.toString().trim()).toBe('/x');
    const r4 = await collect(c.spawn({ argv: ['cat', '/proc/self/oom_score_adj'] }));
    expect(r4.stdout.toString().trim()).toBe('1000');
  });

  it('keeps the order of many lines', async () => {
    const c = await client();
    const r = await collect(c.spawn({ argv: ['sh', '-c', 'i=0; while [ $i -lt 5000 ]; do echo line$i; i=$((i+1)); done'] }));
    const lines = r.stdout.toString().trim().split('\n');
    expect(lines).toHaveLength(5000);
    lines.forEach((l, i) => expect(l).toBe(`line${i}`));
  });

  it('feeds stdin and delivers end of input', async () => {
    const c = await client();
    const p = c.spawn({ argv: ['cat'], stdin: true });
    const res = collect(p);
    p.write('hello ');
    p.write(Buffer.alloc(300_000, 'x'));
    p.closeStdin();
    const r = await res;
    expect(r.exitCode).toBe(0);
    expect(r.stdout.length).toBe(6 + 300_000);
    expect(r.stdout.subarray(0, 6).toString()).toBe('hello ');
    // without stdin: /dev/null, cat ends at once
    const r2 = await collect(c.spawn({ argv: ['cat'] }));
    expect(r2.exitCode).toBe(0);
  });

  it('does not let a process that ignores stdin block control frames', async () => {
    const c = await client();
    const p = c.spawn({ argv: ['sleep', '30'], stdin: true });
    await p.started;
    const msgs: string[] = [];
    p.on('error_message', (m: string) => msgs.push(m));
    p.write(Buffer.alloc(4 * 1024 * 1024));
    await new Promise((r) => setTimeout(r, 100));
    const t0 = Date.now();
    p.signal('KILL', { tree: true });
    expect((await p.exited).signal).toBe('SIGKILL');
    expect(Date.now() - t0).toBeLessThan(3000);
    expect(msgs.join()).toMatch(/stdin of exec \d+ is full/);
    expect(await c.ping()).toBeLessThan(100);
  });

  it('survives random garbage on a connection', async () => {
    const good = await client();
    let seed = 12345;
    const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 16) & 0xff;
    for (let i = 0; i < 30; i++) {
      const s = net.createConnection(agent.socket);
      s.on('error', () => undefined);
      s.on('data', () => undefined);
      const done = new Promise<void>((r) => s.on('close', () => r()));
      const junk = Buffer.alloc(64 + (i % 7) * 100, 0).map(() => rnd());
      if (i % 3 === 0) junk[0] = 1 + (i % 9); // valid host->agent type, random rest
      s.end(junk);
      await done;
    }
    expect(await good.ping()).toBeGreaterThan(0);
    expect((await collect(good.spawn({ argv: ['echo', 'alive'] }))).stdout.toString()).toBe('alive\n');
  });

  it('streams 50 MiB intact', async () => {
    const c = await client();
    const p = c.spawn({ argv: ['sh', '-c', 'head -c 52428800 /dev/urandom | tee /dev/stderr | sha256sum >&2'] });
    const h = createHash('sha256');
    let n = 0;
    let errText = Buffer.alloc(0);
    const errChunks: Buffer[] = [];
    p.on('stdout', (b: Buffer) => {
      h.update(b);
      n += b.length;
    });
    p.on('stderr', (b: Buffer) => errChunks.push(b));
    const e = await p.exited;
    errText = Buffer.concat(errChunks);
    expect(e.exitCode).toBe(0);
    expect(n).toBe(0);
    // stdout went to sha256sum; stderr carries the data followed by the hash line
    expect(errText.length).toBe(52428800 + 68);
    const data = errText.subarray(0, 52428800);
    const want = errText.subarray(52428800).toString().split(' ')[0];
    expect(createHash('sha256').update(data).digest('hex')).toBe(want);
    expect(h.digest('hex')).toBeTypeOf('string');
  });

  it('reports death by signal as 128+N with the signal name', async () => {
    const c = await client();
    const p = c.spawn({ argv: ['sleep', '30'] });
    await p.started;
    p.signal('TERM');
    expect(await p.exited).toEqual({ exitCode: 143, signal: 'SIGTERM', oomKilled: false });
    const p2 = c.spawn({ argv: ['sh', '-c', 'kill -KILL $$'] });
    expect(await p2.exited).toMatchObject({ exitCode: 137, signal: 'SIGKILL' });
    expect(() => p2.signal('SIGBOGUS')).toThrow(/unknown signal/);
  });

  it('reports a failed exec as 127 with a message, and 126 for a non-executable', async () => {
    const c = await client();
    const p = c.spawn({ argv: ['/no/such/program', 'x'] });
    const msgs: string[] = [];
    p.on('error_message', (m: string) => msgs.push(m));
    await expect(p.exited).resolves.toEqual({ exitCode: 127, signal: null, oomKilled: false });
    expect(msgs.join()).toMatch(/\/no\/such\/program.*No such file or directory/);
    await expect(p.started).rejects.toThrow(/No such file/);
    fs.writeFileSync(path.join(agent.workspace, 'noexec'), 'echo hi\n', { mode: 0o644 });
    const p2 = c.spawn({ argv: ['./noexec'] });
    expect((await p2.exited).exitCode).toBe(126);
    expect(p2.errorMessage).toMatch(/noexec.*(Permission denied)/);
    const p3 = c.spawn({ argv: ['true'], cwd: '/no/such/dir' });
    expect((await p3.exited).exitCode).toBe(126);
    expect(p3.errorMessage).toMatch(/\/no\/such\/dir/);
    // the agent still works
    expect((await collect(c.spawn({ argv: ['echo', 'ok'] }))).stdout.toString()).toBe('ok\n');
  });

  it('refuses a duplicate exec id', async () => {
    const c = await client();
    const p = c.spawn({ argv: ['sleep', '5'], id: 500 });
    await p.started;
    expect(() => c.spawn({ argv: ['true'], id: 500 })).toThrow(/in use/);
    const c2 = await client();
    const dup = c2.spawn({ argv: ['true'], id: 500 });
    await expect(dup.exited).rejects.toThrow(/already in use/);
    p.signal('KILL');
    expect((await p.exited).signal).toBe('SIGKILL');
  });

  it('tree-kills sh -c "sleep 100 & sleep 100" promptly', async () => {
    const c = await client();
    const p = c.spawn({ argv: ['sh', '-c', 'sleep 100 & setsid sleep 100 & sleep 100'] });
    const pid = await p.started;
    await new Promise((r) => setTimeout(r, 150));
    const before = await c.listProcesses();
    const kids = before.filter((x) => x.ppid === pid).map((x) => x.pid);
    expect(kids.length).toBeGreaterThanOrEqual(2);
    const t0 = Date.now();
    p.signal('SIGKILL', { tree: true });
    const e = await p.exited;
    expect(Date.now() - t0).toBeLessThan(1000);
    expect(e.signal).toBe('SIGKILL');
    await waitFor('children to die', () => kids.every((k) => !pidAlive(k)), 1000);
  });

  it('sends EXIT ~50 ms after the reap when a grandchild keeps the pipes open', async () => {
    const c = await client();
    const t0 = Date.now();
    const r = await collect(c.spawn({ argv: ['sh', '-c', 'echo before; sleep 3 & exit 0'] }));
    expect(Date.now() - t0).toBeLessThan(1000);
    expect(r.stdout.toString()).toBe('before\n');
    expect(r.exitCode).toBe(0);
  });
});

describe('faas-agent: pty', () => {
  it('runs on a terminal, resizes, and ^C interrupts', async () => {
    const c = await client();
    const r = await collect(c.spawn({ argv: ['tty'], pty: { cols: 80, rows: 24 } }));
    expect(r.stdout.toString().trim()).toMatch(/^\/dev\/pts\/\d+$/);

    const p = c.spawn({ argv: ['sh', '-c', 'stty size; read x; stty size; sleep 30; echo after'], pty: { cols: 100, rows: 30 } });
    let out = '';
    p.on('stdout', (b: Buffer) => (out += b.toString()));
    await waitFor('initial stty size', () => out.includes('30 100'), 5000);
    p.resize(132, 50);
    p.write('\n');
    await waitFor('resized stty size', () => out.includes('50 132'), 5000);
    await new Promise((res) => setTimeout(res, 100));
    p.write('\x03');
    const e = await p.exited;
    expect(e.signal).toBe('SIGINT');
    expect(out).not.toContain('after');
  });
});

describe('faas-agent: events', () => {
  it('emits process events to subscribers', async () => {
    const c = await client();
    const events: ProcessEvent[] = [];
    c.on('process_event', (e: ProcessEvent) => events.push(e));
    c.subscribe();
    await c.ping();
    const p = c.spawn({ argv: ['sh', '-c', 'exit 4'] });
    const pid = await p.started;
    await p.exited;
    await waitFor('process events', () => events.length >= 2, 2000);
    expect(events[0]).toEqual({ pid, command: 'sh -c exit 4', event: 'started', execId: p.id });
    expect(events[1]).toEqual({ pid, command: 'sh -c exit 4', event: 'exited', execId: p.id, exitCode: 4, signal: null });
  });

  it('emits file events for create, modify, delete, rename and nested directories', async () => {
    const c = await client();
    const events: FileEvent[] = [];
    c.on('file_event', (e: FileEvent) => events.push(e));
    c.subscribe();
    await c.ping();
    const has = (ev: Partial<FileEvent>) => events.some((e) => Object.entries(ev).every(([k, v]) => e[k as keyof FileEvent] === v));
    const run = async (cmd: string) => expect((await c.spawn({ argv: ['sh', '-c', cmd] }).exited).exitCode).toBe(0);

    await run('echo hi > f.txt');
    await waitFor('create+modify', () => has({ path: 'f.txt', event: 'created' }) && has({ path: 'f.txt', event: 'modified' }), 2000);
    await run('mv f.txt g.txt');
    await waitFor('rename', () => has({ path: 'g.txt', event: 'renamed', from: 'f.txt' }), 2000);
    await run('rm g.txt');
    await waitFor('delete', () => has({ path: 'g.txt', event: 'deleted' }), 2000);
    await run('mkdir -p a/b && touch a/b/c');
    await waitFor('nested', () => has({ path: 'a', event: 'created', isDir: true }) && has({ path: 'a/b', event: 'created', isDir: true }) && has({ path: 'a/b/c', event: 'created' }), 2000);
    await run('mv a/b a/z && echo x > a/z/d');
    await waitFor('dir rename', () => has({ path: 'a/z', event: 'renamed', from: 'a/b' }) && has({ path: 'a/z/d', event: 'modified' }), 2000);
    const outside = path.join(agent.dir, 'outside');
    await run(`mkdir ${outside} && echo 1 > ${outside}/x && mv ${outside} moved-in && mv a ${agent.dir}/gone`);
    await waitFor('move in/out', () => has({ path: 'moved-in', event: 'created', isDir: true }) && has({ path: 'moved-in/x', event: 'created' }) && has({ path: 'a', event: 'deleted' }), 2000);
    // nothing from the moved-out directory afterwards
    events.length = 0;
    await run(`touch ${agent.dir}/gone/new && touch marker`);
    await waitFor('marker', () => has({ path: 'marker', event: 'created' }), 2000);
    expect(events.filter((e) => e.path.includes('new'))).toEqual([]);
  });

  it('forwards custom events written to $FAAS_EVENTS', async () => {
    const c = await client();
    const lines: string[] = [];
    const errors: string[] = [];
    c.on('custom', (l: string) => lines.push(l));
    c.on('agent_error', (m: string) => errors.push(m));
    c.subscribe();
    await c.ping();
    const p = c.spawn({ argv: ['sh', '-c', `echo '{"name":"metrics","data":{"loss":0.5}}' > "$FAAS_EVENTS"; printf 'a\\nb\\n' > "$FAAS_EVENTS"; head -c 70000 /dev/zero | tr '\\0' x > "$FAAS_EVENTS"; echo >> "$FAAS_EVENTS"; echo last > "$FAAS_EVENTS"`] });
    expect((await p.exited).exitCode).toBe(0);
    await waitFor('custom events', () => lines.includes('last'), 2000);
    expect(lines).toEqual(['{"name":"metrics","data":{"loss":0.5}}', 'a', 'b', 'last']);
    expect(JSON.parse(lines[0]!)).toEqual({ name: 'metrics', data: { loss: 0.5 } });
    expect(errors.join()).toMatch(/longer than 65536/);
  });
});

describe('faas-agent: requests and connections', () => {
  it('answers ping and lists processes', async () => {
    const c = await client();
    const rtt = await c.ping();
    expect(rtt).toBeGreaterThan(0);
    expect(rtt).toBeLessThan(1000);
    const p = c.spawn({ argv: ['sleep', '10'] });
    const pid = await p.started;
    const list = await c.listProcesses();
    const me = list.find((x) => x.pid === pid);
    expect(me).toEqual({ pid, ppid: agent.proc.pid, command: 'sleep 10', execId: p.id });
    expect(list.find((x) => x.pid === agent.proc.pid)?.command).toContain('faas-agent');
    p.signal('KILL');
    await p.exited;
  });

  it('serves two connections at once and routes output to the owner', async () => {
    const c1 = await client();
    const c2 = await client();
    const [r1, r2] = await Promise.all([
      collect(c1.spawn({ argv: ['sh', '-c', 'sleep 0.1; echo one'], id: 1 })),
      collect(c2.spawn({ argv: ['sh', '-c', 'echo two'], id: 2 })),
    ]);
    expect(r1.stdout.toString()).toBe('one\n');
    expect(r2.stdout.toString()).toBe('two\n');
  });

  it('keeps processes of a closed connection running, and ATTACH takes them over', async () => {
    const c1 = await client();
    const p = c1.spawn({ argv: ['sh', '-c', 'read x; echo got $x'], stdin: true, id: 77 });
    await p.started;
    c1.close();
    await expect(p.exited).rejects.toThrow(/agent connection to .* was lost/);
    const c2 = await client();
    const q = c2.attach(77);
    const res = collect(q);
    await q.started;
    q.write('hello\n');
    const r = await res;
    expect(r.stdout.toString()).toBe('got hello\n');
    // an exec that finished while detached can still be collected
    const c3 = await client();
    const d = c3.spawn({ argv: ['sh', '-c', 'sleep 0.1; exit 5'], id: 78 });
    await d.started;
    c3.close();
    await new Promise((res2) => setTimeout(res2, 400));
    const c4 = await client();
    expect((await c4.attach(78).exited).exitCode).toBe(5);
    await expect(c4.attach(12345).exited).rejects.toThrow(/no such exec/);
    // attaching a live exec owned by another connection takes it over; the old owner is told
    const c5 = await client();
    const s = c5.spawn({ argv: ['sleep', '0.3'], id: 79 });
    await s.started;
    const t2 = c4.attach(79);
    await expect(s.exited).rejects.toThrow(/attached by another connection/);
    expect((await t2.exited).exitCode).toBe(0);
  });

  it('answers a malformed frame with ERROR, closes that connection, and keeps serving others', async () => {
    const good = await client();
    const frames: Frame[] = [];
    const raw = net.createConnection(agent.socket);
    const dec = new FrameDecoder();
    const closed = new Promise<void>((r) => raw.on('close', () => r()));
    raw.on('data', (d: Buffer) => frames.push(...dec.push(d)));
    raw.on('error', () => undefined);
    await new Promise<void>((r) => raw.once('connect', () => r()));
    raw.write(encodePing(1, 5n));
    raw.write(Buffer.from([0x7e, 0, 0, 0, 9, 0, 0, 0, 0]));
    await closed;
    expect(frames.map((f) => f.type)).toEqual([FrameType.PONG, FrameType.ERROR]);
    expect(frames[1]!.payload.toString()).toMatch(/unknown frame type/);

    for (const bad of [
      Buffer.from([FrameType.PING, 0, 0, 0, 1, 0xff, 0, 0, 0]), // > 16 MiB
      encodeFrame(FrameType.SPAWN, 3, Buffer.from([0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 50])), // string past the end
      encodeFrame(FrameType.SIGNAL, 3, Buffer.from([0, 0])), // short
    ]) {
      const s = net.createConnection(agent.socket);
      const d2 = new FrameDecoder();
      const got: Frame[] = [];
      s.on('data', (d: Buffer) => got.push(...d2.push(d)));
      s.on('error', () => undefined);
      const done = new Promise<void>((r) => s.on('close', () => r()));
      s.write(bad);
      await done;
      expect(got.map((f) => f.type)).toEqual([FrameType.ERROR]);
    }
    // truncated frame then hang-up
    const t = net.createConnection(agent.socket);
    t.on('error', () => undefined);
    t.end(Buffer.from([FrameType.STDIN, 0, 0, 0, 1, 0, 0, 0, 10, 1, 2]));
    await new Promise((r) => setTimeout(r, 50));

    expect(await good.ping()).toBeGreaterThan(0);
    expect((await collect(good.spawn({ argv: ['echo', 'still'] }))).stdout.toString()).toBe('still\n');
  });

  it('refuses to connect through a non-socket path', async () => {
    const link = path.join(agent.dir, 'link.sock');
    fs.symlinkSync(agent.socket, link);
    await expect(AgentClient.connect(link, { timeoutMs: 200 })).rejects.toThrow(/not a unix socket/);
    await expect(AgentClient.connect(path.join(agent.dir, 'nope.sock'), { timeoutMs: 200 })).rejects.toThrow(/within 200 ms/);
  });

  it('rejects live processes when the agent goes away', async () => {
    const c = await client();
    const p = c.spawn({ argv: ['sleep', '30'] });
    await p.started;
    const closed = new Promise((r) => c.once('close', r));
    agent.proc.kill('SIGKILL');
    await expect(p.exited).rejects.toThrow(new RegExp(`agent connection to ${agent.socket} was lost`));
    await closed;
    await expect(c.ping()).rejects.toThrow(/was lost/);
  });

  it('exits 0 on SIGTERM, killing its children', async () => {
    const c = await client();
    const p = c.spawn({ argv: ['sh', '-c', 'sleep 100 & sleep 100'] });
    const pid = await p.started;
    await new Promise((r) => setTimeout(r, 100));
    const kids = (await c.listProcesses()).filter((x) => x.ppid === pid).map((x) => x.pid);
    const exit = new Promise<number | null>((r) => agent.proc.once('exit', (code) => r(code)));
    agent.proc.kill('SIGTERM');
    expect(await exit).toBe(0);
    await waitFor('children killed', () => !pidAlive(pid) && kids.every((k) => !pidAlive(k)), 2000);
    expect(fs.existsSync(agent.socket)).toBe(false);
  });
});
