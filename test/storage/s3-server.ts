/**
 * Test helpers: a real S3-compatible server (s3rver) on 127.0.0.1, stoppable and restartable on the same port,
 * and a misbehaving HTTP server (errors or silence) to stand in for a broken or slow S3.
 */
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import type { S3TierConfig } from '../../src/storage/index.js';

const require = createRequire(import.meta.url);
// eslint-disable-next-line @typescript-eslint/no-explicit-any
const S3rver = require('s3rver') as any;

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

export class TestS3 {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  private server: any = null;
  readonly directory = fs.mkdtempSync(path.join(os.tmpdir(), 's3rver-'));

  private constructor(
    readonly port: number,
    readonly bucket: string,
  ) {}

  static async start(bucket = 'faas-test'): Promise<TestS3> {
    const s = new TestS3(await freePort(), bucket);
    await s.resume();
    return s;
  }

  get endpoint(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  get running(): boolean {
    return this.server !== null;
  }

  tierConfig(prefix = '', timeoutMs = 5000): S3TierConfig {
    return {
      bucket: this.bucket,
      prefix,
      endpoint: this.endpoint,
      region: 'us-east-1',
      forcePathStyle: true,
      credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
      requestTimeoutMs: timeoutMs,
      connectTimeoutMs: Math.min(2000, timeoutMs),
    };
  }

  /** Starts (or restarts, same port and directory, so the objects are still there). */
  async resume(): Promise<void> {
    if (this.server) return;
    const server = new S3rver({
      address: '127.0.0.1',
      port: this.port,
      silent: true,
      directory: this.directory,
      configureBuckets: [{ name: this.bucket }],
    });
    await server.run();
    this.server = server;
  }

  /** Stops listening and drops every open connection (uploads in flight fail). */
  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = null;
    const httpServer = server.httpServer as http.Server;
    const closed = new Promise<void>((r) => httpServer.close(() => r()));
    httpServer.closeAllConnections();
    await closed;
  }

  /** Path of the stored object's content on s3rver's disk. */
  objectFile(key: string): string {
    return path.join(this.directory, this.bucket, `${key}._S3rver_object`);
  }

  async destroy(): Promise<void> {
    await this.stop();
    fs.rmSync(this.directory, { recursive: true, force: true });
  }
}

/** An HTTP server that answers every request with `status` after `delayMs` — or never, with delayMs = Infinity. */
export async function startBrokenS3(status: number, delayMs = 0): Promise<{ endpoint: string; requests: () => number; close: () => Promise<void> }> {
  let count = 0;
  const server = http.createServer((req, res) => {
    count++;
    req.resume();
    if (delayMs === Infinity) return; // hold the request open: a hung server
    setTimeout(() => {
      res.writeHead(status, { 'content-type': 'application/xml' });
      res.end(`<?xml version="1.0" encoding="UTF-8"?><Error><Code>${status === 503 ? 'SlowDown' : 'InternalError'}</Code><Message>test</Message></Error>`);
    }, delayMs);
  });
  const port = await freePort();
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', () => r()));
  return {
    endpoint: `http://127.0.0.1:${port}`,
    requests: () => count,
    close: () =>
      new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      }),
  };
}
