/**
 * L2: an S3-compatible object store. Objects hold the exact bytes of the L1 blob file (header + payload), so an
 * object is self-describing and verified the same way as a local file.
 *
 * Client settings that matter (measured, see docs/storage.md): `forcePathStyle` for self-hosted servers, and
 * `requestChecksumCalculation`/`responseChecksumValidation` = WHEN_REQUIRED: with the defaults the SDK sends
 * aws-chunked bodies with trailing checksums, which some S3-compatible servers store verbatim (corrupted, no error).
 * We send a Content-MD5 instead, which every S3 implementation checks.
 */
import crypto from 'node:crypto';
import {
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  PutObjectCommand,
  S3Client,
  type S3ClientConfig,
} from '@aws-sdk/client-s3';
import type { S3TierConfig } from './config.js';
import { RemoteStoreError } from './errors.js';

export function blobKey(prefix: string, id: string): string {
  return `${prefix}blobs/${id.slice(0, 2)}/${id.slice(2)}`;
}

function describe(err: unknown): string {
  const e = err as { name?: string; message?: string; $metadata?: { httpStatusCode?: number }; code?: string };
  const status = e?.$metadata?.httpStatusCode;
  return `${e?.name ?? 'Error'}${status ? ` (HTTP ${status})` : ''}${e?.code ? ` ${e.code}` : ''}: ${e?.message ?? String(err)}`;
}

function isNotFound(err: unknown): boolean {
  const e = err as { name?: string; $metadata?: { httpStatusCode?: number } };
  return e?.name === 'NoSuchKey' || e?.name === 'NotFound' || e?.$metadata?.httpStatusCode === 404;
}

export class S3Tier {
  readonly client: S3Client;

  constructor(readonly config: S3TierConfig) {
    const opts: S3ClientConfig = {
      region: config.region,
      forcePathStyle: config.forcePathStyle,
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      // Our replication queue retries with its own backoff; one SDK retry covers a dropped keep-alive socket.
      maxAttempts: 2,
      requestHandler: { requestTimeout: config.requestTimeoutMs, connectionTimeout: config.connectTimeoutMs, throwOnRequestTimeout: true },
    };
    if (config.endpoint) opts.endpoint = config.endpoint;
    if (config.credentials) opts.credentials = config.credentials;
    this.client = new S3Client(opts);
  }

  get where(): string {
    return `s3://${this.config.bucket}/${this.config.prefix}${this.config.endpoint ? ` at ${this.config.endpoint}` : ''}`;
  }

  private signal(): AbortSignal {
    return AbortSignal.timeout(this.config.requestTimeoutMs + this.config.connectTimeoutMs);
  }

  /** Uploads the file bytes of blob `id` with a Content-MD5 the server must check. */
  async put(id: string, body: Buffer): Promise<void> {
    const md5 = crypto.createHash('md5').update(body).digest('base64');
    try {
      await this.client.send(
        new PutObjectCommand({
          Bucket: this.config.bucket,
          Key: blobKey(this.config.prefix, id),
          Body: body,
          ContentLength: body.length,
          ContentMD5: md5,
          ContentType: 'application/octet-stream',
        }),
        { abortSignal: this.signal() },
      );
    } catch (err) {
      throw new RemoteStoreError(`upload of blob ${id} to ${this.where} failed: ${describe(err)}`, { cause: err });
    }
  }

  /** The object's bytes, or null when it does not exist. */
  async get(id: string): Promise<Buffer | null> {
    try {
      const res = await this.client.send(
        new GetObjectCommand({ Bucket: this.config.bucket, Key: blobKey(this.config.prefix, id) }),
        { abortSignal: this.signal() },
      );
      if (!res.Body) return Buffer.alloc(0);
      const bytes = await res.Body.transformToByteArray();
      return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    } catch (err) {
      if (isNotFound(err)) return null;
      throw new RemoteStoreError(`download of blob ${id} from ${this.where} failed: ${describe(err)}`, { cause: err });
    }
  }

  async has(id: string): Promise<boolean> {
    try {
      await this.client.send(new HeadObjectCommand({ Bucket: this.config.bucket, Key: blobKey(this.config.prefix, id) }), {
        abortSignal: this.signal(),
      });
      return true;
    } catch (err) {
      if (isNotFound(err)) return false;
      throw new RemoteStoreError(`HEAD of blob ${id} at ${this.where} failed: ${describe(err)}`, { cause: err });
    }
  }

  async delete(id: string): Promise<void> {
    try {
      await this.client.send(new DeleteObjectCommand({ Bucket: this.config.bucket, Key: blobKey(this.config.prefix, id) }), {
        abortSignal: this.signal(),
      });
    } catch (err) {
      if (isNotFound(err)) return;
      throw new RemoteStoreError(`delete of blob ${id} at ${this.where} failed: ${describe(err)}`, { cause: err });
    }
  }

  close(): void {
    this.client.destroy();
  }
}
