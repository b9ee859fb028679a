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
import type { FaasClient, NetworkMode } from '@faas/sdk';
import { CliError, type Command } from '../command.js';
import { clientFrom, withErrors } from '../client-options.js';

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

/** Builds a template through the gateway (the SDK's `images.build`), printing its log as it streams. */
async function buildTemplate(client: FaasClient, opts: { name: string; file: string; dir: string; network?: string | undefined; json: boolean }): Promise<number> {
  let dockerfile: string;
  let context: Buffer;
  try {
    dockerfile = fs.readFileSync(opts.file, 'utf8');
    context = tarDirectory(opts.dir);
  } catch (err) {
    throw new CliError(errorMessage(err), 2);
  }
  const onLog = (line: string) => console.log(opts.json ? JSON.stringify({ type: 'log', line }) : line);
  const image = await withErrors(() =>
    client.images.build({ name: opts.name, dockerfile, context, ...(opts.network ? { network: opts.network as NetworkMode } : {}) }, { onLog }),
  );
  console.log(opts.json ? JSON.stringify({ type: 'done', image }) : `built ${image.name} (${image.id?.slice(7, 19) ?? '?'})`);
  return 0;
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
      return buildTemplate(clientFrom(values), { name: values.name, file, dir, network: values.network, json: values.json ?? false });
    }
    if (sub === 'rm' || sub === 'remove') {
      if (names.length === 0) throw new CliError('name the template to remove');
      const client = clientFrom(values);
      for (const name of names) {
        await withErrors(() => client.images.delete(name));
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
