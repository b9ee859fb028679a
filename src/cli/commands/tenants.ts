/** `faas tenants`: the admin's commands for tenants and their quotas (the admin key from --api-key / $FAAS_API_KEY). */
import { NotFoundError, type FaasClient, type Tenant, type TenantQuotas } from '@faas/sdk';
import { CliError, type Command } from '../command.js';
import { CLIENT_OPTIONS, CLIENT_OPTIONS_HELP, clientFrom, numberOption, parseCommandLine, printJson, table, withErrors, printHelp, subcommands } from '../client-options.js';

const QUOTA_OPTIONS = {
  'max-sandboxes': { type: 'string' },
  'max-memory-mb': { type: 'string' },
  'max-cpus': { type: 'string' },
  'max-pids': { type: 'string' },
  'executions-per-minute': { type: 'string' },
  'snapshot-bytes': { type: 'string' },
} as const;

/** Flag → quota field, and whether fractions are allowed. */
const QUOTA_FLAGS: ReadonlyArray<[keyof typeof QUOTA_OPTIONS, keyof TenantQuotas, boolean]> = [
  ['max-sandboxes', 'maxSandboxes', false],
  ['max-memory-mb', 'maxMemoryMb', false],
  ['max-cpus', 'maxCpuCores', true],
  ['max-pids', 'maxPids', false],
  ['executions-per-minute', 'executionsPerMinute', false],
  ['snapshot-bytes', 'snapshotBytes', false],
];

const QUOTA_HELP = [
  '  --max-sandboxes N          sandboxes running at once',
  '  --max-memory-mb N          ceiling and default of a sandbox\'s memory (MiB)',
  '  --max-cpus N               ceiling and default of a sandbox\'s CPU cores (fractions allowed)',
  '  --max-pids N               ceiling and default of a sandbox\'s process limit',
  '  --executions-per-minute N  executions and execs started per rolling minute',
  '  --snapshot-bytes N         stored bytes of snapshots',
].join('\n');

const HELP = `Usage: faas tenants <subcommand> [options]

Tenants and their quotas (admin API: --api-key / $FAAS_API_KEY must be the gateway's admin key).
Keys of a tenant: see \`faas keys --help\`.

Subcommands:
  create NAME [quota options]   create a tenant; prints its id
  ls | list                     list tenants
  show ID                       show one tenant (ID or name)
  quotas ID [quota options]     show a tenant's quotas, or change the ones given

Every subcommand accepts:
${CLIENT_OPTIONS_HELP}

Run \`faas tenants <subcommand> --help\` for its options.`;

const CREATE_HELP = `Usage: faas tenants create NAME [options]

Creates a tenant (NAME: 1-63 lowercase letters, digits, ".", "_" or "-") and prints its id (with --json: the
tenant). Quotas not given mean no limit.

Options:
${QUOTA_HELP}
${CLIENT_OPTIONS_HELP}`;

const QUOTAS_HELP = `Usage: faas tenants quotas ID [options]

Without quota options: shows the tenant's quotas. With them: changes those quotas and keeps the others; "none"
as a value removes that limit, --reset starts from no limits at all.

Options:
${QUOTA_HELP}
  --reset                    drop the quotas not given
${CLIENT_OPTIONS_HELP}`;

const simpleHelp = (usage: string, what: string): string => `Usage: faas tenants ${usage}\n\n${what}\n\nOptions:\n${CLIENT_OPTIONS_HELP}`;
const ALIASES: Record<string, string> = { list: 'ls', get: 'show' };

/** The quota flags given; `none` maps to `null` (remove that limit). */
function quotaFlags(values: Partial<Record<keyof typeof QUOTA_OPTIONS, string | undefined>>): Partial<Record<keyof TenantQuotas, number | null>> {
  const out: Partial<Record<keyof TenantQuotas, number | null>> = {};
  for (const [flag, field, fraction] of QUOTA_FLAGS) {
    const raw = values[flag];
    if (raw === undefined) continue;
    out[field] = raw === 'none' ? null : (numberOption(flag, raw, fraction) as number);
  }
  return out;
}

function applyQuotas(base: TenantQuotas, changes: Partial<Record<keyof TenantQuotas, number | null>>): TenantQuotas {
  const quotas: TenantQuotas = { ...base };
  for (const [field, value] of Object.entries(changes) as Array<[keyof TenantQuotas, number | null]>) {
    if (value === null) delete quotas[field];
    else quotas[field] = value;
  }
  return quotas;
}

export function describeQuotas(q: TenantQuotas): string {
  const parts: string[] = [];
  for (const [flag, field] of QUOTA_FLAGS) if (q[field] !== undefined) parts.push(`${flag}=${q[field]}`);
  return parts.length === 0 ? 'no limits' : parts.join(' ');
}

function showTenant(t: Tenant): string {
  const lines: Array<[string, string]> = [
    ['id', t.id],
    ['name', t.name],
    ['created', t.createdAt],
    ['quotas', describeQuotas(t.quotas)],
  ];
  return lines.map(([k, v]) => `${`${k}:`.padEnd(9)}${v}`).join('\n');
}

/** A tenant by id, else by name. */
export async function findTenant(client: FaasClient, idOrName: string): Promise<Tenant> {
  try {
    return await client.tenants.get(idOrName);
  } catch (err) {
    if (!(err instanceof NotFoundError)) throw err;
    const byName = (await client.tenants.list()).find((t) => t.name === idOrName);
    if (byName) return byName;
    throw err;
  }
}

function oneArg(positionals: string[], usage: string): string {
  const [arg, extra] = positionals;
  if (arg === undefined) throw new CliError(`missing an argument: faas tenants ${usage}`);
  if (extra !== undefined) throw new CliError(`unexpected argument "${extra}"`);
  return arg;
}

async function create(args: string[]): Promise<number> {
  const { values, positionals } = parseCommandLine(args, { ...CLIENT_OPTIONS, ...QUOTA_OPTIONS }, 'run `faas tenants create --help` for usage');
  if (values.help) return printHelp(CREATE_HELP);
  const name = oneArg(positionals, 'create NAME');
  const quotas = applyQuotas({}, quotaFlags(values));
  const client = clientFrom(values);
  const tenant = await withErrors(() => client.tenants.create(Object.keys(quotas).length > 0 ? { name, quotas } : { name }));
  if (values.json) printJson(tenant);
  else console.log(tenant.id);
  return 0;
}

async function quotas(args: string[]): Promise<number> {
  const { values, positionals } = parseCommandLine(args, { ...CLIENT_OPTIONS, ...QUOTA_OPTIONS, reset: { type: 'boolean' } }, 'run `faas tenants quotas --help` for usage');
  if (values.help) return printHelp(QUOTAS_HELP);
  const id = oneArg(positionals, 'quotas ID [options]');
  const changes = quotaFlags(values);
  const client = clientFrom(values);
  return withErrors(async () => {
    let tenant = await findTenant(client, id);
    if (Object.keys(changes).length > 0 || values.reset) {
      tenant = await client.tenants.setQuotas(tenant.id, applyQuotas(values.reset ? {} : tenant.quotas, changes));
    }
    if (values.json) printJson(tenant.quotas);
    else console.log(describeQuotas(tenant.quotas));
    return 0;
  });
}

async function simple(args: string[], sub: string): Promise<number> {
  const { values, positionals } = parseCommandLine(args, CLIENT_OPTIONS, `run \`faas tenants ${sub} --help\` for usage`);
  if (values.help) return printHelp(sub === 'ls' ? simpleHelp('ls', 'Lists the tenants (alias: list).') : simpleHelp('show ID', 'Shows one tenant, by id or name.'));
  const client = clientFrom(values);
  if (sub === 'ls') {
    if (positionals.length > 0) throw new CliError(`unexpected argument "${positionals[0]}"`);
    const list = await withErrors(() => client.tenants.list());
    if (values.json) printJson(list);
    else if (list.length === 0) console.log('no tenants');
    else console.log(table(['ID', 'NAME', 'CREATED', 'QUOTAS'], list.map((t) => [t.id, t.name, t.createdAt, describeQuotas(t.quotas)])));
    return 0;
  }
  const tenant = await withErrors(() => findTenant(client, oneArg(positionals, 'show ID')));
  if (values.json) printJson(tenant);
  else console.log(showTenant(tenant));
  return 0;
}

export const command: Command = {
  summary: 'manage tenants and their quotas (admin): create, ls, show, quotas',
  run: subcommands('tenants', HELP, { create, ls: simple, show: simple, quotas }, ALIASES),
};
