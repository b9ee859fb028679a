/**
 * `faas storage …`: the blob store on a data dir, without a running gateway.
 * put FILE | get ID | stat ID | ls | rm ID | stats | gc | verify | replicate.
 */
import fs from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import {
  BlobNotFoundError,
  BlobStore,
  StorageError,
  storageConfigFromEnv,
  consoleLogger,
  type CodecChoice,
  type StorageStats,
} from '../../storage/index.js';
import { formatBytes, subcommands, writeStdout } from '../client-options.js';
import { CliError, type Command } from '../command.js';

const COMMON = `  --data-dir D   data dir (env FAAS_DATA_DIR, default ./.faas)
  -h, --help     this help`;

const ENV = `Environment: FAAS_OBJECT_STORE_URL=s3://bucket[/prefix] enables the L2 tier (endpoint FAAS_S3_ENDPOINT or
AWS_ENDPOINT_URL[_S3]; credentials and region the AWS way); FAAS_L1_MAX_BYTES caps L1 (e.g. 20GiB).`;

const HELP: Record<string, string> = {
  main: `Usage: faas storage <subcommand> [options]

Content-addressed blob store (ids are SHA-256 hex of the content).

Subcommands:
  put FILE        store FILE ('-' = stdin); prints the id last
  get ID          write the content to stdout (or -o FILE)
  stat ID         metadata of one blob
  ls              list stored objects
  rm ID           remove the CLI reference and delete the blob if nothing else uses it
  stats           counters: blobs, bytes, dedup and compression ratios, replication queue
  gc              remove unreferenced blobs older than the grace period
  verify          re-hash every blob; exits 1 if anything is corrupt or missing
  replicate       upload pending blobs to L2 now and wait for the queue to drain

Run \`faas storage <subcommand> --help\` for its options.
${ENV}`,
  put: `Usage: faas storage put FILE [--codec C] [--no-chunk] [--ref OWNER] [--data-dir D]

Stores FILE ('-' reads stdin) and prints its id (SHA-256 of the content) as the last line of stdout; the
sizes go to stderr. Large inputs are split into content-defined chunks, so similar files share storage.

  --codec C      auto (default: zstd or none by sampling), fast (lz4 or none), zstd, lz4, none
  --no-chunk     store as one blob even when large
  --ref OWNER    reference recorded so gc keeps the blob (default "cli"; "" for none)
${COMMON}`,
  get: `Usage: faas storage get ID [-o FILE] [--data-dir D]

Writes the content of blob ID to stdout, verified against its id: a corrupt blob is an error (exit 1),
never wrong data. Blobs up to 256 MiB are verified whole before anything is written; larger ones stream,
each chunk verified before it is written. With -o the file appears only when the whole content was verified.

  -o, --output F write to F instead of stdout
${COMMON}`,
  stat: `Usage: faas storage stat ID [--json] [--data-dir D]\n\n  --json         machine-readable output\n${COMMON}`,
  ls: `Usage: faas storage ls [--all] [--json] [--data-dir D]

Lists stored objects (id, size, kind). --all includes chunks and manifests.

  --all          every blob file
  --json         machine-readable output
${COMMON}`,
  rm: `Usage: faas storage rm ID [--force] [--data-dir D]

Removes the "cli" reference of ID and deletes the blob when nothing else references it.

  --force        delete even if other references or manifests use it
${COMMON}`,
  stats: `Usage: faas storage stats [--json] [--data-dir D]

Prints blobs, logical_bytes, stored_bytes, chunks, dedup_ratio, compression_ratio, pending_replication, …

  --json         machine-readable output
${COMMON}`,
  gc: `Usage: faas storage gc [--grace DUR] [--dry-run] [--json] [--data-dir D]

Removes blobs that nothing references (snapshots, cache entries, manifests, CLI refs) and whose last put is
older than the grace period. Safe while other processes put blobs.

  --grace DUR    e.g. 30m, 1h (default), 2d, 0
  --dry-run      only count
  --json         machine-readable output
${COMMON}`,
  verify: `Usage: faas storage verify [--repair] [--l2] [--json] [--data-dir D]

Re-hashes every blob in L1 and checks each chunked blob's chunks exist. Prints each problem; exits 1 if any.

  --l2           also download and verify every L2 copy
  --repair       move corrupt files to <data-dir>/blobs-quarantine (re-fetched from L2 when replicated);
                 with --l2, re-upload bad L2 copies from good L1 files
  --json         machine-readable output
${COMMON}`,
  replicate: `Usage: faas storage replicate [--timeout DUR] [--data-dir D]

Uploads pending blobs to L2 (needs FAAS_OBJECT_STORE_URL) and waits until the queue is empty.

  --timeout DUR  give up after DUR (default 10m); exit 1 with what is pending
${COMMON}`,
};

const OPTIONS: Record<string, ParseArgsConfig['options']> = {
  put: { codec: { type: 'string' }, 'no-chunk': { type: 'boolean' }, ref: { type: 'string' } },
  get: { output: { type: 'string', short: 'o' } },
  stat: { json: { type: 'boolean' } },
  ls: { all: { type: 'boolean' }, json: { type: 'boolean' } },
  rm: { force: { type: 'boolean' } },
  stats: { json: { type: 'boolean' } },
  gc: { grace: { type: 'string' }, 'dry-run': { type: 'boolean' }, json: { type: 'boolean' } },
  verify: { repair: { type: 'boolean' }, l2: { type: 'boolean' }, json: { type: 'boolean' } },
  replicate: { timeout: { type: 'string' } },
};

/** `get` of blobs up to this size verifies the whole content before writing any of it. */
const WHOLE_GET_MAX = 256 * 1024 * 1024;

const POSITIONALS: Record<string, string[]> = { put: ['FILE'], get: ['ID'], stat: ['ID'], rm: ['ID'] };

/** "90s", "30m", "1h", "2d", "500ms", "0" → milliseconds. */
export function parseDuration(text: string, flag: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(text.trim());
  if (!m) throw new CliError(`${flag} "${text}" is not a duration: use e.g. 30s, 10m, 1h, 2d or 0`);
  const mult = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[(m[2] ?? 's') as 'ms'];
  return Math.round(Number(m[1]) * mult);
}

function printStats(s: StorageStats): void {
  const rows: [string, string][] = [
    ['blobs', `${s.blobs} (${s.objects} objects, ${s.chunks} chunks, ${s.manifests} manifests)`],
    ['logical_bytes', `${s.logical_bytes} (${formatBytes(s.logical_bytes)})`],
    ['unique_bytes', `${s.unique_bytes} (${formatBytes(s.unique_bytes)})`],
    ['stored_bytes', `${s.stored_bytes} (${formatBytes(s.stored_bytes)})`],
    ['dedup_ratio', String(s.dedup_ratio)],
    ['compression_ratio', String(s.compression_ratio)],
    ['l1_bytes', `${s.l1_bytes} (${formatBytes(s.l1_bytes)})${s.l1_max_bytes !== null ? ` of ${formatBytes(s.l1_max_bytes)}` : ''}`],
    ['l2', s.l2 ? `${s.l2} (${formatBytes(s.l2_bytes)} replicated)` : 'not configured'],
    ['pending_replication', `${s.pending_replication}${s.failing_replication ? ` (${s.failing_replication} failing: ${s.last_replication_error})` : ''}`],
    ['refs', String(s.refs)],
  ];
  for (const [codec, c] of Object.entries(s.by_codec)) rows.push([`codec ${codec}`, `${c.blobs} blobs, ${formatBytes(c.logical_bytes)} → ${formatBytes(c.stored_bytes)}`]);
  const w = Math.max(...rows.map((r) => r[0].length));
  for (const [k, v] of rows) console.log(`${k.padEnd(w)}  ${v}`);
}

function storageErrorToCli(err: unknown): never {
  if (err instanceof StorageError) throw new CliError(err.message, 1);
  throw err;
}

/** One storage subcommand: its options, checks, then the BlobStore call. */
async function storageCommand(rest: string[], sub: string): Promise<number> {
  const options = OPTIONS[sub]!;
  let parsed;
  try {
    parsed = parseArgs({
      args: rest,
      options: { ...options, 'data-dir': { type: 'string' }, help: { type: 'boolean', short: 'h' } },
      allowPositionals: true,
    });
  } catch (err) {
    throw new CliError(`${sub}: ${(err as Error).message}; run \`faas storage ${sub} --help\``);
  }
  const values = parsed.values as Record<string, string | boolean | undefined>;
  if (values.help) {
    console.log(HELP[sub]);
    return 0;
  }
  const want = POSITIONALS[sub] ?? [];
  if (parsed.positionals.length !== want.length) {
    throw new CliError(
      want.length === 0
        ? `${sub} takes no arguments (got "${parsed.positionals.join(' ')}")`
        : `${sub} needs ${want.join(' ')}; usage: ${HELP[sub]!.split('\n')[0]!.replace('Usage: ', '')}`,
    );
  }
  const arg = parsed.positionals[0];
  if ((sub === 'get' || sub === 'stat' || sub === 'rm') && !/^[0-9a-f]{64}$/.test(arg!)) {
    throw new CliError(`"${arg}" is not a blob id: expected 64 lowercase hex characters (a SHA-256)`);
  }
  let codec: CodecChoice = 'auto';
  if (sub === 'put' && values.codec !== undefined) {
    if (!['auto', 'fast', 'zstd', 'lz4', 'none'].includes(values.codec as string)) {
      throw new CliError(`--codec "${values.codec}": use auto, fast, zstd, lz4 or none`);
    }
    codec = values.codec as CodecChoice;
  }
  const grace = sub === 'gc' && typeof values.grace === 'string' ? parseDuration(values.grace, '--grace') : undefined;
  const timeout = sub === 'replicate' && typeof values.timeout === 'string' ? parseDuration(values.timeout, '--timeout') : 600_000;
  if (sub === 'put' && arg !== '-' && !fs.existsSync(arg!)) throw new CliError(`put: ${arg}: no such file`);

  const dataDir = path.resolve((values['data-dir'] as string | undefined) ?? process.env.FAAS_DATA_DIR ?? './.faas');
  let config;
  try {
    config = storageConfigFromEnv(process.env, dataDir);
  } catch (err) {
    throw new CliError((err as Error).message);
  }
  if (sub !== 'put' && !fs.existsSync(path.join(dataDir, 'faas.db'))) {
    throw new CliError(`no data dir at ${dataDir} (nothing stored yet?); pass --data-dir or set FAAS_DATA_DIR`, 1);
  }
  if (sub === 'replicate' && !config.s3) throw new CliError('replicate: no L2 configured; set FAAS_OBJECT_STORE_URL=s3://bucket[/prefix]');
  const store = await BlobStore.open({
    dataDir,
    l1MaxBytes: config.l1MaxBytes,
    s3: config.s3,
    fsync: config.fsync,
    logger: consoleLogger,
    // Only `replicate` uploads; other commands leave the queue to the gateway (or the next `replicate`).
    replication: { autoStart: sub === 'replicate' },
  });
  try {
    switch (sub) {
      case 'put': {
        // Files up to 512 MiB are read whole: a buffer is split by a worker in parallel with compression.
        // Larger files and stdin are streamed (memory stays bounded).
        const input =
          arg === '-'
            ? process.stdin
            : fs.statSync(arg!).size <= 512 * 1024 * 1024
              ? fs.readFileSync(arg!)
              : fs.createReadStream(arg!, { highWaterMark: 1024 * 1024 });
        const ref = values.ref === undefined ? 'cli' : (values.ref as string);
        const r = await store.put(input, { codec, chunked: values['no-chunk'] ? false : 'auto', ...(ref ? { ref } : {}) });
        process.stderr.write(
          `stored ${formatBytes(r.size)} as ${r.chunks ? `${r.chunks} chunks` : r.codec}: ${formatBytes(r.storedBytes)} stored, ` +
            `${formatBytes(r.newBytes)} new${r.deduplicated ? ' (already present)' : ''}\n`,
        );
        console.log(r.id);
        return 0;
      }
      case 'get': {
        let size = Infinity;
        try {
          size = (await store.stat(arg!)).size;
        } catch (err) {
          if (!(err instanceof BlobNotFoundError)) throw err; // not known locally: the stream path tries L2
        }
        if (size <= WHOLE_GET_MAX) {
          // Verify everything before writing anything: a corrupt blob produces no output at all.
          const data = await store.get(arg!);
          if (typeof values.output === 'string') {
            const tmp = `${values.output}.faas-tmp-${process.pid}`;
            fs.writeFileSync(tmp, data);
            fs.renameSync(tmp, values.output);
          } else {
            await writeStdout(Readable.from([data]));
          }
          return 0;
        }
        // Larger blobs stream: every chunk is verified before it is written, so output stops at the first bad one.
        if (typeof values.output === 'string') {
          const out = values.output;
          const tmp = `${out}.faas-tmp-${process.pid}`;
          try {
            await pipeline(store.getStream(arg!), fs.createWriteStream(tmp));
            fs.renameSync(tmp, out);
          } catch (err) {
            fs.rmSync(tmp, { force: true });
            throw err;
          }
        } else {
          await writeStdout(store.getStream(arg!));
        }
        return 0;
      }
      case 'stat': {
        const st = await store.stat(arg!);
        if (values.json) console.log(JSON.stringify(st, null, 2));
        else {
          console.log(`id          ${st.id}`);
          console.log(`size        ${st.size} (${formatBytes(st.size)})`);
          console.log(`stored      ${st.storedBytes} (${formatBytes(st.storedBytes)})`);
          console.log(`kind        ${st.kind}${st.chunks ? ` (${st.chunks} chunks)` : ''}, codec ${st.codec}`);
          console.log(`tiers       ${[st.inL1 ? 'L1' : '', st.inL2 ? 'L2' : ''].filter(Boolean).join(' + ') || 'none'}`);
          console.log(`refs        ${st.refs.join(', ') || '(none)'}`);
          console.log(`created     ${st.createdAt.toISOString()}`);
        }
        return 0;
      }
      case 'ls': {
        const list = store.list({ all: !!values.all });
        if (values.json) console.log(JSON.stringify(list));
        else for (const e of list) console.log(`${e.id}  ${String(e.size).padStart(12)}  ${e.kind}`);
        return 0;
      }
      case 'rm': {
        store.removeRef('cli', arg!);
        const removed = await store.delete(arg!, { force: !!values.force });
        console.log(removed ? `deleted ${arg}` : `${arg} was not stored`);
        return removed ? 0 : 1;
      }
      case 'stats': {
        const s = store.stats();
        if (values.json) console.log(JSON.stringify(s, null, 2));
        else printStats(s);
        return 0;
      }
      case 'gc': {
        const r = await store.gc({ graceMs: grace, dryRun: !!values['dry-run'] });
        if (values.json) console.log(JSON.stringify(r));
        else
          console.log(
            `${values['dry-run'] ? 'would remove' : 'removed'} ${r.removed} blobs (${formatBytes(r.removedBytes)}), kept ${r.kept}` +
              (r.orphanFiles ? `, ${r.orphanFiles} orphan files` : '') +
              (r.staleClaims ? `, ${r.staleClaims} stale claims` : ''),
          );
        return 0;
      }
      case 'verify': {
        if (values.l2 && !store.s3) throw new CliError('verify --l2: no L2 configured; set FAAS_OBJECT_STORE_URL=s3://bucket[/prefix]');
        const r = await store.verify({ repair: !!values.repair, l2: !!values.l2 });
        if (values.json) console.log(JSON.stringify(r, null, 2));
        else {
          for (const p of r.problems) console.log(`${p.problem.toUpperCase()} ${p.id}: ${p.detail}${p.repaired ? ` (${p.repaired})` : ''}`);
          console.log(`checked ${r.checked} blobs (${formatBytes(r.bytes)}): ${r.ok} ok, ${r.problems.length} with problems`);
        }
        return r.problems.length > 0 ? 1 : 0;
      }
      case 'replicate': {
        const before = store.stats().pending_replication;
        await store.flushReplication(timeout);
        console.log(`replicated ${before} pending item(s) to ${store.s3!.where}`);
        return 0;
      }
    }
    return 2;
  } catch (err) {
    if (err instanceof Error && /did not drain/.test(err.message)) throw new CliError(err.message, 1);
    return storageErrorToCli(err);
  } finally {
    await store.close();
  }
}

export const command: Command = {
  summary: 'blob store: put, get, stats, gc, verify on a data dir',
  run: subcommands('storage', HELP.main!, {
    put: storageCommand,
    get: storageCommand,
    stat: storageCommand,
    ls: storageCommand,
    rm: storageCommand,
    stats: storageCommand,
    gc: storageCommand,
    verify: storageCommand,
    replicate: storageCommand,
  }),
};
