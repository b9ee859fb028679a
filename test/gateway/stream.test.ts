import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { TestStream } from '../helpers/ws.js';

let gw: TestGateway;
let id: string;

beforeAll(async () => {
  gw = await startTestGateway({ heartbeatMs: 300, env: { FAAS_WS_MAX_BUFFERED_BYTES: String(8 * 1024 * 1024) } });
  id = (await api(gw.url, 'POST', '/api/v1/containers', {})).body.id;
});
afterAll(async () => {
  await gw?.close();
});

const isExit = (execId: string) => (e: { type: string; exec_id?: string }) => e.type === 'exit' && e.exec_id === execId;

describe('WebSocket stream', () => {
  it('exec streams ordered stdout then exit', async () => {
    const s = await TestStream.open(gw.url, id);
    s.send({ type: 'exec', command: 'for i in 1 2 3 4 5; do echo line$i; done; exit 7', exec_id: 'e1' });
    const exit = await s.waitFor(isExit('e1'));
    expect(exit).toMatchObject({ code: 7, signal: null });
    expect(s.stdout('e1')).toBe('line1\nline2\nline3\nline4\nline5\n');
    const started = s.of('process_event').find((e) => e.exec_id === 'e1' && e.event === 'started');
    expect(started?.command).toContain('for i in');
    s.close();
  });

  it('reports files written under /workspace', async () => {
    const s = await TestStream.open(gw.url, id);
    s.send({ type: 'exec', command: 'mkdir -p sub && echo hi > sub/new.txt' });
    const event = await s.waitFor((e) => e.type === 'file_event' && e.path === 'sub/new.txt' && e.event === 'created');
    expect(event).toMatchObject({ type: 'file_event', path: 'sub/new.txt', event: 'created' });
    s.close();
  });

  it('relays custom events written to $FAAS_EVENTS', async () => {
    const s = await TestStream.open(gw.url, id);
    s.send({ type: 'exec', command: `echo '{"name":"metrics","data":{"loss":0.5}}' > "$FAAS_EVENTS"` });
    const event = await s.waitFor((e) => e.type === 'custom' && e.name === 'metrics');
    expect(event).toMatchObject({ type: 'custom', name: 'metrics', data: { loss: 0.5 } });
    s.send({ type: 'exec', command: `echo 'not json' > "$FAAS_EVENTS"` });
    const bad = await s.waitFor((e) => e.type === 'error' && e.code === 'bad_custom_event');
    expect(bad).toMatchObject({ message: expect.stringContaining('not json') });
    s.close();
  });

  it('delivers stdin, including end of input, to cat', async () => {
    const s = await TestStream.open(gw.url, id);
    s.send({ type: 'exec', command: 'cat', exec_id: 'cat1' });
    await s.waitFor((e) => e.type === 'process_event' && e.exec_id === 'cat1' && e.event === 'started');
    s.send({ type: 'stdin', data: 'ping\n', exec_id: 'cat1' });
    await s.waitFor((e) => e.type === 'stdout' && e.exec_id === 'cat1');
    s.send({ type: 'stdin', data: 'last', eof: true });
    const exit = await s.waitFor(isExit('cat1'));
    expect(exit).toMatchObject({ code: 0 });
    expect(s.stdout('cat1')).toBe('ping\nlast');
    s.close();
  });

  it('takes commands in order: stdin sent right after exec reaches it', async () => {
    const s = await TestStream.open(gw.url, id);
    s.send({ type: 'exec', command: 'cat', exec_id: 'quick' });
    s.send({ type: 'stdin', data: 'no wait', exec_id: 'quick', eof: true });
    await s.waitFor(isExit('quick'));
    expect(s.stdout('quick')).toBe('no wait');
    expect(s.of('error')).toEqual([]);
    s.close();
  });

  it('closes streams with 1001 when the gateway shuts down', async () => {
    const other = await startTestGateway();
    try {
      const box = (await api(other.url, 'POST', '/api/v1/containers', {})).body.id;
      const s = await TestStream.open(other.url, box);
      await other.stop();
      for (let i = 0; i < 50 && !s.closed; i++) await new Promise((r) => setTimeout(r, 20));
      expect(s.closed?.code).toBe(1001);
    } finally {
      await other.close();
    }
  });

  it('runs a PTY, resizes it and delivers signals', async () => {
    const s = await TestStream.open(gw.url, id);
    s.send({ type: 'exec', command: 'stty size; read line; stty size; sleep 30', pty: true, cols: 100, rows: 30, exec_id: 'tty' });
    await s.waitFor((e) => e.type === 'stdout' && e.exec_id === 'tty' && s.stdout('tty').includes('30 100'));
    s.send({ type: 'resize', cols: 120, rows: 40, exec_id: 'tty' });
    s.send({ type: 'stdin', data: 'go\r', exec_id: 'tty' });
    await s.waitFor(() => s.stdout('tty').includes('40 120'));
    s.send({ type: 'signal', signal: 'SIGINT', exec_id: 'tty' });
    const exit = await s.waitFor(isExit('tty'));
    expect(exit).toMatchObject({ signal: 'SIGINT', code: 130 });
    s.close();
  });

  it('tells concurrent execs apart by exec_id', async () => {
    const s = await TestStream.open(gw.url, id);
    s.send({ type: 'exec', command: 'for i in 1 2 3; do echo a$i; sleep 0.05; done', exec_id: 'A' });
    s.send({ type: 'exec', command: 'for i in 1 2 3; do echo b$i; sleep 0.05; done', exec_id: 'B' });
    await Promise.all([s.waitFor(isExit('A')), s.waitFor(isExit('B'))]);
    expect(s.stdout('A')).toBe('a1\na2\na3\n');
    expect(s.stdout('B')).toBe('b1\nb2\nb3\n');
    s.close();
  });

  it('answers get_state with the processes', async () => {
    const s = await TestStream.open(gw.url, id);
    s.send({ type: 'exec', command: 'sleep 5', exec_id: 'sleeper' });
    await s.waitFor((e) => e.type === 'process_event' && e.exec_id === 'sleeper');
    s.send({ type: 'get_state' });
    const state = await s.waitFor((e) => e.type === 'custom' && e.name === 'state');
    const data = (state as { data: { id: string; status: string; processes: Array<{ command: string; exec_id?: string }> } }).data;
    expect(data.id).toBe(id);
    expect(data.status).toBe('running');
    expect(data.processes.some((p) => p.exec_id === 'sleeper')).toBe(true);
    s.send({ type: 'signal', signal: 'KILL', exec_id: 'sleeper' });
    await s.waitFor(isExit('sleeper'));
    s.close();
  });

  it('sends heartbeats', async () => {
    const s = await TestStream.open(gw.url, id);
    await s.waitFor((e) => e.type === 'heartbeat', 2000);
    s.close();
  });

  it('lets several clients watch one sandbox', async () => {
    const a = await TestStream.open(gw.url, id);
    const b = await TestStream.open(gw.url, id);
    a.send({ type: 'exec', command: 'echo shared', exec_id: 'shared' });
    await Promise.all([a.waitFor(isExit('shared')), b.waitFor(isExit('shared'))]);
    expect(b.stdout('shared')).toBe('shared\n');
    a.close();
    b.close();
  });

  it('answers bad commands with error events and stays usable', async () => {
    const s = await TestStream.open(gw.url, id);
    s.send('this is not json');
    expect(await s.waitFor((e) => e.type === 'error' && e.code === 'invalid_json')).toBeTruthy();
    s.send({ type: 'teleport' });
    const unknown = await s.waitFor((e) => e.type === 'error' && e.message.includes('teleport'));
    expect(unknown.type).toBe('error');
    s.send({ type: 'exec', command: '' });
    expect(await s.waitFor((e) => e.type === 'error' && e.message.includes('command'))).toBeTruthy();
    s.send({ type: 'stdin', data: 'x', exec_id: 'no-such-exec' });
    expect(await s.waitFor((e) => e.type === 'error' && e.message.includes('no-such-exec'))).toBeTruthy();
    s.send({ type: 'signal', signal: 'SIGBOGUS', exec_id: 'x' });
    s.send({ type: 'checkpoint' });
    expect(await s.waitFor((e) => e.type === 'error' && e.message.includes('checkpoint'))).toBeTruthy();
    s.send({ type: 'exec', command: 'echo still alive', exec_id: 'alive' });
    await s.waitFor(isExit('alive'));
    expect(s.stdout('alive')).toBe('still alive\n');
    s.close();
  });

  it('refuses a stream for an unknown sandbox with 404', async () => {
    await expect(TestStream.open(gw.url, 'sb-unknown')).rejects.toThrow(/404/);
  });

  it('disconnects a client that stops reading, without holding up the others', async () => {
    const slow = await TestStream.open(gw.url, id);
    const fast = await TestStream.open(gw.url, id);
    // Stop reading from the slow client's socket so the server's unsent bytes pile up.
    (slow.ws as unknown as { _socket: { pause(): void } })._socket.pause();
    fast.send({ type: 'exec', command: 'head -c 60000000 /dev/zero | tr "\\0" x', exec_id: 'flood' });
    await fast.waitFor(isExit('flood'), 30_000);
    expect(fast.of('stdout', 'flood').reduce((n, e) => n + e.data.length, 0)).toBe(60_000_000);
    (slow.ws as unknown as { _socket: { resume(): void } })._socket.resume();
    await new Promise((r) => setTimeout(r, 500));
    expect(slow.closed?.code).toBe(1013);
    fast.close();
  });

  it('stop command stops the sandbox', async () => {
    const other = (await api(gw.url, 'POST', '/api/v1/containers', {})).body.id;
    const s = await TestStream.open(gw.url, other);
    s.send({ type: 'stop' });
    await s.waitFor((e) => e.type === 'custom' && e.name === 'lifecycle');
    expect((await api(gw.url, 'GET', `/api/v1/containers/${other}`)).body.status).toBe('stopped');
    s.close();
    await api(gw.url, 'DELETE', `/api/v1/containers/${other}`);
  });
});
