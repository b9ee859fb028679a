/**
 * The Debian built-in images (faas/debian:bookworm, faas/python:3, faas/node:18, faas/build), made without any
 * container registry: `mmdebstrap --variant=minbase` assembles a root filesystem from the Debian mirror apt is
 * configured with on this host (read at run time from /etc/apt, never a hard-coded host) straight into a tar,
 * which the engine's build API turns into an image with `FROM scratch` + `ADD rootfs.tar /`.
 *
 * Why mmdebstrap rather than debootstrap: measured on this machine for minbase + python3, pip and venv,
 * debootstrap took 85 s cold (54 s with its package cache) against 64 s for mmdebstrap, which also writes the tar
 * itself and can share downloaded .deb files between images through a host folder (FAAS_DEB_CACHE). Each image is
 * bootstrapped on its own (no derivation from faas/debian): the cost is dominated by unpacking and configuring the
 * packages, which a derived build would pay all the same, and a single-layer image needs no network at build time.
 *
 * The recipe hash covers the recipe version, the package list, the image's Dockerfile lines and the apt sources
 * used (including their comments, e.g. the snapshot date), so `faas images build` rebuilds when any of them change
 * and is a no-op otherwise. Security updates published later do not change the hash: `faas images build --force`.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { BaseImage } from './base-images.js';

/** Bump to rebuild every Debian image (a change of the recipe's code that the hash would not see). */
const RECIPE_VERSION = '1';
const SUITE = 'bookworm';
const SUITES = new Set([SUITE, `${SUITE}-updates`, `${SUITE}-security`]);
const PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

export interface AptSource {
  uri: string;
  suite: string;
  /** The text it came from (a line, or a deb822 stanza with its comments). */
  origin: string;
}

function deb822Stanzas(text: string): string[] {
  return text.split(/\n\s*\n/).filter((s) => s.trim() !== '');
}

function field(stanza: string, name: string): string[] {
  const re = new RegExp(`^${name}:[ \\t]*(.*)$`, 'im');
  const m = re.exec(stanza);
  return m?.[1]?.trim().split(/\s+/).filter(Boolean) ?? [];
}

/**
 * The Debian `bookworm`, `bookworm-updates` and `bookworm-security` sources (component main) that apt is
 * configured with, in sources.list or sources.list.d (one-line and deb822 formats). Others (nodesource, vendor
 * repositories) are ignored. FAAS_DEBIAN_MIRROR overrides the mirror of the main suite.
 */
export function debianSources(env: NodeJS.ProcessEnv = process.env, etc = '/etc/apt'): AptSource[] {
  if (env.FAAS_DEBIAN_MIRROR) return [{ uri: env.FAAS_DEBIAN_MIRROR, suite: SUITE, origin: `FAAS_DEBIAN_MIRROR=${env.FAAS_DEBIAN_MIRROR}` }];
  const files: string[] = [];
  if (fs.existsSync(path.join(etc, 'sources.list'))) files.push(path.join(etc, 'sources.list'));
  const dir = path.join(etc, 'sources.list.d');
  if (fs.existsSync(dir)) for (const f of fs.readdirSync(dir).sort()) files.push(path.join(dir, f));
  const found: AptSource[] = [];
  // Debian mirrors configured for another release (a trixie host, say): used for bookworm when nothing names it.
  const otherRelease: AptSource[] = [];
  const consider = (uri: string, suite: string, origin: string) => {
    if (SUITES.has(suite)) found.push({ uri, suite, origin });
    else if (/\/debian\/?$/.test(uri) && !suite.includes('-')) otherRelease.push({ uri, suite: SUITE, origin });
    else if (/\/debian-security\/?$/.test(uri) && suite.endsWith('-security')) otherRelease.push({ uri, suite: `${SUITE}-security`, origin });
  };
  for (const file of files) {
    const text = fs.readFileSync(file, 'utf8');
    if (file.endsWith('.sources')) {
      for (const stanza of deb822Stanzas(text)) {
        const body = stanza.split('\n').filter((l) => !l.trimStart().startsWith('#')).join('\n');
        if (/^Enabled:\s*no/im.test(body) || !field(body, 'Types').includes('deb') || !field(body, 'Components').includes('main')) continue;
        for (const uri of field(body, 'URIs')) for (const suite of field(body, 'Suites')) consider(uri, suite, stanza.trim());
      }
    } else if (file.endsWith('.list')) {
      for (const line of text.split('\n')) {
        const words = line.replace(/#.*/, '').replace(/\[[^\]]*\]/, '').trim().split(/\s+/);
        if (words[0] !== 'deb' || words.length < 4) continue;
        const [, uri, suite, ...components] = words;
        if (uri && suite && components.includes('main')) consider(uri, suite, line.trim());
      }
    }
  }
  if (!found.some((s) => s.suite === SUITE)) found.push(...otherRelease);
  if (!found.some((s) => s.suite === SUITE)) {
    throw new Error(
      `no Debian "${SUITE}" source (component main) in apt's configuration (${files.join(', ') || `${etc} is empty`}); ` +
        'add one, or set FAAS_DEBIAN_MIRROR to a Debian mirror URL',
    );
  }
  // One entry per (uri, suite): mmdebstrap would otherwise download the same index twice.
  return found.filter((s, i) => found.findIndex((o) => o.uri === s.uri && o.suite === s.suite) === i);
}

/** Folder where downloaded .deb files are kept between builds (shared by the images). */
export function debCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.FAAS_DEB_CACHE) return env.FAAS_DEB_CACHE;
  const preferred = '/var/cache/faas/debs';
  try {
    fs.mkdirSync(preferred, { recursive: true });
    fs.accessSync(preferred, fs.constants.W_OK);
    return preferred;
  } catch {
    return path.join(os.tmpdir(), 'faas-debs');
  }
}

interface DebianRecipe {
  name: string;
  tag: string;
  description: string;
  /** Packages added to minbase. */
  packages: string[];
  env?: Record<string, string>;
  cmd: string[];
}

const RECIPES: DebianRecipe[] = [
  {
    name: 'debian',
    tag: 'faas/debian:bookworm',
    description: 'Debian 12 minbase (bash, apt, coreutils) with CA certificates',
    packages: ['ca-certificates'],
    cmd: ['/bin/bash'],
  },
  {
    name: 'python',
    tag: 'faas/python:3',
    description: "Debian 12 with Debian's python3, pip and venv",
    packages: ['ca-certificates', 'python3', 'python3-pip', 'python3-venv'],
    // Debian marks its python as externally managed (PEP 668); in a throwaway sandbox `pip install` should work.
    env: { PIP_BREAK_SYSTEM_PACKAGES: '1', PYTHONUNBUFFERED: '1' },
    cmd: ['/usr/bin/python3'],
  },
  {
    name: 'node',
    tag: 'faas/node:18',
    description: "Debian 12 with Debian's nodejs 18 and npm",
    packages: ['ca-certificates', 'nodejs', 'npm'],
    env: { NPM_CONFIG_UPDATE_NOTIFIER: 'false', NPM_CONFIG_FUND: 'false', NPM_CONFIG_AUDIT: 'false' },
    cmd: ['/usr/bin/node'],
  },
  {
    name: 'build',
    tag: 'faas/build:latest',
    description: 'Debian 12 with gcc, g++, make, git and pkg-config',
    packages: ['ca-certificates', 'gcc', 'g++', 'libc6-dev', 'make', 'git', 'pkg-config'],
    // Where the shared dependency caches are mounted, should Go or cargo be installed in a sandbox.
    env: { GOPATH: '/go', GOCACHE: '/root/.cache/go-build', CARGO_HOME: '/usr/local/cargo' },
    cmd: ['/bin/bash'],
  },
];

/** Documentation and translations are left out of every image: smaller tars, faster imports. */
const DPKG_EXCLUDES = ['path-exclude=/usr/share/man/*', 'path-exclude=/usr/share/doc/*', 'path-include=/usr/share/doc/*/copyright', 'path-exclude=/usr/share/info/*', 'path-exclude=/usr/share/locale/*'];

function dockerfileOf(recipe: DebianRecipe): string {
  const env = { PATH, LANG: 'C.UTF-8', ...recipe.env };
  return [
    'FROM scratch',
    'ADD rootfs.tar /',
    ...Object.entries(env).map(([k, v]) => `ENV ${k}=${v}`),
    'WORKDIR /workspace',
    `CMD ${JSON.stringify(recipe.cmd)}`,
    '',
  ].join('\n');
}

function which(program: string): string | null {
  for (const dir of (process.env.PATH ?? '/usr/bin:/bin').split(':').concat(['/usr/sbin', '/sbin'])) {
    const candidate = path.join(dir, program);
    try {
      fs.accessSync(candidate, fs.constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return null;
}

/** Runs mmdebstrap, passing its progress lines to `onLog`; rejects with the tail of its output. */
function mmdebstrap(args: string[], onLog?: (line: string) => void): Promise<void> {
  const program = which('mmdebstrap');
  if (!program) return Promise.reject(new Error("mmdebstrap is missing: install Debian's mmdebstrap package (scripts/setup.sh does)"));
  return new Promise((resolve, reject) => {
    const child = spawn(program, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, LC_ALL: 'C.UTF-8' } });
    const tail: string[] = [];
    let pending = '';
    const take = (chunk: Buffer) => {
      pending += chunk.toString('utf8');
      const lines = pending.split('\n');
      pending = lines.pop() ?? '';
      for (const line of lines) {
        if (!line.trim()) continue;
        tail.push(line);
        if (tail.length > 40) tail.shift();
        onLog?.(line);
      }
    };
    child.stdout.on('data', take);
    child.stderr.on('data', take);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      if (code === 0) resolve();
      else reject(new Error(`mmdebstrap failed (${signal ?? `exit ${code}`}):\n${tail.join('\n')}`));
    });
  });
}

function debianImage(recipe: DebianRecipe): BaseImage {
  return {
    name: recipe.name,
    tag: recipe.tag,
    description: recipe.description,
    recipeHash() {
      const sources = debianSources();
      return createHash('sha256')
        .update(
          JSON.stringify({
            recipe: RECIPE_VERSION,
            suite: SUITE,
            variant: 'minbase',
            packages: recipe.packages,
            dpkg: DPKG_EXCLUDES,
            dockerfile: dockerfileOf(recipe),
            sources: sources.map((s) => [s.uri, s.suite, s.origin]),
          }),
        )
        .digest('hex');
    },
    async prepare(dir, onLog) {
      const sources = debianSources();
      const cache = debCacheDir();
      fs.mkdirSync(cache, { recursive: true });
      await mmdebstrap(
        [
          '--variant=minbase',
          `--include=${recipe.packages.join(',')}`,
          '--dpkgopt=force-unsafe-io',
          ...DPKG_EXCLUDES.map((o) => `--dpkgopt=${o}`),
          '--aptopt=Acquire::Retries "3"',
          // The engine gives every container its own /dev.
          '--skip=output/dev',
          // Downloaded packages are kept on the host and shared by the images and later rebuilds.
          '--setup-hook=mkdir -p "$1"/var/cache/apt/archives',
          `--setup-hook=sync-in ${cache} /var/cache/apt/archives/`,
          `--customize-hook=sync-out /var/cache/apt/archives ${cache}`,
          SUITE,
          path.join(dir, 'rootfs.tar'),
          ...sources.map((s) => `deb ${s.uri} ${s.suite} main`),
        ],
        onLog,
      );
      fs.writeFileSync(path.join(dir, 'Dockerfile'), dockerfileOf(recipe));
    },
  };
}

export const DEBIAN_IMAGES: readonly BaseImage[] = RECIPES.map(debianImage);
