/**
 * User images ("templates"): built from a Dockerfile through the engine's build API, from any image the engine
 * already has (no registry is reachable, so nothing is pulled). Images built here are labelled
 * `faas.template=true`; only those can be listed as templates and removed.
 *
 * The build context is either a base64 tar (optionally gzip-compressed) or a map of file path → UTF-8 content,
 * capped at MAX_TEMPLATE_CONTEXT_BYTES once decoded. The Dockerfile is added to the context as
 * `.faas-template.Dockerfile`. Everything a caller can get wrong (name, context, a FROM image that is not
 * there, a name taken by an image the platform did not build) is checked before the build starts, so it is
 * answered with a 4xx even when the log is streamed.
 */
import { Readable } from 'node:stream';
import zlib from 'node:zlib';
import fs from 'node:fs';
import path from 'node:path';
import type Docker from 'dockerode';
import { type BuildImageRequest, type ImageBuildEvent, type ImageInfo, LIMITS, MAX_TEMPLATE_CONTEXT_BYTES } from '@faas/protocol';
import { FaasError, errorMessage } from '../errors.js';
import { BASE_IMAGES, RECIPE_LABEL } from '../runtimes/docker/base-images.js';
import { checkImageName, engineError, isNotFound } from '../runtimes/docker/engine-errors.js';
import { type TarEntry, tarBody, tarFiles } from './tar-files.js';

export const TEMPLATE_LABEL = 'faas.template';
/** The tenant that built a template; only it sees and removes it (the engine's names are global, though). */
export const TENANT_LABEL = 'faas.tenant';
const DEFAULT_TENANT = 'default';

/** Bounds of a build: its RUN steps share these, whatever the Dockerfile does. */
export const BUILD_LIMITS = { memoryBytes: 2 * 1024 ** 3, cpuCores: 2, timeoutMs: LIMITS.maxBuildMs } as const;
export const DOCKERFILE_NAME = '.faas-template.Dockerfile';

/** Relative path inside a context: no absolute paths, no `..`. */
function contextPath(name: string, field: string): string {
  const normal = path.posix.normalize(name.replace(/^\.\//, ''));
  if (path.posix.isAbsolute(normal) || normal === '..' || normal.startsWith('../') || normal === '.' || normal === '') {
    throw new FaasError('validation_error', `context path "${name}" must be relative and stay inside the context`, field);
  }
  return normal;
}

/**
 * Packs a folder (the CLI's `faas images build -f … DIR`): regular files with their mode, symlinks skipped,
 * `.git` left out. Fails once the total passes `maxBytes`.
 */
export function tarDirectory(dir: string, maxBytes = MAX_TEMPLATE_CONTEXT_BYTES): Buffer {
  const entries: TarEntry[] = [];
  let total = 0;
  const walk = (rel: string) => {
    for (const d of fs.readdirSync(path.join(dir, rel), { withFileTypes: true })) {
      const relPath = rel ? `${rel}/${d.name}` : d.name;
      if (d.isDirectory()) {
        if (d.name !== '.git') walk(relPath);
      } else if (d.isFile()) {
        const full = path.join(dir, relPath);
        const data = fs.readFileSync(full);
        total += data.length;
        if (total > maxBytes) throw new Error(`the build context ${dir} is larger than ${maxBytes} bytes`);
        entries.push({ name: relPath, data, mode: fs.statSync(full).mode & 0o7777 });
      }
    }
  };
  walk('');
  return tarFiles(entries);
}

/** Where the end-of-archive blocks of a tar start (checks each header's checksum on the way). */
function tarEnd(tar: Buffer): number {
  let offset = 0;
  while (offset + 512 <= tar.length) {
    const header = tar.subarray(offset, offset + 512);
    if (header.every((b) => b === 0)) return offset;
    const stored = parseInt(header.subarray(148, 156).toString('ascii').replace(/\0.*$/, '').trim(), 8);
    let sum = 0;
    for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 32 : header[i]!;
    if (stored !== sum) throw new FaasError('validation_error', 'context is not a tar archive (bad header checksum)', 'context');
    const size = parseInt(header.subarray(124, 136).toString('ascii').replace(/\0.*$/, '').trim() || '0', 8);
    if (!Number.isFinite(size) || size < 0) throw new FaasError('validation_error', 'context is not a tar archive (bad entry size)', 'context');
    offset += 512 + Math.ceil(size / 512) * 512;
  }
  if (offset > tar.length) throw new FaasError('validation_error', 'context is a truncated tar archive', 'context');
  return offset;
}

function tooLarge(bytes: number | string): FaasError {
  return new FaasError('payload_too_large', `the build context is larger than ${MAX_TEMPLATE_CONTEXT_BYTES / 1024 / 1024} MiB (${bytes} bytes); leave out what the build does not need`, 'context');
}

/** The context tar sent to the engine: the caller's files plus the Dockerfile. */
export function contextTar(req: Pick<BuildImageRequest, 'context' | 'files' | 'dockerfile'>, maxBytes = MAX_TEMPLATE_CONTEXT_BYTES): Buffer {
  const dockerfile: TarEntry = { name: DOCKERFILE_NAME, data: Buffer.from(req.dockerfile, 'utf8') };
  if (req.files) {
    const entries = Object.entries(req.files).map(([name, content]) => ({ name: contextPath(name, `files.${name}`), data: Buffer.from(content, 'utf8') }));
    const total = entries.reduce((n, e) => n + e.data.length, 0);
    if (total > maxBytes) throw tooLarge(total);
    return tarFiles([...entries, dockerfile]);
  }
  if (req.context) {
    if (Math.floor((req.context.length * 3) / 4) - 2 > maxBytes) throw tooLarge(`about ${Math.floor((req.context.length * 3) / 4)}`);
    let tar = Buffer.from(req.context, 'base64');
    if (tar[0] === 0x1f && tar[1] === 0x8b) {
      try {
        tar = zlib.gunzipSync(tar, { maxOutputLength: maxBytes + 1 });
      } catch (err) {
        if ((err as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE' || /larger than/.test(errorMessage(err))) throw tooLarge(`more than ${maxBytes}`);
        throw new FaasError('validation_error', `context is not a valid gzip stream: ${errorMessage(err)}`, 'context');
      }
    }
    if (tar.length > maxBytes) throw tooLarge(tar.length);
    if (tar.length % 512 !== 0) throw new FaasError('validation_error', 'context is not a tar archive (its length is not a multiple of 512)', 'context');
    return Buffer.concat([tar.subarray(0, tarEnd(tar)), tarBody([dockerfile]), Buffer.alloc(1024)]);
  }
  return tarFiles([dockerfile]);
}

// --- Dockerfile --------------------------------------------------------------------------------------------

/** The images a Dockerfile builds FROM (stage names, `scratch` and references with variables left out). */
export function fromImages(dockerfile: string): string[] {
  const logical = dockerfile
    .replace(/\\\r?\n/g, ' ')
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
  const stages = new Set<string>();
  const images: string[] = [];
  let sawFrom = false;
  for (const line of logical) {
    const words = line.split(/\s+/);
    if (words[0]?.toUpperCase() !== 'FROM') continue;
    sawFrom = true;
    const args = words.slice(1).filter((w) => !w.startsWith('--'));
    const image = args[0];
    if (args[1]?.toUpperCase() === 'AS' && args[2]) stages.add(args[2].toLowerCase());
    if (!image || image.includes('$') || image.toLowerCase() === 'scratch' || stages.has(image.toLowerCase())) continue;
    images.push(image);
  }
  if (!sawFrom) throw new FaasError('validation_error', 'the Dockerfile has no FROM instruction', 'dockerfile');
  return images;
}

/** `name` with `:latest` when it has no tag. */
export function normalizeName(name: string): string {
  const slash = name.lastIndexOf('/');
  return name.indexOf(':', slash + 1) === -1 ? `${name}:latest` : name;
}

// --- service -----------------------------------------------------------------------------------------------

export interface PreparedBuild {
  name: string;
  tenant: string;
  tar: Buffer;
  network: 'none' | 'bridge';
}

interface BuildMessage {
  stream?: string;
  error?: string;
  errorDetail?: { message?: string };
  aux?: { ID?: string };
}

export class TemplateService {
  private readonly where: string;

  /** `docker` should have no request timeout: a build step may be silent for long. */
  constructor(
    private readonly docker: Docker,
    private readonly opts: { maxContextBytes?: number; timeoutMs?: number } = {},
  ) {
    this.where = 'the Docker engine';
  }

  /** Everything that can be checked before building; throws FaasErrors with 4xx codes. */
  async prepare(req: BuildImageRequest, tenant = DEFAULT_TENANT): Promise<PreparedBuild> {
    const name = normalizeName(req.name);
    if (BASE_IMAGES.some((b) => b.tag === name)) {
      throw new FaasError('conflict', `"${name}" is a built-in image; choose another name for a template`, 'name');
    }
    const tar = contextTar(req, this.opts.maxContextBytes);
    for (const image of fromImages(req.dockerfile)) {
      checkImageName(image, 'dockerfile');
      try {
        await this.docker.getImage(image).inspect();
      } catch (err) {
        if (!isNotFound(err)) throw engineError(err, this.where, `looking up ${image}`);
        throw new FaasError(
          'image_not_found',
          `FROM image "${image}" is not in the engine (no registry is reachable, nothing is pulled); build on an image from \`faas images ls\``,
          'dockerfile',
        );
      }
    }
    const existing = await this.inspect(name);
    if (existing && existing.Config?.Labels?.[TEMPLATE_LABEL] !== 'true') {
      throw new FaasError('conflict', `an image named "${name}" exists and was not built as a template; choose another name`, 'name');
    }
    if (existing && (existing.Config?.Labels?.[TENANT_LABEL] ?? DEFAULT_TENANT) !== tenant) {
      throw new FaasError('conflict', `the name "${name}" is taken by another tenant's template; choose another name`, 'name');
    }
    return { name, tenant, tar, network: req.network ?? 'none' };
  }

  /** Builds a prepared template; `onEvent` gets the log line by line. Fails with the failing step and its output. */
  async run(build: PreparedBuild, onEvent?: (event: ImageBuildEvent) => void): Promise<ImageInfo> {
    const previous = await this.inspect(build.name);
    let stream: NodeJS.ReadableStream;
    try {
      stream = await this.docker.buildImage(Readable.from([build.tar]), {
        t: build.name,
        dockerfile: DOCKERFILE_NAME,
        labels: { [TEMPLATE_LABEL]: 'true', [TENANT_LABEL]: build.tenant, 'faas.managed': 'true' },
        networkmode: build.network,
        memory: BUILD_LIMITS.memoryBytes,
        memswap: BUILD_LIMITS.memoryBytes,
        cpuperiod: 100_000,
        cpuquota: BUILD_LIMITS.cpuCores * 100_000,
        rm: true,
        forcerm: true,
      });
    } catch (err) {
      throw engineError(err, this.where, `building ${build.name}`);
    }
    let step = '';
    let stepOutput: string[] = [];
    const layers: string[] = [];
    let pending = '';
    const line = (raw: string) => {
      // The classic builder colours RUN steps' stderr.
      const text = raw.replace(/\x1b\[[0-9;]*m/g, '');
      if (!text.trim()) return;
      if (/^Step \d+\/\d+ : /.test(text)) {
        step = text;
        stepOutput = [];
      } else if (/^ ---> [0-9a-f]{12}$/.test(text)) {
        layers.push(text.slice(6));
      } else if (!/^ ---> |^Removing intermediate container /.test(text)) {
        stepOutput.push(text);
        if (stepOutput.length > 50) stepOutput.shift();
      }
      onEvent?.({ type: 'log', line: text });
    };
    const timeoutMs = this.opts.timeoutMs ?? BUILD_LIMITS.timeoutMs;
    let timedOut = false;
    // Closing the connection makes the engine cancel the build.
    const timer = setTimeout(() => {
      timedOut = true;
      (stream as NodeJS.ReadableStream & { destroy(err?: Error): void }).destroy(new Error('build timeout'));
    }, timeoutMs);
    const failure = await new Promise<string | null>((resolve, reject) => {
      this.docker.modem.followProgress(
        stream,
        (err: Error | null, output: BuildMessage[]) => {
          clearTimeout(timer);
          if (pending) line(pending);
          pending = '';
          if (timedOut) return resolve(`the build took longer than ${Math.round(timeoutMs / 1000)} s and was cancelled`);
          if (err) return reject(engineError(err, this.where, `building ${build.name}`));
          const failed = output.find((o) => o.error || o.errorDetail);
          resolve(failed ? (failed.errorDetail?.message ?? failed.error ?? 'unknown error') : null);
        },
        (event: BuildMessage) => {
          if (!event.stream) return;
          const lines = (pending + event.stream).split(/\r?\n/);
          pending = lines.pop() ?? '';
          for (const l of lines) if (l.trim()) line(l);
        },
      );
    });
    if (failure !== null) {
      await this.dropLayers(layers);
      const where = step ? `at ${step.replace(/^Step /, 'step ')}` : 'before the first step';
      // A FROM that named its image through a build argument, so it could not be checked beforehand.
      if (/^Step \d+\/\d+ : FROM /i.test(step) && stepOutput.length === 0) {
        throw new FaasError('image_not_found', `the build of ${build.name} failed ${where}: the image is not in the engine and no registry is reachable (${failure})`, 'dockerfile');
      }
      const output = stepOutput.length ? `\n--- output of that step ---\n${stepOutput.join('\n')}` : '';
      // An unknown instruction or a parse error is the Dockerfile's fault; so is a failing RUN.
      throw new FaasError('validation_error', `the build of ${build.name} failed ${where}: ${failure}${output}`, 'dockerfile');
    }
    const built = await this.inspect(build.name);
    if (!built) throw new FaasError('internal_error', `the build of ${build.name} reported success but the engine has no such image`);
    if (previous && previous.Id !== built.Id) await this.docker.getImage(previous.Id).remove().catch(() => undefined);
    return templateInfo(build.name, built);
  }

  async build(req: BuildImageRequest, onEvent?: (event: ImageBuildEvent) => void, tenant = DEFAULT_TENANT): Promise<ImageInfo> {
    return this.run(await this.prepare(req, tenant), onEvent);
  }

  /** The templates of `tenant`. */
  async list(tenant = DEFAULT_TENANT): Promise<ImageInfo[]> {
    const images = await this.docker.listImages({ filters: { label: [`${TEMPLATE_LABEL}=true`] } }).catch((err) => {
      throw engineError(err, this.where, 'listing images');
    });
    const out: ImageInfo[] = [];
    for (const img of images) {
      if ((img.Labels?.[TENANT_LABEL] ?? DEFAULT_TENANT) !== tenant) continue;
      for (const tag of img.RepoTags ?? []) {
        if (tag === '<none>:<none>') continue;
        out.push({ name: tag, kind: 'template', present: true, id: img.Id, created: new Date(img.Created * 1000).toISOString(), size_bytes: img.Size });
      }
    }
    return out.sort((a, b) => a.name.localeCompare(b.name));
  }

  /** Built-ins (present or not) then templates: what sandboxes can run. */
  async listAll(tenant = DEFAULT_TENANT): Promise<ImageInfo[]> {
    const builtins: ImageInfo[] = [];
    for (const b of BASE_IMAGES) {
      const info = await this.inspect(b.tag);
      let upToDate: boolean | undefined;
      try {
        upToDate = info ? info.Config?.Labels?.[RECIPE_LABEL] === b.recipeHash() : false;
      } catch {
        upToDate = undefined;
      }
      builtins.push({
        name: b.tag,
        kind: 'builtin',
        present: info !== null,
        id: info?.Id ?? null,
        created: info?.Created ?? null,
        size_bytes: info?.Size ?? null,
        description: b.description,
        ...(upToDate !== undefined ? { up_to_date: upToDate } : {}),
      });
    }
    return [...builtins, ...(await this.list(tenant))];
  }

  /** Removes a template (only images built as templates); 409 while a container uses it. */
  async remove(rawName: string, tenant = DEFAULT_TENANT): Promise<void> {
    const name = normalizeName(rawName);
    const info = await this.inspect(name);
    if (!info) throw new FaasError('not_found', `no image named "${name}"`);
    if (info.Config?.Labels?.[TEMPLATE_LABEL] !== 'true') {
      throw new FaasError('forbidden', `"${name}" was not built as a template; the platform removes only images it built from a Dockerfile`);
    }
    if ((info.Config?.Labels?.[TENANT_LABEL] ?? DEFAULT_TENANT) !== tenant) throw new FaasError('not_found', `no image named "${name}"`);
    try {
      await this.docker.getImage(name).remove();
    } catch (err) {
      if ((err as { statusCode?: number }).statusCode === 409) {
        throw new FaasError('conflict', `"${name}" is used by a container; remove the sandboxes running it first`);
      }
      if (isNotFound(err)) throw new FaasError('not_found', `no image named "${name}"`);
      throw engineError(err, this.where, `removing ${name}`);
    }
  }

  /**
   * After a failed build, removes the untagged images its successful steps left (the deepest one; the engine
   * prunes its untagged parents). Tagged images and layers other images build on are left alone.
   */
  private async dropLayers(layers: string[]): Promise<void> {
    const last = layers.at(-1);
    if (!last) return;
    const info = await this.inspect(last).catch(() => null);
    if (!info || (info.RepoTags ?? []).length > 0) return;
    await this.docker.getImage(info.Id).remove().catch(() => undefined);
  }

  private async inspect(name: string): Promise<Docker.ImageInspectInfo | null> {
    try {
      return await this.docker.getImage(name).inspect();
    } catch (err) {
      if (isNotFound(err)) return null;
      throw engineError(err, this.where, `looking up ${name}`);
    }
  }
}

function templateInfo(name: string, info: Docker.ImageInspectInfo): ImageInfo {
  return { name, kind: 'template', present: true, id: info.Id, created: info.Created, size_bytes: info.Size };
}
