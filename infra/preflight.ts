/**
 * The preflight (`npm run preflight`): read-only AWS calls with the deploying credentials that find,
 * before `cdk deploy`, what would make the first deploy roll back or leave a deployment that never
 * trains: the service-linked roles of AWS Batch and ECS, the account's G/VT vCPU quota against the
 * compute environments' maximum, Lambda's concurrency, and the CDK bootstrap stack. Each check
 * says what to fix. The clients are injected; the tests give them recorded responses.
 */
import { CloudFormationClient, DescribeStacksCommand } from '@aws-sdk/client-cloudformation';
import { GetRoleCommand, IAMClient } from '@aws-sdk/client-iam';
import { GetAccountSettingsCommand, LambdaClient } from '@aws-sdk/client-lambda';
import {
  GetAWSDefaultServiceQuotaCommand,
  GetServiceQuotaCommand,
  ServiceQuotasClient,
} from '@aws-sdk/client-service-quotas';

export type Status = 'ok' | 'warn' | 'fail';

export interface Finding {
  readonly check: string;
  readonly status: Status;
  readonly message: string;
  /** What to do about it (a command when there is one). */
  readonly fix?: string;
}

export interface PreflightClients {
  readonly iam: IAMClient;
  readonly quotas: ServiceQuotasClient;
  readonly lambda: LambdaClient;
  readonly cloudformation: CloudFormationClient;
}

export interface PreflightTarget {
  /** The compute environments' maximum vCPUs (`maxWorkers` × the largest instance's vCPUs). */
  readonly maxvCpus: number;
  /** Whether a Spot compute environment is deployed too (its quota is checked as well). */
  readonly spot: boolean;
  /** The bootstrap stack's name (`cdk bootstrap --toolkit-stack-name`). @default 'CDKToolkit' */
  readonly toolkitStackName?: string;
}

/** The bootstrap version the synthesized stack requires (`requiresBootstrapStackVersion` in cdk.out). */
export const MIN_BOOTSTRAP_VERSION = 6;
/** Below this account concurrency, the API, the dispatcher and the event handlers throttle one another. */
export const MIN_LAMBDA_CONCURRENCY = 50;
/** Service Quotas codes (EC2): running on-demand G and VT instances; all G and VT Spot requests (vCPUs). */
export const GPU_QUOTAS = { onDemand: 'L-DB2E81BA', spot: 'L-3819A6DF' } as const;
const LAMBDA_CONCURRENCY_QUOTA = 'L-B99A9384';

export function preflightClients(): PreflightClients {
  return {
    iam: new IAMClient({}),
    quotas: new ServiceQuotasClient({}),
    lambda: new LambdaClient({}),
    cloudformation: new CloudFormationClient({}),
  };
}

const errorName = (error: unknown): string =>
  typeof error === 'object' && error !== null && 'name' in error
    ? String((error as { name: unknown }).name)
    : '';

/** A check that threw (no permission, no network) is a failure that says so, not a crash. */
async function guarded(check: string, run: () => Promise<Finding>): Promise<Finding> {
  try {
    return await run();
  } catch (error) {
    return {
      check,
      status: 'fail',
      message: `could not check: ${errorName(error) || 'error'}: ${(error as Error).message}`,
      fix: 'Run the preflight with the credentials that will deploy (they need iam:GetRole, servicequotas:GetServiceQuota, lambda:GetAccountSettings, cloudformation:DescribeStacks).',
    };
  }
}

async function serviceLinkedRole(iam: IAMClient, roleName: string, service: string): Promise<Finding> {
  const check = `service-linked role ${roleName}`;
  return guarded(check, async () => {
    try {
      await iam.send(new GetRoleCommand({ RoleName: roleName }));
      return { check, status: 'ok', message: 'exists' };
    } catch (error) {
      if (errorName(error) !== 'NoSuchEntityException') throw error;
      return {
        check,
        status: 'fail',
        message: `missing: creating it during the deploy races with the resources that need it and can roll the first deploy back`,
        fix: `aws iam create-service-linked-role --aws-service-name ${service}`,
      };
    }
  });
}

async function quotaValue(quotas: ServiceQuotasClient, code: string): Promise<number | undefined> {
  try {
    return (await quotas.send(new GetServiceQuotaCommand({ ServiceCode: 'ec2', QuotaCode: code }))).Quota
      ?.Value;
  } catch (error) {
    // No applied value: the account has the default.
    if (errorName(error) !== 'NoSuchResourceException') throw error;
    return (await quotas.send(new GetAWSDefaultServiceQuotaCommand({ ServiceCode: 'ec2', QuotaCode: code })))
      .Quota?.Value;
  }
}

async function gpuQuota(
  quotas: ServiceQuotasClient,
  kind: 'onDemand' | 'spot',
  maxvCpus: number,
): Promise<Finding> {
  const name =
    kind === 'spot' ? 'All G and VT Spot Instance Requests' : 'Running On-Demand G and VT instances';
  const check = `EC2 quota "${name}"`;
  return guarded(check, async () => {
    const value = (await quotaValue(quotas, GPU_QUOTAS[kind])) ?? 0;
    const fix = `aws service-quotas request-service-quota-increase --service-code ec2 --quota-code ${GPU_QUOTAS[kind]} --desired-value ${maxvCpus}`;
    if (value >= maxvCpus)
      return { check, status: 'ok', message: `${value} vCPUs, the compute environment may use ${maxvCpus}` };
    if (value === 0) {
      return {
        check,
        status: 'fail',
        message: `0 vCPUs: no GPU instance can start, and every job would wait until it fails NO_GPU_CAPACITY (the compute environment may use ${maxvCpus})`,
        fix,
      };
    }
    return {
      check,
      status: 'warn',
      message: `${value} vCPUs, below the ${maxvCpus} the compute environment may use: at most ${Math.floor(value / 4)} 4-vCPU GPU instances at once`,
      fix: `${fix}   (or lower descent:maxWorkers)`,
    };
  });
}

async function lambdaConcurrency(lambda: LambdaClient): Promise<Finding> {
  const check = 'Lambda concurrent executions';
  return guarded(check, async () => {
    const settings = await lambda.send(new GetAccountSettingsCommand({}));
    const limit = settings.AccountLimit?.ConcurrentExecutions ?? 0;
    const fix = `aws service-quotas request-service-quota-increase --service-code lambda --quota-code ${LAMBDA_CONCURRENCY_QUOTA} --desired-value 1000`;
    if (limit >= 4 * MIN_LAMBDA_CONCURRENCY) return { check, status: 'ok', message: `${limit}` };
    return {
      check,
      status: limit < MIN_LAMBDA_CONCURRENCY ? 'fail' : 'warn',
      message: `${limit} (new accounts start at 10): the API's functions, the dispatcher and the Batch event handler share it and throttle one another`,
      fix,
    };
  });
}

async function bootstrap(cloudformation: CloudFormationClient, stackName: string): Promise<Finding> {
  const check = `CDK bootstrap stack ${stackName}`;
  const fix = 'npx cdk bootstrap   (with the target account and region)';
  return guarded(check, async () => {
    let stack: { StackStatus?: string; Outputs?: { OutputKey?: string; OutputValue?: string }[] } | undefined;
    try {
      stack = (await cloudformation.send(new DescribeStacksCommand({ StackName: stackName }))).Stacks?.[0];
    } catch (error) {
      if (!/does not exist/.test((error as Error).message)) throw error;
    }
    if (!stack)
      return { check, status: 'fail', message: 'missing: cdk deploy has nowhere to put its assets', fix };
    const status = stack.StackStatus ?? 'UNKNOWN';
    if (!/_COMPLETE$/.test(status) || /ROLLBACK|DELETE/.test(status)) {
      return {
        check,
        status: 'fail',
        message: `in state ${status}`,
        fix: `inspect it in CloudFormation, then ${fix}`,
      };
    }
    const version = Number(stack.Outputs?.find((o) => o.OutputKey === 'BootstrapVersion')?.OutputValue);
    if (!Number.isFinite(version) || version < MIN_BOOTSTRAP_VERSION) {
      return {
        check,
        status: 'fail',
        message: `version ${version || 'unknown'}, this app needs ${MIN_BOOTSTRAP_VERSION} or later`,
        fix,
      };
    }
    return { check, status: 'ok', message: `version ${version}` };
  });
}

/** Every check, in the order a person fixes them. */
export async function preflight(clients: PreflightClients, target: PreflightTarget): Promise<Finding[]> {
  return Promise.all([
    bootstrap(clients.cloudformation, target.toolkitStackName ?? 'CDKToolkit'),
    serviceLinkedRole(clients.iam, 'AWSServiceRoleForBatch', 'batch.amazonaws.com'),
    serviceLinkedRole(clients.iam, 'AWSServiceRoleForECS', 'ecs.amazonaws.com'),
    ...(target.spot
      ? [serviceLinkedRole(clients.iam, 'AWSServiceRoleForEC2Spot', 'spot.amazonaws.com')]
      : []),
    gpuQuota(clients.quotas, 'onDemand', target.maxvCpus),
    ...(target.spot ? [gpuQuota(clients.quotas, 'spot', target.maxvCpus)] : []),
    lambdaConcurrency(clients.lambda),
  ]);
}

const MARK: Record<Status, string> = { ok: 'ok  ', warn: 'WARN', fail: 'FAIL' };

/** The report a person reads: one line per check, the fix under each that needs one, a verdict. */
export function formatFindings(findings: readonly Finding[], where: string): string {
  const lines = [`descent preflight (${where})`, ''];
  for (const f of findings) {
    lines.push(`  ${MARK[f.status]}  ${f.check}: ${f.message}`);
    if (f.fix && f.status !== 'ok') lines.push(`        fix: ${f.fix}`);
  }
  const failed = findings.filter((f) => f.status === 'fail').length;
  const warned = findings.filter((f) => f.status === 'warn').length;
  lines.push(
    '',
    failed > 0
      ? `${failed} check${failed > 1 ? 's' : ''} failed: fix ${failed > 1 ? 'them' : 'it'} before \`npx cdk deploy\`.`
      : warned > 0
        ? `Ready to deploy, with ${warned} warning${warned > 1 ? 's' : ''}.`
        : 'Ready to deploy.',
  );
  return lines.join('\n');
}
