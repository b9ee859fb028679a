/** Storage configuration from the environment. Bad values throw an Error that names the variable. */

export interface S3TierConfig {
  bucket: string;
  /** Key prefix, '' or ending in '/'. Objects are `<prefix>blobs/ab/cdef…`. */
  prefix: string;
  /** Custom endpoint (MinIO, s3rver, …); undefined = AWS. */
  endpoint?: string;
  region: string;
  /** Path-style URLs (`http://host/bucket/key`): required by most self-hosted S3-compatible servers. */
  forcePathStyle: boolean;
  /** Explicit credentials; undefined = the AWS default chain (AWS_ACCESS_KEY_ID, profiles, instance roles …). */
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  /** Per-request timeout; a slow server counts as a failure and the queue retries. */
  requestTimeoutMs: number;
  connectTimeoutMs: number;
}

export interface StorageConfig {
  dataDir: string;
  /** L1 size cap in bytes of blob files; null = no cap. Only blobs already in L2 are evicted. */
  l1MaxBytes: number | null;
  s3: S3TierConfig | null;
  /** fsync each blob file before its rename (durable across power loss, slower). */
  fsync: boolean;
}

const UNITS: Record<string, number> = {
  '': 1, b: 1,
  k: 1e3, kb: 1e3, m: 1e6, mb: 1e6, g: 1e9, gb: 1e9, t: 1e12, tb: 1e12,
  ki: 2 ** 10, kib: 2 ** 10, mi: 2 ** 20, mib: 2 ** 20, gi: 2 ** 30, gib: 2 ** 30, ti: 2 ** 40, tib: 2 ** 40,
};

/** "1073741824", "512MiB", "10G", "1.5 GB" → bytes. */
export function parseBytes(text: string, name: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(text);
  const unit = m ? UNITS[m[2]!.toLowerCase()] : undefined;
  if (!m || unit === undefined) {
    throw new Error(`${name}="${text}" is not a size: use bytes or a number with a unit such as 512MiB, 10GiB, 2G`);
  }
  const value = Math.floor(Number(m[1]) * unit);
  if (!Number.isSafeInteger(value) || value <= 0) throw new Error(`${name}="${text}" must be a positive size`);
  return value;
}

function parseBool(text: string, name: string): boolean {
  const t = text.trim().toLowerCase();
  if (['1', 'true', 'yes', 'on'].includes(t)) return true;
  if (['0', 'false', 'no', 'off', ''].includes(t)) return false;
  throw new Error(`${name}="${text}" must be true/false (1/0)`);
}

function parseMs(text: string, name: string): number {
  const n = Number(text);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`${name}="${text}" must be a positive number of milliseconds`);
  return n;
}

/** `s3://bucket[/prefix]` → bucket and normalized prefix. */
export function parseObjectStoreUrl(url: string, name = 'FAAS_OBJECT_STORE_URL'): { bucket: string; prefix: string } {
  const m = /^s3:\/\/([^/]+)(?:\/(.*))?$/.exec(url.trim());
  if (!m) throw new Error(`${name}="${url}" must look like s3://bucket or s3://bucket/prefix`);
  const bucket = m[1]!;
  if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucket)) {
    throw new Error(`${name}="${url}": "${bucket}" is not a valid bucket name (3-63 lowercase letters, digits, dots, hyphens)`);
  }
  let prefix = (m[2] ?? '').replace(/^\/+|\/+$/g, '');
  if (prefix) prefix += '/';
  return { bucket, prefix };
}

export function storageConfigFromEnv(env: NodeJS.ProcessEnv, dataDir: string): StorageConfig {
  const l1 = env.FAAS_L1_MAX_BYTES;
  const l1MaxBytes = l1 !== undefined && l1.trim() !== '' ? parseBytes(l1, 'FAAS_L1_MAX_BYTES') : null;
  const fsync = env.FAAS_STORAGE_FSYNC !== undefined ? parseBool(env.FAAS_STORAGE_FSYNC, 'FAAS_STORAGE_FSYNC') : false;
  let s3: S3TierConfig | null = null;
  const url = env.FAAS_OBJECT_STORE_URL;
  if (url !== undefined && url.trim() !== '') {
    const { bucket, prefix } = parseObjectStoreUrl(url);
    const endpointVar = ['FAAS_S3_ENDPOINT', 'AWS_ENDPOINT_URL_S3', 'AWS_ENDPOINT_URL'].find((v) => env[v]?.trim());
    let endpoint: string | undefined;
    if (endpointVar) {
      endpoint = env[endpointVar]!.trim();
      try {
        const u = new URL(endpoint);
        if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error('scheme');
      } catch {
        throw new Error(`${endpointVar}="${endpoint}" must be an http:// or https:// URL`);
      }
    }
    const region = env.AWS_REGION?.trim() || env.AWS_DEFAULT_REGION?.trim() || 'us-east-1';
    const forcePathStyle =
      env.FAAS_S3_FORCE_PATH_STYLE !== undefined ? parseBool(env.FAAS_S3_FORCE_PATH_STYLE, 'FAAS_S3_FORCE_PATH_STYLE') : true;
    const requestTimeoutMs = env.FAAS_S3_TIMEOUT_MS ? parseMs(env.FAAS_S3_TIMEOUT_MS, 'FAAS_S3_TIMEOUT_MS') : 30_000;
    s3 = { bucket, prefix, region, forcePathStyle, requestTimeoutMs, connectTimeoutMs: Math.min(5000, requestTimeoutMs) };
    if (endpoint) s3.endpoint = endpoint;
  }
  return { dataDir, l1MaxBytes, s3, fsync };
}
