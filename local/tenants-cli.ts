/**
 * `npm run tenants -- add NAME` creates a local tenant (or gives it a new token) and prints the token
 * as the last line; `npm run tenants -- list` lists the tenants. The running stack sees new tokens
 * without a restart.
 */
import { resolve } from 'node:path';
import { ENV } from '../core/platform/config.ts';
import { TenantTokens } from './tenants.ts';

const usage = 'usage: npm run tenants -- add NAME | list';
const dataDir = resolve(process.env[ENV.dataDir] || '.descent');
const [command, name] = process.argv.slice(2);
const tokens = await TenantTokens.open(dataDir).catch((error: unknown) => {
  process.stderr.write(`cannot open the data folder ${dataDir}: ${(error as Error).message}\n`);
  process.exit(2);
});

if (command === 'add' && name) {
  try {
    const token = await tokens.set(name);
    process.stdout.write(`Tenant "${name}" in ${dataDir}; its API token:\n${token}\n`);
  } catch (error) {
    process.stderr.write(`${(error as Error).message}\n`);
    process.exit(2);
  }
} else if (command === 'list') {
  for (const tenant of tokens.names()) process.stdout.write(`${tenant}\n`);
} else {
  process.stderr.write(`${usage}\n`);
  process.exit(2);
}
