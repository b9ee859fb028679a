/**
 * Core execution paths next to the raw Engine API doing the same work in the same run:
 * ephemeral end-to-end over HTTP vs create+start+wait+remove, and persistent exec via the agent vs a raw exec.
 */
import fs from 'node:fs';
import path from 'node:path';
import Docker from 'dockerode';
import { DEFAULT_IMAGE } from '@faas/protocol';
import { loadConfig } from '../../src/config.js';
import { startGateway } from '../../src/gateway/server.js';
import { type BenchRow, type BenchSuite, summarize } from '../lib.js';

async function timeIt(n: number, fn: () => Promise<unknown>): Promise<number[]> {
  const samples: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    await fn();
    samples.push(performance.now() - t);
  }
  return samples;
}

async function post(url: string, body: unknown): Promise<any> {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const json = await res.json();
  if (res.status !== 200 && res.status !== 201) throw new Error(`${url} answered ${res.status}: ${JSON.stringify(json)}`);
  return json;
}

function row(name: string, samples: number[], baseline: { name: string; samples: number[] }, goal?: { text: string; met: (p50: number, ratio: number) => boolean }): BenchRow {
  const s = summarize(samples);
  const b = summarize(baseline.samples);
  const ratio = s.p50 / b.p50;
  return {
    suite: 'core',
    name,
    unit: 'ms',
    value: s.p50,
    ...s,
    baseline: { name: baseline.name, value: b.p50 },
    ratio,
    ...(goal ? { goal: goal.text, met: goal.met(s.p50, ratio) } : {}),
  };
}

export const suite: BenchSuite = {
  name: 'core',
  async run({ quick, workDir }) {
    const config = loadConfig({ host: '127.0.0.1', port: 0, dataDir: path.join(workDir, 'core-data') });
    const gateway = await startGateway({ ...config, logLevel: 'silent' });
    const docker = new Docker({ socketPath: config.dockerSocket });
    const rows: BenchRow[] = [];
    try {
      const n = quick ? 10 : 30;
      // Warm both paths once so image metadata is cached on each side.
      await post(`${gateway.url}/api/v1/execute`, { command: 'true' });

      const rawCold = await timeIt(n, async () => {
        const c = await docker.createContainer({ Image: DEFAULT_IMAGE, Cmd: ['echo', 'hi'], HostConfig: { NetworkMode: 'none' }, Labels: { 'faas.managed': 'true', 'faas.bench': 'raw' } });
        await c.start();
        await c.wait();
        await c.remove({ force: true });
      });
      const ephemeral = await timeIt(n, () => post(`${gateway.url}/api/v1/execute`, { command: 'echo hi' }));
      rows.push(row('ephemeral echo end-to-end over HTTP (cold)', ephemeral, { name: 'raw Engine API create+start+wait+remove', samples: rawCold }, { text: 'p50 ≤ 1.0× raw', met: (_p, r) => r <= 1.0 }));

      const box = await post(`${gateway.url}/api/v1/containers`, {});
      const m = quick ? 50 : 200;
      const container = docker.getContainer(`faas-${box.id}`);
      const rawExec = await timeIt(m, async () => {
        const exec = await container.exec({ Cmd: ['true'], AttachStdout: true, AttachStderr: true });
        const stream = await exec.start({ hijack: true, stdin: false });
        await new Promise((resolve) => {
          stream.on('end', resolve);
          stream.on('close', resolve);
          stream.resume();
        });
        await exec.inspect();
      });
      const agentExec = await timeIt(m, () => post(`${gateway.url}/api/v1/containers/${box.id}/exec`, { argv: ['true'] }));
      rows.push(row('persistent exec round trip over HTTP via the agent', agentExec, { name: 'raw Engine API exec (create+start+inspect)', samples: rawExec }, { text: 'p50 ≤ 2 ms and ≥ 20× faster than raw', met: (p, r) => p <= 2 && r <= 0.05 }));

      const runtime = gateway.platform.runtime;
      const direct = await timeIt(m, async () => {
        const h = await runtime.exec(box.id, { argv: ['true'] });
        h.closeStdin();
        await h.exited;
      });
      rows.push(row('exec round trip via the agent, no HTTP', direct, { name: 'raw Engine API exec (create+start+inspect)', samples: rawExec }));
      await fetch(`${gateway.url}/api/v1/containers/${box.id}`, { method: 'DELETE' });
    } finally {
      await gateway.close();
      const leftovers = await docker.listContainers({ all: true, filters: { label: ['faas.bench=raw'] } });
      await Promise.all(leftovers.map((c) => docker.getContainer(c.Id).remove({ force: true }).catch(() => undefined)));
      fs.rmSync(path.join(workDir, 'core-data'), { recursive: true, force: true });
    }
    return rows;
  },
};
