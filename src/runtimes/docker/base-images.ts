/**
 * Images the platform builds for itself, without any registry: a root filesystem assembled on the host and sent
 * to the engine's build API as `FROM scratch`. Each image carries a label with the hash of its recipe and
 * inputs, so a build is skipped when nothing changed.
 */
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type Docker from 'dockerode';
import { errorMessage } from '../../errors.js';
import { DEBIAN_IMAGES } from './debian-images.js';

export const RECIPE_LABEL = 'faas.recipe';

export interface BaseImage {
  /** Short name used by `faas images build NAME`. */
  name: string;
  tag: string;
  description: string;
  /** Hash of everything the image is made from. */
  recipeHash(): string;
  /** Fills `dir` with a build context (a Dockerfile and what it copies); `onLog` gets progress lines. */
  prepare(dir: string, onLog?: (line: string) => void): void | Promise<void>;
}

const BUSYBOX = '/bin/busybox';
const BUSYBOX_RECIPE_VERSION = '1';

function fileHash(file: string): string {
  return createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}

/** Static busybox on an empty root: the default image, about 2 MiB, starts in milliseconds. */
export const busyboxImage: BaseImage = {
  name: 'busybox',
  tag: 'faas/busybox:latest',
  description: 'static busybox (sh and the usual tools) on an empty root',
  recipeHash() {
    if (!fs.existsSync(BUSYBOX)) {
      throw new Error(`${BUSYBOX} is missing: install Debian's busybox-static package (the README set-up does)`);
    }
    return createHash('sha256').update(`busybox-${BUSYBOX_RECIPE_VERSION}\n${fileHash(BUSYBOX)}`).digest('hex');
  },
  prepare(dir) {
    const root = path.join(dir, 'rootfs');
    fs.mkdirSync(path.join(root, 'bin'), { recursive: true });
    fs.copyFileSync(BUSYBOX, path.join(root, 'bin', 'busybox'));
    fs.chmodSync(path.join(root, 'bin', 'busybox'), 0o755);
    const applets = execFileSync(BUSYBOX, ['--list-full'], { encoding: 'utf8' }).split('\n').filter(Boolean);
    for (const applet of applets) {
      const target = path.join(root, applet);
      if (applet === 'bin/busybox' || fs.existsSync(target)) continue;
      fs.mkdirSync(path.dirname(target), { recursive: true });
      fs.symlinkSync('/bin/busybox', target);
    }
    for (const d of ['etc', 'root', 'workspace', 'var/tmp', 'home', 'usr/local/bin']) fs.mkdirSync(path.join(root, d), { recursive: true });
    fs.mkdirSync(path.join(root, 'tmp'), { mode: 0o1777 });
    fs.chmodSync(path.join(root, 'tmp'), 0o1777);
    fs.writeFileSync(path.join(root, 'etc', 'passwd'), 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n');
    fs.writeFileSync(path.join(root, 'etc', 'group'), 'root:x:0:\nnogroup:x:65534:\n');
    fs.writeFileSync(
      path.join(dir, 'Dockerfile'),
      ['FROM scratch', 'COPY rootfs/ /', 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', 'WORKDIR /workspace', 'CMD ["/bin/sh"]', ''].join('\n'),
    );
  },
};

/** busybox first: it is the default image, the tests' image and takes a second. */
export const BASE_IMAGES: readonly BaseImage[] = [busyboxImage, ...DEBIAN_IMAGES];

export type BuildOutcome = { image: string; status: 'built' | 'up-to-date'; id: string; ms: number };

async function currentRecipe(docker: Docker, tag: string): Promise<{ id: string; recipe: string | undefined } | null> {
  try {
    const info = await docker.getImage(tag).inspect();
    return { id: info.Id, recipe: info.Config?.Labels?.[RECIPE_LABEL] };
  } catch (err) {
    if ((err as { statusCode?: number }).statusCode === 404) return null;
    throw err;
  }
}

/** Builds the image unless the engine already has it from the same recipe. */
export async function ensureBaseImage(docker: Docker, image: BaseImage, onLog?: (line: string) => void, opts: { force?: boolean } = {}): Promise<BuildOutcome> {
  const started = Date.now();
  const recipe = image.recipeHash();
  const existing = await currentRecipe(docker, image.tag);
  if (existing?.recipe === recipe && !opts.force) return { image: image.tag, status: 'up-to-date', id: existing.id, ms: Date.now() - started };

  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `faas-image-${image.name}-`));
  try {
    await image.prepare(dir, onLog);
    const stream = await docker.buildImage(
      { context: dir, src: fs.readdirSync(dir) },
      { t: image.tag, labels: { [RECIPE_LABEL]: recipe }, rm: true, forcerm: true },
    );
    await new Promise<void>((resolve, reject) => {
      docker.modem.followProgress(
        stream,
        (err: Error | null, output: Array<{ error?: string; errorDetail?: { message?: string } }>) => {
          const failed = err ?? output.find((o) => o.error || o.errorDetail);
          if (failed) reject(new Error(`building ${image.tag} failed: ${failed instanceof Error ? failed.message : failed.error}`));
          else resolve();
        },
        (event: { stream?: string }) => {
          if (event.stream && onLog) for (const line of event.stream.split('\n')) if (line.trim()) onLog(line);
        },
      );
    });
  } catch (err) {
    throw new Error(`building ${image.tag} failed: ${errorMessage(err)}`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  const built = await currentRecipe(docker, image.tag);
  if (!built) throw new Error(`building ${image.tag} reported success but the engine has no such image`);
  // The image it replaces is now untagged: remove it unless a container still uses it.
  if (existing && existing.id !== built.id) await docker.getImage(existing.id).remove().catch(() => undefined);
  return { image: image.tag, status: 'built', id: built.id, ms: Date.now() - started };
}
