/** `faas images build|ls`: the platform's own base images, built locally without a registry. */
import { parseArgs } from 'node:util';
import Docker from 'dockerode';
import { loadConfig } from '../../config.js';
import { errorMessage } from '../../errors.js';
import { BASE_IMAGES, RECIPE_LABEL, ensureBaseImage } from '../../runtimes/docker/base-images.js';
import { CliError, type Command } from '../command.js';

const HELP = `Usage:
  faas images build [NAME...]   build the platform's base images (all by default); skips those up to date
  faas images ls [--json]       list the base images and whether the engine has them

Images: ${BASE_IMAGES.map((i) => `${i.name} (${i.tag}): ${i.description}`).join('; ')}
`;

export const command: Command = {
  summary: 'build and list base images',
  async run(args) {
    const { values, positionals } = (() => {
      try {
        return parseArgs({ args, allowPositionals: true, options: { json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } } });
      } catch (err) {
        throw new CliError(`${errorMessage(err)}\n\n${HELP}`);
      }
    })();
    const [sub, ...names] = positionals;
    if (values.help || sub === undefined) {
      console.log(HELP);
      return values.help ? 0 : 2;
    }
    const docker = new Docker({ socketPath: loadConfig().dockerSocket });
    if (sub === 'build') {
      const unknown = names.filter((n) => !BASE_IMAGES.some((i) => i.name === n || i.tag === n));
      if (unknown.length) throw new CliError(`unknown image ${unknown.join(', ')}; known: ${BASE_IMAGES.map((i) => i.name).join(', ')}`);
      const chosen = names.length ? BASE_IMAGES.filter((i) => names.includes(i.name) || names.includes(i.tag)) : BASE_IMAGES;
      for (const image of chosen) {
        const tty = process.stdout.isTTY;
        if (tty) process.stdout.write(`building ${image.tag} …`);
        try {
          const outcome = await ensureBaseImage(docker, image);
          const line = `${image.tag}: ${outcome.status} (${outcome.id.slice(7, 19)}, ${outcome.ms} ms)`;
          if (tty) process.stdout.write(`\r\x1b[K${line}\n`);
          else console.log(line);
        } catch (err) {
          if (tty) process.stdout.write('\n');
          throw new CliError(errorMessage(err), 1);
        }
      }
      return 0;
    }
    if (sub === 'ls' || sub === 'list') {
      const rows = [];
      for (const image of BASE_IMAGES) {
        const info = await docker
          .getImage(image.tag)
          .inspect()
          .catch(() => null);
        rows.push({ name: image.name, image: image.tag, present: info !== null, id: info?.Id ?? null, recipe: info?.Config?.Labels?.[RECIPE_LABEL] ?? null, size: info?.Size ?? null });
      }
      if (values.json) console.log(JSON.stringify(rows, null, 2));
      else for (const r of rows) console.log(`${r.image.padEnd(24)} ${r.present ? `present  ${(r.size! / 1e6).toFixed(1)} MB` : 'missing (run `faas images build`)'}`);
      return 0;
    }
    throw new CliError(`unknown subcommand "${sub}"\n\n${HELP}`);
  },
};
