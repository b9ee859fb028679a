/** `faas keys`: the admin's commands for tenants' API keys (the admin key from --api-key / $FAAS_API_KEY). */
import type { ApiKeyInfo } from '@faas/sdk';
import { CliError, type Command } from '../command.js';
import { CLIENT_OPTIONS, CLIENT_OPTIONS_HELP, clientFrom, parseCommandLine, printJson, subcommands, table, withErrors } from '../client-options.js';
import { findTenant } from './tenants.js';

const HELP = `Usage: faas keys <subcommand> [options]

API keys of tenants (admin API: --api-key / $FAAS_API_KEY must be the gateway's admin key). TENANT is a tenant's
id or name.

Subcommands:
  create TENANT          create a key; prints the secret, which is shown this once only
  ls | list TENANT       list the tenant's keys (prefixes only)
  revoke TENANT KEY_ID   revoke a key: requests with it are refused from now on

Every subcommand accepts:
${CLIENT_OPTIONS_HELP}`;

const HELPS: Record<string, string> = {
  create: `Usage: faas keys create TENANT\n\nCreates an API key for TENANT and prints it (with --json: the key object, secret in "key"). Store it\nnow: it is not shown again.\n\nOptions:\n${CLIENT_OPTIONS_HELP}`,
  ls: `Usage: faas keys ls TENANT\n\nLists TENANT's keys: id, prefix, dates; revoked ones too (alias: list).\n\nOptions:\n${CLIENT_OPTIONS_HELP}`,
  revoke: `Usage: faas keys revoke TENANT KEY_ID\n\nRevokes a key; requests with it fail with "unauthorized" from now on.\n\nOptions:\n${CLIENT_OPTIONS_HELP}`,
};
const ARITY: Record<string, string[]> = { create: ['TENANT'], ls: ['TENANT'], revoke: ['TENANT', 'KEY_ID'] };
const ALIASES: Record<string, string> = { list: 'ls', rm: 'revoke' };

/** `create TENANT`, `ls TENANT`, `revoke TENANT KEY_ID`. */
async function keyCommand(args: string[], sub: string): Promise<number> {
  const names = ARITY[sub]!;
  const { values, positionals } = parseCommandLine(args, CLIENT_OPTIONS, `run \`faas keys ${sub} --help\` for usage`);
  if (values.help) {
    console.log(HELPS[sub]);
    return 0;
  }
  if (positionals.length < names.length) throw new CliError(`missing ${names[positionals.length]}: faas keys ${sub} ${names.join(' ')}`);
  if (positionals.length > names.length) throw new CliError(`unexpected argument "${positionals[names.length]}"`);
  const [tenantArg, keyId] = positionals as [string, string | undefined];
  const client = clientFrom(values);
  return withErrors(async () => {
    const tenant = await findTenant(client, tenantArg);
    switch (sub) {
      case 'create': {
        const key = await client.tenants.createKey(tenant.id);
        if (values.json) printJson(key);
        else console.log(key.key);
        process.stderr.write(`faas keys: key ${key.id} of tenant ${tenant.name}: store it now, it will not be shown again\n`);
        return 0;
      }
      case 'ls': {
        const keys = await client.tenants.listKeys(tenant.id);
        if (values.json) printJson(keys);
        else if (keys.length === 0) console.log(`no keys for tenant ${tenant.name}`);
        else console.log(table(['ID', 'PREFIX', 'CREATED', 'LAST USED', 'REVOKED'], keys.map(row)));
        return 0;
      }
      default: {
        const key = await client.tenants.revokeKey(tenant.id, keyId ?? '');
        if (values.json) printJson(key);
        else console.log(`${key.id} revoked`);
        return 0;
      }
    }
  });
}

export const command: Command = {
  summary: 'manage tenants\' API keys (admin): create, ls, revoke',
  run: subcommands('keys', HELP, { create: keyCommand, ls: keyCommand, revoke: keyCommand }, ALIASES),
};

function row(k: ApiKeyInfo): string[] {
  return [k.id, k.prefix, k.createdAt, k.lastUsedAt ?? '-', k.revokedAt ?? '-'];
}
