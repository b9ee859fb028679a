// The engine goes away and comes back: the gateway reaches it through a unix-socket relay the test can cut,
// so the real dockerd (shared by everything else) is never stopped.
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { api, startTestGateway, type TestGateway } from '../helpers/gateway.js';

const relayPath = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'faas-relay-')), 'docker.sock');
let relay: net.Server | undefined;
const open = new Set<net.Socket>();
let gw: TestGateway | undefined;

function startRelay(): Promise<void> {
  relay = net.createServer((client) => {
    const engine = net.connect('/var/run/docker.sock');
    open.add(client);
    open.add(engine);
    client.pipe(engine).pipe(client);
    const end = () => {
      client.destroy();
      engine.destroy();
      open.delete(client);
      open.delete(engine);
    };
    client.on('error', end).on('close', end);
    engine.on('error', end).on('close', end);
  });
  return new Promise((resolve) => relay!.listen(relayPath, resolve));
}

async function stopRelay(): Promise<void> {
  for (const s of open) s.destroy();
  await new Promise<void>((resolve) => (relay ? relay.close(() => resolve()) : resolve()));
  relay = undefined;
  fs.rmSync(relayPath, { force: true });
}

afterAll(async () => {
  if (!relay) await startRelay(); // let the gateway remove its containers
  await gw?.close();
  await stopRelay();
  fs.rmSync(path.dirname(relayPath), { recursive: true, force: true });
});

describe('an engine outage', () => {
  it('turns health to 503, fails requests fast with a clear error, and everything recovers when the engine returns', async () => {
    await startRelay();
    gw = await startTestGateway({ env: { FAAS_DOCKER_SOCKET: relayPath, FAAS_IDLE_CHECK_MS: '200' } });
    const box = (await api(gw.url, 'POST', '/api/v1/containers', {})).body.id as string;
    expect((await api(gw.url, 'POST', '/api/v1/execute', { command: 'echo before' })).body.stdout).toBe('before\n');

    await stopRelay();
    const health = await api(gw.url, 'GET', '/health');
    expect(health.status).toBe(503);
    expect(health.body.engine.reachable).toBe(false);
    const started = Date.now();
    const refused = await api(gw.url, 'POST', '/api/v1/execute', { command: 'echo during' });
    expect(Date.now() - started).toBeLessThan(3000);
    expect(refused.status).toBe(503);
    expect(refused.body).toMatchObject({ error: 'engine_unavailable', message: expect.stringContaining(relayPath) });
    expect(refused.headers.get('retry-after')).toBeTruthy();
    // The persistent sandbox lives on: its agent is reached without the engine.
    const during = await api(gw.url, 'POST', `/api/v1/containers/${box}/exec`, { command: 'echo agent still here' });
    expect(during.body.stdout).toBe('agent still here\n');

    await startRelay();
    expect((await api(gw.url, 'GET', '/health')).status).toBe(200);
    expect((await api(gw.url, 'POST', '/api/v1/execute', { command: 'echo after' })).body.stdout).toBe('after\n');
    expect((await api(gw.url, 'DELETE', `/api/v1/containers/${box}`)).status).toBe(204);
  });
});
