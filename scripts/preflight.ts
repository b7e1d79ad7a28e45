/**
 * `npm run preflight [-- -c descent:key=value ...]`: read-only checks of the target account with the
 * deploying credentials (AWS_PROFILE / AWS_REGION as for `cdk deploy`), with the settings of cdk.json
 * and the same `-c` overrides `cdk deploy` takes. Prints what to fix; exits 1 when a check failed.
 */
import { readFileSync } from 'node:fs';
import { App } from 'aws-cdk-lib';
import { maxvCpusFor } from '../core/platform/gpu-instances.ts';
import { formatFindings, preflight, preflightClients } from '../infra/preflight.ts';
import { readSettings } from '../infra/settings.ts';

const cdkJson = JSON.parse(readFileSync(new URL('../cdk.json', import.meta.url), 'utf8')) as {
  context: Record<string, unknown>;
};
const overrides: Record<string, string> = {};
const args = process.argv.slice(2);
for (let i = 0; i < args.length; i++) {
  const pair = args[i] === '-c' || args[i] === '--context' ? args[++i] : undefined;
  const at = pair?.indexOf('=') ?? -1;
  if (!pair || at < 1) {
    console.error(`usage: npm run preflight -- [-c descent:key=value ...] (got ${args[i] ?? 'nothing'})`);
    process.exit(2);
  }
  overrides[pair.slice(0, at)] = pair.slice(at + 1);
}

let settings: ReturnType<typeof readSettings>;
try {
  settings = readSettings(new App({ context: { ...cdkJson.context, ...overrides } }).node);
} catch (error) {
  console.error((error as Error).message);
  process.exit(2);
}
const clients = preflightClients();
const region = await clients.lambda.config.region().catch(() => undefined);
if (!region) {
  console.error('No AWS region: set AWS_REGION (or a profile with a region), as for cdk deploy.');
  process.exit(2);
}
const maxvCpus = maxvCpusFor(settings.instanceTypes, settings.maxWorkers);
const findings = await preflight(clients, { maxvCpus, spot: settings.spot });
console.log(formatFindings(findings, `region ${region}, up to ${maxvCpus} GPU vCPUs`));
process.exit(findings.some((f) => f.status === 'fail') ? 1 : 0);
