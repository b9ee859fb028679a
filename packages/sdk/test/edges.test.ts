/**
 * Edge cases of the transport against tiny local servers (never the proof that a feature works: that is the job of
 * test/sdk against the real gateway).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocketServer } from 'ws';
import { ConnectionError, FaasClient, NotFoundError, TimeoutError, type StreamEvent } from '@faas/sdk';

const servers: Array<{ close(): unknown }> = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await new Promise((r) => { (s as Server).closeAllConnections?.(); s.close(); setTimeout(r, 10); });
});

function serve(handler: (req: IncomingMessage, res: ServerResponse) => void, port = 0): Promise<{ server: Server; url: string }> {
  const server = createServer(handler);
  servers.push(server);
  return new Promise((resolve) =>
    server.listen(port, '127.0.0.1', () => resolve({ server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` })),
  );
}

async function freePort(): Promise<number> {
  const { server } = await serve(() => undefined);
  const port = (server.address() as AddressInfo).port;
  await new Promise((r) => server.close(r));
  return port;
}

const RESULT = {
  id: 'x', mode: 'ephemeral', exit_code: 0, signal: null, stdout: 'ok', stderr: '', stdout_truncated: false,
  stderr_truncated: false, duration_ms: 1, timed_out: false, oom_killed: false,
};

describe('retry policy', () => {
  it('retries a POST whose connection was refused (nothing was sent)', async () => {
    const port = await freePort();
    const client = new FaasClient({ baseUrl: `http://127.0.0.1:${port}`, retries: 5, retryBaseMs: 100 });
    let hits = 0;
    setTimeout(() => void serve((_req, res) => { hits++; res.setHeader('content-type', 'application/json'); res.end(JSON.stringify(RESULT)); }, port), 120);
    const result = await client.execute({ command: 'true' });
    expect(result.stdout).toBe('ok');
    expect(hits).toBe(1);
  });

  it('gives up with a ConnectionError naming the URL and reason', async () => {
    const port = await freePort();
    const client = new FaasClient({ baseUrl: `http://127.0.0.1:${port}`, retries: 1, retryBaseMs: 1 });
    const err = await client.execute({ command: 'true' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConnectionError);
    expect((err as ConnectionError).message).toBe(`cannot reach the gateway at http://127.0.0.1:${port}: ${(err as ConnectionError).reason}`);
    expect((err as ConnectionError).reason).toContain('ECONNREFUSED');
  });

  it('retries GET on 503 but never a POST that reached the gateway', async () => {
    let gets = 0;
    let posts = 0;
    const { url } = await serve((req, res) => {
      if (req.method === 'GET') gets++;
      else posts++;
      res.statusCode = 503;
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ error: 'engine_unavailable', message: 'docker is down' }));
    });
    const client = new FaasClient({ baseUrl: url, retries: 2, retryBaseMs: 1 });
    await expect(client.containers.list()).rejects.toMatchObject({ name: 'EngineUnavailableError', status: 503, code: 'engine_unavailable' });
    await expect(client.containers.stopInfo('c1')).rejects.toMatchObject({ name: 'EngineUnavailableError' });
    expect(gets).toBe(3);
    expect(posts).toBe(1);
  });

  it('maps an error body to its class and reports a client-side deadline as TimeoutError', async () => {
    const { url } = await serve((req, res) => {
      if (req.url?.endsWith('/slow')) return; // never answers
      res.statusCode = 404;
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ error: 'not_found', message: 'no sandbox abc' }));
    });
    const client = new FaasClient({ baseUrl: url, timeoutMs: 200, retries: 0 });
    await expect(client.containers.get('abc')).rejects.toBeInstanceOf(NotFoundError);
    await expect(client.request('GET', '/slow')).rejects.toBeInstanceOf(TimeoutError);
  });
});

describe('NDJSON execution stream', () => {
  it('calls the callbacks live and assembles the result', async () => {
    const { url } = await serve((_req, res) => {
      res.setHeader('content-type', 'application/x-ndjson');
      res.write('{"type":"stdout","data":"a"}\n{"type":"stderr","da');
      setTimeout(() => res.end('ta":"b"}\n{"type":"exit","code":3,"exec_id":"e1","signal":null,"timed_out":false,"oom_killed":false}\n'), 20);
    });
    const seen: string[] = [];
    const result = await new FaasClient({ baseUrl: url }).execute({ command: 'x', onStdout: (d) => seen.push(`o:${d}`), onStderr: (d) => seen.push(`e:${d}`) });
    expect(seen).toEqual(['o:a', 'e:b']);
    expect(result).toMatchObject({ id: 'e1', exitCode: 3, stdout: 'a', stderr: 'b', timedOut: false });
  });

  it('throws ConnectionError when the connection drops before the exit event', async () => {
    const { url } = await serve((req, res) => {
      res.setHeader('content-type', 'application/x-ndjson');
      res.write('{"type":"stdout","data":"partial"}\n');
      setTimeout(() => req.socket.destroy(), 30);
    });
    const seen: string[] = [];
    const err = await new FaasClient({ baseUrl: url, retries: 0 }).execute({ command: 'x', onStdout: (d) => seen.push(d) }).catch((e: unknown) => e);
    expect(seen).toEqual(['partial']);
    expect(err).toBeInstanceOf(ConnectionError);
  });
});

async function wsServer(onConnection: (ws: import('ws').WebSocket) => void): Promise<string> {
  const { server, url } = await serve((_req, res) => { res.statusCode = 404; res.end(); });
  const wss = new WebSocketServer({ server });
  servers.push(wss);
  wss.on('connection', onConnection);
  return url;
}

describe('WebSocket stream', () => {
  it('ends with ConnectionError after the events received when the socket drops', async () => {
    const url = await wsServer((ws) => {
      ws.send(JSON.stringify({ type: 'stdout', data: 'one', exec_id: 'e' }));
      ws.send(JSON.stringify({ type: 'stdout', data: 'two', exec_id: 'e' }));
      setTimeout(() => ws.terminate(), 50);
    });
    const stream = await new FaasClient({ baseUrl: url }).stream('c1');
    const got: StreamEvent[] = [];
    const err = await (async () => { for await (const ev of stream) got.push(ev); })().catch((e: unknown) => e);
    expect(got.map((e) => (e.type === 'stdout' ? e.data : e.type))).toEqual(['one', 'two']);
    expect(err).toBeInstanceOf(ConnectionError);
  });

  it('fails with stream_overflow instead of dropping events when the buffer bound is passed', async () => {
    const url = await wsServer((ws) => {
      for (let i = 0; i < 20; i++) ws.send(JSON.stringify({ type: 'stdout', data: String(i) }));
    });
    const stream = await new FaasClient({ baseUrl: url }).stream('c1', { maxBufferedEvents: 5 });
    await new Promise((r) => setTimeout(r, 100));
    const got: string[] = [];
    const err = await (async () => { for await (const ev of stream) if (ev.type === 'stdout') got.push(ev.data); })().catch((e: unknown) => e);
    expect(got).toEqual(['0', '1', '2', '3', '4']);
    expect(err).toBeInstanceOf(ConnectionError);
    expect((err as ConnectionError).code).toBe('stream_overflow');
  });

  it('fails a silent connection after idleTimeoutMs', async () => {
    const url = await wsServer(() => undefined);
    const stream = await new FaasClient({ baseUrl: url }).stream('c1', { idleTimeoutMs: 200 });
    const started = Date.now();
    const err = await (async () => { for await (const _ of stream) void _; })().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConnectionError);
    expect((err as ConnectionError).message).toContain('idleTimeoutMs');
    expect(Date.now() - started).toBeLessThan(2000);
  });

  it('maps a refused upgrade to the typed error of its body', async () => {
    const { server, url } = await serve(() => undefined);
    server.on('upgrade', (_req, socket) => {
      const body = JSON.stringify({ error: 'not_found', message: 'no sandbox c9' });
      socket.end(`HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\nconnection: close\r\n\r\n${body}`);
    });
    const err = await new FaasClient({ baseUrl: url }).stream('c9').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NotFoundError);
    expect((err as NotFoundError).message).toBe('no sandbox c9');
  });

  it('exec() resolves once the process started and rejects with the typed error of a failed exec', async () => {
    const url = await wsServer((ws) =>
      ws.on('message', (m) => {
        const c = JSON.parse(String(m)) as { command: string; exec_id: string };
        if (c.command === 'ok') setTimeout(() => ws.send(JSON.stringify({ type: 'process_event', pid: 9, command: 'ok', event: 'started', exec_id: c.exec_id })), 50);
        else ws.send(JSON.stringify({ type: 'error', message: 'sandbox c1 is stopped', code: 'conflict', exec_id: c.exec_id }));
      }),
    );
    const stream = await new FaasClient({ baseUrl: url }).stream('c1');
    expect(await stream.exec('ok', { execId: 'mine' })).toBe('mine');
    await expect(stream.exec('fails')).rejects.toMatchObject({ name: 'ConflictError', code: 'conflict', message: 'sandbox c1 is stopped' });
    await stream.close();
    // The events are still delivered to the iterator.
    const types: string[] = [];
    for await (const ev of stream) types.push(ev.type);
    expect(types).toEqual(['process_event', 'error']);
  });

  it('ends normally on close() and sends validated commands', async () => {
    const received: unknown[] = [];
    const url = await wsServer((ws) => ws.on('message', (m) => received.push(JSON.parse(String(m)))));
    const client = new FaasClient({ baseUrl: url });
    const stream = await client.stream('c1');
    const execId = await stream.exec('echo hi', { pty: true, cols: 80, rows: 24, waitForStart: false });
    await stream.send({ type: 'stdin', data: 'x', exec_id: execId, eof: true });
    await expect(stream.send({ type: 'resize', cols: 0, rows: 1 })).rejects.toMatchObject({ name: 'ValidationError', field: 'cols' });
    await new Promise((r) => setTimeout(r, 50));
    await stream.close();
    const all: StreamEvent[] = [];
    for await (const ev of stream) all.push(ev);
    expect(all).toEqual([]);
    expect(received).toEqual([
      { type: 'exec', command: 'echo hi', exec_id: execId, pty: true, cols: 80, rows: 24 },
      { type: 'stdin', data: 'x', exec_id: execId, eof: true },
    ]);
  });
});
