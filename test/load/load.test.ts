// Load: 200 WebSocket clients watching 10 sandboxes while ephemeral executions and execs run for a minute
// (FAAS_LOAD_SECONDS), all against 127.0.0.1. Afterwards the gateway's memory, file descriptors and containers
// must be back to their baseline.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Docker from 'dockerode';
import WebSocket from 'ws';
import { afterAll, describe, expect, it } from 'vitest';
import { openDatabase } from '../../src/db/sqlite.js';
import { api } from '../helpers/gateway.js';
import { exitOf, startServe, type ServeProcess } from '../helpers/serve-process.js';

const SECONDS = Number(process.env.FAAS_LOAD_SECONDS ?? 60);
const SANDBOXES = 10;
const CLIENTS = 200;
const EPHEMERAL_WORKERS = 3;
/**
 * The test's own HTTP client keeps one idle keep-alive connection per concurrent worker open to the gateway (the
 * gateway closes them after its keep-alive timeout); they are the only descriptors allowed above the baseline.
 */
const KEEP_ALIVE_ALLOWANCE = EPHEMERAL_WORKERS + SANDBOXES;
const docker = new Docker({ socketPath: '/var/run/docker.sock' });
const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'faas-load-'));
let serve: ServeProcess | undefined;

afterAll(async () => {
  if (serve) {
    serve.child.kill('SIGTERM');
    await exitOf(serve.child);
  }
  fs.rmSync(dataDir, { recursive: true, force: true });
});

function resources(pid: number): { rssMiB: number; fds: number } {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  return { rssMiB: Number(/VmRSS:\s+(\d+)/.exec(status)![1]) / 1024, fds: fs.readdirSync(`/proc/${pid}/fd`).length };
}

async function instanceContainers(): Promise<number> {
  const db = openDatabase(dataDir);
  const instance = (db.prepare("SELECT value FROM platform_settings WHERE key = 'instance_id'").get() as { value: string }).value;
  db.close();
  return (await docker.listContainers({ all: true, filters: { label: [`faas.instance=${instance}`] } })).length;
}

describe('load', () => {
  it(`holds ${CLIENTS} WebSocket clients and an execution load for ${SECONDS} s, then returns to baseline`, async () => {
    // Warm pools grow under this load; idle, they shrink back to nothing within seconds here.
    serve = await startServe(['--data-dir', dataDir, '--heartbeat-ms', '5000'], { FAAS_IDLE_CHECK_MS: '500', FAAS_POOL_IDLE_SHRINK_MS: '1000' });
    const pid = serve.child.pid!;
    const url = serve.url;
    await api(url, 'POST', '/api/v1/execute', { command: 'true' });
    await new Promise((r) => setTimeout(r, 1000));
    const baseline = resources(pid);

    const ids: string[] = [];
    for (let i = 0; i < SANDBOXES; i++) ids.push((await api(url, 'POST', '/api/v1/containers', {})).body.id);

    let unexpectedCloses = 0;
    const ticks = new Array<number>(CLIENTS).fill(0);
    const clients = await Promise.all(
      Array.from({ length: CLIENTS }, (_, i) => {
        const ws = new WebSocket(`${url.replace('http', 'ws')}/api/v1/containers/${ids[i % SANDBOXES]}/stream`);
        ws.on('message', (raw) => {
          const e = JSON.parse(raw.toString());
          if (e.type === 'stdout' && e.data === 'tick\n') ticks[i]!++;
        });
        ws.on('close', (code) => {
          if (code !== 1000 && code !== 1005) unexpectedCloses++;
        });
        return new Promise<WebSocket>((resolve, reject) => {
          ws.once('open', () => resolve(ws));
          ws.once('error', reject);
        });
      }),
    );

    const errors: string[] = [];
    let executions = 0;
    let execs = 0;
    const end = Date.now() + SECONDS * 1000;
    const ephemeralWorkers = Array.from({ length: EPHEMERAL_WORKERS }, async (_, w) => {
      for (let n = 0; Date.now() < end; n++) {
        const res = await api(url, 'POST', '/api/v1/execute', { command: `echo ${w}-${n}` });
        if (res.status !== 200 || res.body.stdout !== `${w}-${n}\n`) errors.push(`execute ${w}-${n}: ${res.status} ${JSON.stringify(res.body).slice(0, 200)}`);
        executions++;
      }
    });
    /** Ticks run in each sandbox (ids[k]). */
    const ran = new Array<number>(SANDBOXES).fill(0);
    const execWorkers = ids.map(async (id, k) => {
      while (Date.now() < end) {
        const res = await api(url, 'POST', `/api/v1/containers/${id}/exec`, { command: 'echo tick' });
        if (res.status !== 200 || res.body.stdout !== 'tick\n') errors.push(`exec ${id}: ${res.status}`);
        else ran[k]!++;
        execs++;
        await new Promise((r) => setTimeout(r, 250));
      }
    });
    await Promise.all([...ephemeralWorkers, ...execWorkers]);
    const during = resources(pid);

    expect(errors).toEqual([]);
    expect(unexpectedCloses).toBe(0);
    // Every client saw every tick of its sandbox (each sandbox ran up to SECONDS * 4 of them, fewer the slower the
    // execs are): once the last ones have reached the clients, none is missing.
    const expected = ticks.map((_, i) => ran[i % SANDBOXES]!);
    for (let i = 0; i < 100 && ticks.some((n, j) => n < expected[j]!); i++) await new Promise((r) => setTimeout(r, 100));
    expect(ticks).toEqual(expected);
    expect(Math.min(...ran)).toBeGreaterThan(SECONDS / 2);
    expect(executions).toBeGreaterThan(SECONDS);

    for (const ws of clients) ws.close(1000);
    for (const id of ids) await api(url, 'DELETE', `/api/v1/containers/${id}`);
    // Let removals and closes settle.
    let after = resources(pid);
    for (let i = 0; i < 60 && (after.fds > baseline.fds + KEEP_ALIVE_ALLOWANCE || (await instanceContainers()) > 0); i++) {
      await new Promise((r) => setTimeout(r, 1000));
      after = resources(pid);
    }
    console.log(
      `load: ${executions} executions, ${execs} execs, ${CLIENTS} clients for ${SECONDS} s; RSS ${baseline.rssMiB.toFixed(0)} → ${during.rssMiB.toFixed(0)} → ${after.rssMiB.toFixed(0)} MiB; fds ${baseline.fds} → ${during.fds} → ${after.fds}`,
    );
    expect(await instanceContainers()).toBe(0);
    expect(after.fds).toBeLessThanOrEqual(baseline.fds + KEEP_ALIVE_ALLOWANCE);
    expect(after.rssMiB).toBeLessThan(baseline.rssMiB * 1.5 + 40);
  }, (SECONDS + 120) * 1000);
});
