/**
 * `faas images …`: the platform's built-in images (built locally without a registry, straight through the
 * engine) and user templates (built by the gateway from a Dockerfile, over HTTP).
 */
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import Docker from 'dockerode';
import { loadConfig } from '../../config.js';
import { errorMessage } from '../../errors.js';
import { TemplateService, tarDirectory } from '../../platform/templates.js';
import { BASE_IMAGES, type BaseImage, ensureBaseImage } from '../../runtimes/docker/base-images.js';
import { CliError, type Command } from '../command.js';

const HELP = `Usage:
  faas images build [--force] [NAME...]        build the built-in images (all by default); skips those up to date
  faas images build -f Dockerfile --name N [DIR]
                                               build a template through the gateway from a Dockerfile; DIR
                                               (default .) is the build context, sent as a tar (64 MiB at most)
  faas images ls [--json]                      list what sandboxes can run: built-ins and templates
  faas images rm NAME                          remove a template through the gateway

Options:
  --url URL        gateway URL for templates (default $FAAS_URL, then http://127.0.0.1:8080)
  --api-key KEY    API key for templates, when the gateway requires keys (default $FAAS_API_KEY)
  --network MODE   network of a template's RUN steps: none (default) or bridge
  --force          rebuild built-ins even when up to date (e.g. for Debian security updates)

Built-in images: ${BASE_IMAGES.map((i) => `${i.name} (${i.tag}): ${i.description}`).join('; ')}
`;

const SPINNER = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];

/** One image at a time: a live line on a TTY, a few plain lines otherwise. */
async function buildBuiltin(docker: Docker, image: BaseImage, force: boolean): Promise<void> {
  const tty = process.stdout.isTTY === true;
  const started = Date.now();
  let last = '';
  let frame = 0;
  let announced = false;
  const width = () => Math.max(40, (process.stdout.columns ?? 100) - 1);
  const draw = () => {
    const secs = Math.round((Date.now() - started) / 1000);
    const text = `${SPINNER[frame++ % SPINNER.length]} ${image.tag}  building ${secs}s  ${last}`;
    process.stdout.write(`\r\x1b[K${text.slice(0, width())}`);
  };
  const timer = tty ? setInterval(draw, 250) : undefined;
  const onLog = (line: string) => {
    last = line.replace(/^I: /, '').trim();
    if (!tty) {
      // mmdebstrap's phases and the engine's steps; not every line of every package.
      if (!announced) console.log(`${image.tag}: building`);
      announced = true;
      if (/^(I: (downloading|extracting|installing|creating|success)|Step \d)/.test(line)) console.log(`${image.tag}: ${last}`);
    }
  };
  try {
    const outcome = await ensureBaseImage(docker, image, onLog, { force });
    const line = `${image.tag}: ${outcome.status} (${outcome.id.slice(7, 19)}, ${(outcome.ms / 1000).toFixed(1)} s)`;
    if (tty) process.stdout.write(`\r\x1b[K${line}\n`);
    else console.log(line);
  } catch (err) {
    if (tty) process.stdout.write('\r\x1b[K');
    throw new CliError(`${image.tag}: ${errorMessage(err)}`, 1);
  } finally {
    if (timer) clearInterval(timer);
  }
}

function gatewayUrl(flag: string | undefined): string {
  return (flag ?? process.env.FAAS_URL ?? 'http://127.0.0.1:8080').replace(/\/+$/, '');
}

/** The `authorization` header for the key from --api-key or $FAAS_API_KEY, if any. */
function authHeaders(flag: string | undefined): Record<string, string> {
  const key = flag ?? process.env.FAAS_API_KEY;
  return key ? { authorization: `Bearer ${key}` } : {};
}

async function request(url: string, init: RequestInit): Promise<Response> {
  try {
    return await fetch(url, init);
  } catch (err) {
    const cause = (err as { cause?: unknown }).cause;
    throw new CliError(`cannot reach the gateway at ${new URL(url).origin}: ${errorMessage(cause ?? err)}`, 1);
  }
}

async function failure(res: Response): Promise<CliError> {
  const text = await res.text();
  try {
    const body = JSON.parse(text) as { message?: string };
    return new CliError(body.message ?? text, 1);
  } catch {
    return new CliError(`the gateway answered ${res.status}: ${text}`, 1);
  }
}

async function buildTemplate(opts: {
  url: string;
  apiKey: string | undefined;
  name: string;
  file: string;
  dir: string;
  network?: string | undefined;
  json: boolean;
}): Promise<number> {
  let dockerfile: string;
  let context: Buffer;
  try {
    dockerfile = fs.readFileSync(opts.file, 'utf8');
    context = tarDirectory(opts.dir);
  } catch (err) {
    throw new CliError(errorMessage(err), 2);
  }
  const body = JSON.stringify({ name: opts.name, dockerfile, context: context.toString('base64'), ...(opts.network ? { network: opts.network } : {}) });
  const res = await request(`${opts.url}/api/v1/images`, { method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/x-ndjson', ...authHeaders(opts.apiKey) }, body });
  if (!res.ok || !res.body) throw await failure(res);
  let pending = '';
  let outcome: { type: string; image?: { id: string | null; name: string }; message?: string } | null = null;
  const decoder = new TextDecoder();
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
    pending += decoder.decode(chunk, { stream: true });
    const lines = pending.split('\n');
    pending = lines.pop() ?? '';
    for (const line of lines) {
      if (!line.trim()) continue;
      const event = JSON.parse(line) as { type: string; line?: string; image?: { id: string | null; name: string }; message?: string };
      if (opts.json) console.log(line);
      else if (event.type === 'log') console.log(event.line);
      if (event.type === 'done' || event.type === 'error') outcome = event;
    }
  }
  if (outcome?.type === 'done' && outcome.image) {
    if (!opts.json) console.log(`built ${outcome.image.name} (${outcome.image.id?.slice(7, 19) ?? '?'})`);
    return 0;
  }
  throw new CliError(outcome?.message ?? 'the build stream ended without a result', 1);
}

export const command: Command = {
  summary: 'build, list and remove images (built-ins and templates)',
  async run(args) {
    const { values, positionals } = (() => {
      try {
        return parseArgs({
          args,
          allowPositionals: true,
          options: {
            json: { type: 'boolean' },
            force: { type: 'boolean' },
            file: { type: 'string', short: 'f' },
            name: { type: 'string', short: 'n' },
            network: { type: 'string' },
            url: { type: 'string' },
            'api-key': { type: 'string' },
            help: { type: 'boolean', short: 'h' },
          },
        });
      } catch (err) {
        throw new CliError(`${errorMessage(err)}\n\n${HELP}`);
      }
    })();
    const [sub, ...names] = positionals;
    if (values.help || sub === undefined) {
      console.log(HELP);
      return values.help ? 0 : 2;
    }
    if (sub === 'build' && (values.file !== undefined || values.name !== undefined)) {
      if (!values.name) throw new CliError('a template build needs --name NAME');
      if (names.length > 1) throw new CliError(`one build context folder at most, got ${names.join(' ')}`);
      const dir = names[0] ?? '.';
      const file = values.file ?? path.join(dir, 'Dockerfile');
      return buildTemplate({ url: gatewayUrl(values.url), apiKey: values['api-key'], name: values.name, file, dir, network: values.network, json: values.json ?? false });
    }
    if (sub === 'rm' || sub === 'remove') {
      if (names.length === 0) throw new CliError('name the template to remove');
      const url = gatewayUrl(values.url);
      for (const name of names) {
        const res = await request(`${url}/api/v1/images/${encodeURIComponent(name)}`, { method: 'DELETE', headers: authHeaders(values['api-key']) });
        if (!res.ok) throw await failure(res);
        console.log(`removed ${name}`);
      }
      return 0;
    }
    const docker = new Docker({ socketPath: loadConfig().dockerSocket });
    if (sub === 'build') {
      const unknown = names.filter((n) => !BASE_IMAGES.some((i) => i.name === n || i.tag === n));
      if (unknown.length) throw new CliError(`unknown image ${unknown.join(', ')}; known: ${BASE_IMAGES.map((i) => i.name).join(', ')}`);
      const chosen = names.length ? BASE_IMAGES.filter((i) => names.includes(i.name) || names.includes(i.tag)) : BASE_IMAGES;
      for (const image of chosen) await buildBuiltin(docker, image, values.force ?? false);
      return 0;
    }
    if (sub === 'ls' || sub === 'list') {
      const rows = await new TemplateService(docker).listAll().catch((err: unknown) => {
        throw new CliError(errorMessage(err), 1);
      });
      if (values.json) {
        console.log(JSON.stringify(rows, null, 2));
        return 0;
      }
      for (const r of rows) {
        const state = !r.present ? 'missing (run `faas images build`)' : r.up_to_date === false ? 'outdated (run `faas images build`)' : r.kind === 'builtin' ? 'ready' : 'template';
        const size = r.size_bytes !== null ? `${(r.size_bytes / 1e6).toFixed(1)} MB` : '';
        console.log(`${r.name.padEnd(28)} ${r.kind.padEnd(8)} ${size.padStart(9)}  ${state}`);
      }
      return 0;
    }
    throw new CliError(`unknown subcommand "${sub}"\n\n${HELP}`);
  },
};
