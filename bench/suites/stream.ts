/**
 * WebSocket streaming: stdout throughput to one client and exec-to-first-event latency, against the raw Engine
 * API streaming the same output through an attached exec. The gateway runs in its own process, as in production,
 * so the client does not share its event loop.
 */
import fs from 'node:fs';
import path from 'node:path';
import Docker from 'dockerode';
import WebSocket from 'ws';
import { loadConfig } from '../../src/config.js';
import { exitOf, startServe } from '../../test/helpers/serve-process.js';
import { post, timeIt } from '../gateway.js';
import { type BenchRow, type BenchSuite, summarize } from '../lib.js';

const MB = 1e6;

function openStream(url: string, id: string): Promise<WebSocket> {
  const ws = new WebSocket(`${url.replace(/^http/, 'ws')}/api/v1/containers/${id}/stream`);
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
}

/** Sends an exec and resolves when its exit arrives, with the stdout bytes seen and the time to the first one. */
function execOverStream(ws: WebSocket, command: string, execId: string): Promise<{ bytes: number; firstMs: number; totalMs: number }> {
  const t0 = performance.now();
  let bytes = 0;
  let firstMs = -1;
  return new Promise((resolve, reject) => {
    const onMessage = (raw: WebSocket.RawData) => {
      const e = JSON.parse(raw.toString());
      if (e.exec_id !== execId) return;
      if (e.type === 'stdout') {
        if (firstMs < 0) firstMs = performance.now() - t0;
        bytes += e.data.length;
      } else if (e.type === 'exit') {
        ws.off('message', onMessage);
        resolve({ bytes, firstMs, totalMs: performance.now() - t0 });
      } else if (e.type === 'error') {
        ws.off('message', onMessage);
        reject(new Error(e.message));
      }
    };
    ws.on('message', onMessage);
    ws.send(JSON.stringify({ type: 'exec', command, exec_id: execId }));
  });
}

async function rawExecStream(container: Docker.Container, cmd: string[]): Promise<{ bytes: number; firstMs: number; totalMs: number }> {
  const t0 = performance.now();
  const exec = await container.exec({ Cmd: cmd, AttachStdout: true, AttachStderr: true });
  const stream = await exec.start({ hijack: true, stdin: false });
  let bytes = 0;
  let firstMs = -1;
  await new Promise((resolve) => {
    stream.on('data', (d: Buffer) => {
      if (firstMs < 0) firstMs = performance.now() - t0;
      bytes += d.length;
    });
    stream.on('end', resolve);
    stream.on('close', resolve);
  });
  return { bytes, firstMs, totalMs: performance.now() - t0 };
}

export const suite: BenchSuite = {
  name: 'stream',
  async run({ quick, workDir }) {
    const dataDir = path.join(workDir, 'stream');
    const serve = await startServe(['--data-dir', dataDir]);
    const docker = new Docker({ socketPath: loadConfig().dockerSocket });
    const rows: BenchRow[] = [];
    try {
      const box = await post(`${serve.url}/api/v1/containers`, {});
      const container = docker.getContainer(`faas-${box.id}`);
      const ws = await openStream(serve.url, box.id);
      const size = quick ? 100 * MB : 400 * MB;
      const flood = `head -c ${size} /dev/zero | tr '\\0' x`;

      await execOverStream(ws, 'echo warm', 'warm');
      const viaWs = await execOverStream(ws, flood, 'flood');
      const raw = await rawExecStream(container, ['sh', '-c', flood]);
      const wsRate = viaWs.bytes / MB / (viaWs.totalMs / 1000);
      const rawRate = raw.bytes / MB / (raw.totalMs / 1000);
      rows.push({
        suite: 'stream',
        name: `WebSocket stdout throughput to one client (${size / MB} MB)`,
        unit: 'MB/s',
        value: wsRate,
        baseline: { name: 'raw Engine API attached exec, same output', value: rawRate },
        ratio: wsRate / rawRate,
        goal: '≥ 100 MB/s',
        met: wsRate >= 100,
      });

      const n = quick ? 30 : 100;
      const wsFirst: number[] = [];
      for (let i = 0; i < n; i++) wsFirst.push((await execOverStream(ws, 'echo hi', `lat${i}`)).firstMs);
      const rawFirst = await timeIt(n, async () => rawExecStream(container, ['echo', 'hi']));
      const s = summarize(wsFirst);
      const b = summarize(rawFirst);
      rows.push({ suite: 'stream', name: 'exec → first stdout event over WebSocket', unit: 'ms', value: s.p50, ...s, baseline: { name: 'raw Engine API exec until output ends', value: b.p50 }, ratio: s.p50 / b.p50 });
      ws.close();
      await fetch(`${serve.url}/api/v1/containers/${box.id}`, { method: 'DELETE' });
    } finally {
      serve.child.kill('SIGTERM');
      await exitOf(serve.child);
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
    return rows;
  },
};
