// Restore fidelity of snapshots: a sandbox restored from a checkpoint must look exactly like the one captured —
// types, modes (setuid/setgid), owners, sizes, contents, link targets, link counts and mtimes of every path —
// whatever happened to the image's files: metadata changes of directories whose children changed too, files,
// directories and symlinks replacing each other, deletions inside deleted directories, directories deleted and
// made again, odd names, empty, sparse and hard-linked files, fifos; and under an image's USER. A live sandbox
// is frozen for a checkpoint only when something runs in it.
import crypto from 'node:crypto';
import Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TarReader } from '../../src/runtimes/docker/tar-entries.js';
import { api, startTestGateway, type TestGateway } from '../helpers/gateway.js';

const docker = new Docker({ socketPath: '/var/run/docker.sock' });
const prefix = `faas-test-${crypto.randomBytes(4).toString('hex')}`;
const FIXTURE = `${prefix}/fidelity:1`;
const AS_USER = `${prefix}/as-user:1`;
let gw: TestGateway;

// Image content the sandbox then changes. zz-big holds 12 MiB nobody changes: more than a capture reads of
// unchanged content before it fetches a directory's changes one by one.
const FIXTURE_DOCKERFILE = String.raw`FROM faas/busybox:latest
RUN mkdir -p /fx/dir2file/sub /fx/dir2link/sub /fx/recreate/old/deep /fx/deldir/sub /fx/meta /fx/metaonly /fx/sgid /fx/keep /fx/zz-big \
 && echo f > /fx/file2dir && echo f > /fx/file2emptydir && echo y > /fx/dir2file/sub/y && echo y > /fx/dir2link/sub/y \
 && ln -s keep /fx/link2dir && ln -s keep /fx/link2file && echo old > /fx/recreate/old/deep/x && echo old > /fx/recreate/a \
 && echo z > /fx/deldir/sub/z && echo w > /fx/deldir/w && echo c > /fx/meta/c && echo c > /fx/metaonly/c \
 && echo s > /fx/setuid && chmod 755 /fx/setuid && echo t > /fx/touched \
 && for i in 1 2 3; do head -c 4194304 /dev/urandom > /fx/zz-big/b$i; done
`;

const SETUP = String.raw`set -e
mkdir -p /workspace/d && touch /workspace/d/f && chmod 700 /workspace/d && chown 1000:1000 /workspace/d
chown 1001:1002 /workspace && chmod 2775 /workspace
echo changed >> /etc/group && chown 0:5 /etc && chmod 750 /etc
echo n > /fx/meta/new && chown 7:8 /fx/meta && chmod 750 /fx/meta
chown 9:9 /fx/metaonly && chmod 700 /fx/metaonly
touch /fx/sgid/f && chmod 2775 /fx/sgid
echo changed > /fx/zz-big/zz && chmod 701 /fx/zz-big
rm /fx/file2dir && mkdir /fx/file2dir && echo in > /fx/file2dir/in
rm /fx/file2emptydir && mkdir /fx/file2emptydir
rm -r /fx/dir2file && echo now-a-file > /fx/dir2file
rm /fx/link2dir && mkdir /fx/link2dir && echo in > /fx/link2dir/in
rm /fx/link2file && echo now-a-file > /fx/link2file
rm -r /fx/dir2link && ln -s keep /fx/dir2link
rm /fx/deldir/w && rm -r /fx/deldir
rm -r /fx/recreate && mkdir -p /fx/recreate/new && echo new > /fx/recreate/new/x && chmod 711 /fx/recreate
chmod 4755 /fx/setuid
touch -d '2001-02-03 04:05:06' /fx/touched
mkdir /workspace/names
for n in 'a b' "$(printf 'nl\nx')" 'ü' "$(printf '\377bad')"; do echo "$n" > "/workspace/names/$n"; echo "$n" > "/workspace/$n"; done
: > /workspace/empty
head -c 100 /dev/urandom > /workspace/h1 && mkdir /workspace/sub && ln /workspace/h1 /workspace/sub/h2
mkfifo /workspace/fifo
truncate -s 33554432 /workspace/sparse && echo middle | dd of=/workspace/sparse bs=1 seek=16777216 conv=notrunc 2>/dev/null
mkdir /workspace/olddir && touch /workspace/olddir/x && touch -d '2002-03-04 05:06:07' /workspace/olddir/x /workspace/olddir
`;

// Every path of the root filesystem but the engine's and the platform's (/sbin too: it gets the engine's init
// when a sandbox starts) and the image's hundreds of busybox links: name, type, mode, owner, size, mtime, link count (not of directories: overlayfs counts a directory
// merged with the image's as 1), and the content's md5 or the link's target.
const MANIFEST = String.raw`find / -xdev \( -path /proc -o -path /sys -o -path /dev -o -path /.faas -o -path /.dockerenv -o -path /bin -o -path /sbin -o -path /usr/bin -o -path /usr/sbin -o -path /etc/hosts -o -path /etc/hostname -o -path /etc/resolv.conf -o -path /etc/mtab \) -prune -o -exec sh -c '
for p; do
  s=$(stat -c "%F|%a|%u|%g|%s|%Y" "$p")
  case $s in directory*) ;; *) s="$s|$(stat -c %h "$p")";; esac
  case $s in "regular"*) s="$s|$(md5sum < "$p" | cut -c1-32)";; "symbolic link"*) s="$s|$(readlink "$p")";; esac
  [ "$p" = / ] || printf "%s|%s\n" "$p" "$s"
done' sh {} + | sort`;

beforeAll(async () => {
  gw = await startTestGateway();
  for (const [name, dockerfile] of [
    [FIXTURE, FIXTURE_DOCKERFILE],
    [AS_USER, 'FROM faas/busybox:latest\nUSER 1000:1000\n'],
  ] as const) {
    const built = await api(gw.url, 'POST', '/api/v1/images', { name, dockerfile });
    if (built.status !== 201) throw new Error(`building ${name} failed: ${JSON.stringify(built.body)}`);
  }
});
afterAll(async () => {
  await gw?.close();
  for (const name of [FIXTURE, AS_USER]) await docker.getImage(name).remove({ force: true }).catch(() => undefined);
});

async function execute(body: unknown) {
  const res = await api(gw.url, 'POST', '/api/v1/execute', body);
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return res;
}

describe('snapshot restore fidelity', () => {
  it('restores every path exactly as it was captured', async () => {
    const first = await execute({ mode: 'checkpointed', image: FIXTURE, command: `${SETUP}\n${MANIFEST}`, timeout_ms: 120_000 });
    expect(first.body.stderr).toBe('');
    expect(first.body.exit_code).toBe(0);
    const captured = first.body.stdout.split('\n');
    // The manifest sees what the test is about.
    for (const line of [
      '/workspace|directory|2775|1001|1002|',
      '/workspace/d|directory|700|1000|1000|',
      '/etc|directory|750|0|5|',
      '/fx/meta|directory|750|7|8|',
      '/fx/metaonly|directory|700|9|9|',
      '/fx/file2emptydir|directory|',
      '/fx/dir2file|regular file|',
      '/fx/dir2link|symbolic link|',
      '/fx/recreate|directory|711|',
      '/fx/setuid|regular file|4755|',
      '/fx/touched|regular file|644|0|0|2|981173106|1|',
      '/workspace/fifo|fifo|',
      '/workspace/empty|regular empty file|',
      '/workspace/sparse|regular file|644|0|1002|33554432|',
      '/workspace/names/ü|regular file|',
    ]) {
      expect(captured.some((l: string) => l.startsWith(line)), line).toBe(true);
    }
    expect(captured.some((l: string) => /^\/workspace\/sub\/h2\|regular file\|644\|0\|1002\|100\|\d+\|2\|/.test(l))).toBe(true);
    expect(captured.some((l: string) => l.startsWith('/fx/deldir'))).toBe(false);

    const restored = await execute({ mode: 'checkpointed', checkpoint: first.body.snapshot_id, command: MANIFEST, timeout_ms: 120_000 });
    expect(restored.body.stderr).toBe('');
    expect(restored.body.stdout.split('\n')).toEqual(captured);
  });

  it("copies only the metadata of an image directory whose mode changed, not the directory's content", async () => {
    const first = await execute({ mode: 'checkpointed', image: FIXTURE, command: 'chmod 700 /fx/zz-big /fx && chown 3:4 /fx/zz-big && chmod 751 /etc' });
    expect(first.body.exit_code).toBe(0);
    const snap = await api(gw.url, 'GET', `/api/v1/snapshots/${first.body.snapshot_id}`);
    expect(snap.body.size_bytes).toBeLessThan(1024 * 1024);
    const restored = await execute({ mode: 'checkpointed', checkpoint: first.body.snapshot_id, command: 'stat -c "%a %u %g" /fx /fx/zz-big /etc; cat /fx/zz-big/b1 | wc -c' });
    expect(restored.body.stdout).toBe('700 0 0\n700 3 4\n751 0 0\n4194304\n');
  });

  it('freezes a live sandbox for a checkpoint only while something runs in it', async () => {
    const box = await api(gw.url, 'POST', '/api/v1/containers', {});
    const id = box.body.id as string;
    // The engine's pause and unpause events for the sandbox while `action` runs.
    const freezes = async (action: () => Promise<unknown>) => {
      const since = (Date.now() / 1000).toFixed(3);
      await action();
      const until = (Date.now() / 1000 + 0.5).toFixed(3);
      const events = await docker.getEvents({ since, until, filters: { container: [`faas-${id}`], event: ['pause', 'unpause'] } } as object);
      const statuses: string[] = [];
      for await (const chunk of events as AsyncIterable<Buffer>) for (const line of chunk.toString().split('\n').filter(Boolean)) statuses.push(JSON.parse(line).status);
      return statuses;
    };
    const checkpoint = () => api(gw.url, 'POST', `/api/v1/containers/${id}/checkpoint`, {});
    expect(await freezes(checkpoint)).toEqual([]);
    const running = api(gw.url, 'POST', `/api/v1/containers/${id}/exec`, { command: 'echo started > /workspace/s; sleep 3' });
    while (!(await gw.gateway.platform.runtime.processes(id)).some((p) => p.command.startsWith('sleep'))) await new Promise((r) => setTimeout(r, 50));
    expect(await freezes(checkpoint)).toEqual(['pause', 'unpause']);
    expect((await running).body.exit_code).toBe(0);
    await api(gw.url, 'DELETE', `/api/v1/containers/${id}`);
  });

  it("restores owners into a sandbox whose image has a USER", async () => {
    const first = await execute({ mode: 'checkpointed', command: 'mkdir /workspace/d && echo x > /workspace/d/f && chown -R 1234:2345 /workspace/d' });
    const snapshot = await gw.gateway.platform.snapshots.get('default', first.body.snapshot_id);
    // Sandboxes of such images do not start yet (the agent cannot make its socket as that user), so the snapshot
    // goes into a created container of the image directly: no deletions to run, the archive is all there is.
    const id = `fidelity-${crypto.randomBytes(4).toString('hex')}`;
    const container = await docker.createContainer({ name: `faas-${id}`, Image: AS_USER, Labels: { 'faas.test': 'snapshot-fidelity' } });
    try {
      await gw.gateway.platform.snapshots.restore(snapshot, id);
      const owners: string[] = [];
      const reader = new TarReader((await container.getArchive({ path: '/workspace/d' })) as unknown as AsyncIterable<Buffer>);
      for (let e = await reader.next(); e; e = await reader.next()) owners.push(`${e.name} ${parseInt(e.header.toString('ascii', 108, 115), 8)}:${parseInt(e.header.toString('ascii', 116, 123), 8)}`);
      expect(owners).toEqual(['d/ 1234:2345', 'd/f 1234:2345']);
    } finally {
      await container.remove({ force: true });
    }
  });
});
