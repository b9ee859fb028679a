import { describe, expect, it } from 'vitest';
import { parseBytes, storageConfigFromEnv } from '../../src/storage/index.js';

describe('storageConfigFromEnv', () => {
  it('defaults: L1 only, no cap', () => {
    expect(storageConfigFromEnv({}, '/d')).toEqual({ dataDir: '/d', l1MaxBytes: null, s3: null, fsync: false });
  });

  it('parses the object store URL, endpoint, region and the L1 cap', () => {
    const c = storageConfigFromEnv(
      { FAAS_OBJECT_STORE_URL: 's3://my-bucket/some/prefix/', FAAS_S3_ENDPOINT: 'http://127.0.0.1:9000', AWS_REGION: 'eu-west-3', FAAS_L1_MAX_BYTES: '20GiB' },
      '/d',
    );
    expect(c.l1MaxBytes).toBe(20 * 2 ** 30);
    expect(c.s3).toMatchObject({ bucket: 'my-bucket', prefix: 'some/prefix/', endpoint: 'http://127.0.0.1:9000', region: 'eu-west-3', forcePathStyle: true });
    expect(storageConfigFromEnv({ FAAS_OBJECT_STORE_URL: 's3://bkt', AWS_ENDPOINT_URL: 'https://s3.example' }, '/d').s3).toMatchObject({
      bucket: 'bkt',
      prefix: '',
      endpoint: 'https://s3.example',
      region: 'us-east-1',
    });
  });

  it('bad values throw an Error naming the variable', () => {
    expect(() => storageConfigFromEnv({ FAAS_OBJECT_STORE_URL: 'http://bucket' }, '/d')).toThrow(/FAAS_OBJECT_STORE_URL/);
    expect(() => storageConfigFromEnv({ FAAS_OBJECT_STORE_URL: 's3://UPPER' }, '/d')).toThrow(/FAAS_OBJECT_STORE_URL/);
    expect(() => storageConfigFromEnv({ FAAS_OBJECT_STORE_URL: 's3://b-1', FAAS_S3_ENDPOINT: 'ftp://x' }, '/d')).toThrow(/FAAS_S3_ENDPOINT/);
    expect(() => storageConfigFromEnv({ FAAS_L1_MAX_BYTES: 'lots' }, '/d')).toThrow(/FAAS_L1_MAX_BYTES/);
    expect(() => storageConfigFromEnv({ FAAS_L1_MAX_BYTES: '0' }, '/d')).toThrow(/FAAS_L1_MAX_BYTES/);
    expect(() => storageConfigFromEnv({ FAAS_STORAGE_FSYNC: 'maybe' }, '/d')).toThrow(/FAAS_STORAGE_FSYNC/);
    expect(() => storageConfigFromEnv({ FAAS_OBJECT_STORE_URL: 's3://b-1', FAAS_S3_TIMEOUT_MS: '-1' }, '/d')).toThrow(/FAAS_S3_TIMEOUT_MS/);
  });

  it('parseBytes units', () => {
    expect(parseBytes('1024', 'X')).toBe(1024);
    expect(parseBytes('512MiB', 'X')).toBe(512 * 2 ** 20);
    expect(parseBytes('2G', 'X')).toBe(2e9);
    expect(parseBytes('1.5 GiB', 'X')).toBe(1.5 * 2 ** 30);
  });
});
