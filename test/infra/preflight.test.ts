/**
 * The preflight's logic on recorded AWS responses: the real SDK clients, with their HTTP layer
 * answered in process (IAM and CloudFormation in XML, Service Quotas and Lambda in JSON), errors as
 * the services send them. A fresh account, a ready one, and the checks in between.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CloudFormationClient } from '@aws-sdk/client-cloudformation';
import { IAMClient } from '@aws-sdk/client-iam';
import { LambdaClient } from '@aws-sdk/client-lambda';
import { ServiceQuotasClient } from '@aws-sdk/client-service-quotas';
import { type Finding, formatFindings, GPU_QUOTAS, preflight } from '../../infra/preflight.ts';
import {
  jsonError,
  jsonResponse,
  type RecordedResponse,
  recordedHttp,
  type SentRequest,
  xmlResponse,
} from '../helpers/recorded-http.ts';

interface Account {
  /** Existing service-linked roles, by name. */
  roles: string[];
  /** Applied quota values by code (absent: only the default applies). */
  applied: Record<string, number>;
  /** Default quota values by code. */
  defaults: Record<string, number>;
  concurrency: number;
  /** The bootstrap stack's status and version, or undefined when there is none. */
  bootstrap?: { status: string; version: number };
}

const READY: Account = {
  roles: ['AWSServiceRoleForBatch', 'AWSServiceRoleForECS', 'AWSServiceRoleForEC2Spot'],
  applied: { [GPU_QUOTAS.onDemand]: 64, [GPU_QUOTAS.spot]: 64 },
  defaults: { [GPU_QUOTAS.onDemand]: 0, [GPU_QUOTAS.spot]: 0 },
  concurrency: 1000,
  bootstrap: { status: 'UPDATE_COMPLETE', version: 28 },
};

const FRESH: Account = {
  roles: [],
  applied: {},
  defaults: { [GPU_QUOTAS.onDemand]: 0, [GPU_QUOTAS.spot]: 0 },
  concurrency: 10,
};

const iamAnswer =
  (account: Account) =>
  (request: SentRequest): RecordedResponse => {
    const role = new URLSearchParams(request.body).get('RoleName') ?? '';
    if (!account.roles.includes(role)) {
      return xmlResponse(
        `<ErrorResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/"><Error><Type>Sender</Type><Code>NoSuchEntity</Code><Message>The role with name ${role} cannot be found.</Message></Error><RequestId>r1</RequestId></ErrorResponse>`,
        404,
      );
    }
    return xmlResponse(
      `<GetRoleResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/"><GetRoleResult><Role><Path>/aws-service-role/</Path><RoleName>${role}</RoleName><RoleId>AROAEXAMPLE</RoleId><Arn>arn:aws:iam::123456789012:role/aws-service-role/x/${role}</Arn><CreateDate>2024-01-01T00:00:00Z</CreateDate></Role></GetRoleResult><ResponseMetadata><RequestId>r2</RequestId></ResponseMetadata></GetRoleResponse>`,
    );
  };

const quotaAnswer =
  (account: Account) =>
  (request: SentRequest): RecordedResponse => {
    const target = request.headers['x-amz-target'] ?? '';
    const { QuotaCode } = JSON.parse(request.body) as { QuotaCode: string };
    const quota = (value: number) =>
      jsonResponse({ Quota: { ServiceCode: 'ec2', QuotaCode, Value: value, Unit: 'None' } });
    if (target.endsWith('GetAWSDefaultServiceQuota')) return quota(account.defaults[QuotaCode] ?? 0);
    const applied = account.applied[QuotaCode];
    return applied === undefined
      ? jsonError(
          'NoSuchResourceException',
          'The request failed because the specified resource does not exist.',
        )
      : quota(applied);
  };

const lambdaAnswer = (account: Account) => (): RecordedResponse =>
  jsonResponse({
    AccountLimit: {
      ConcurrentExecutions: account.concurrency,
      UnreservedConcurrentExecutions: account.concurrency,
      TotalCodeSize: 80530636800,
      CodeSizeUnzipped: 262144000,
      CodeSizeZipped: 52428800,
    },
    AccountUsage: { FunctionCount: 0, TotalCodeSize: 0 },
  });

const cloudformationAnswer = (account: Account) => (): RecordedResponse => {
  if (!account.bootstrap) {
    return xmlResponse(
      '<ErrorResponse xmlns="http://cloudformation.amazonaws.com/doc/2010-05-15/"><Error><Type>Sender</Type><Code>ValidationError</Code><Message>Stack with id CDKToolkit does not exist</Message></Error><RequestId>r3</RequestId></ErrorResponse>',
      400,
    );
  }
  const { status, version } = account.bootstrap;
  return xmlResponse(
    `<DescribeStacksResponse xmlns="http://cloudformation.amazonaws.com/doc/2010-05-15/"><DescribeStacksResult><Stacks><member><StackName>CDKToolkit</StackName><StackId>arn:aws:cloudformation:eu-west-1:123456789012:stack/CDKToolkit/1</StackId><CreationTime>2024-01-01T00:00:00Z</CreationTime><StackStatus>${status}</StackStatus><Outputs><member><OutputKey>BucketName</OutputKey><OutputValue>cdk-assets</OutputValue></member><member><OutputKey>BootstrapVersion</OutputKey><OutputValue>${version}</OutputValue></member></Outputs></member></Stacks></DescribeStacksResult><ResponseMetadata><RequestId>r4</RequestId></ResponseMetadata></DescribeStacksResponse>`,
  );
};

function clientsFor(account: Account) {
  const iam = recordedHttp(iamAnswer(account));
  const quotas = recordedHttp(quotaAnswer(account));
  const lambda = recordedHttp(lambdaAnswer(account));
  const cloudformation = recordedHttp(cloudformationAnswer(account));
  return {
    clients: {
      iam: new IAMClient(iam.clientConfig),
      quotas: new ServiceQuotasClient(quotas.clientConfig),
      lambda: new LambdaClient(lambda.clientConfig),
      cloudformation: new CloudFormationClient(cloudformation.clientConfig),
    },
    sent: {
      iam: iam.requests,
      quotas: quotas.requests,
      lambda: lambda.requests,
      cloudformation: cloudformation.requests,
    },
  };
}

const byCheck = (findings: Finding[]) => Object.fromEntries(findings.map((f) => [f.check, f]));

describe('preflight', () => {
  it('passes a ready account, reading only (GetRole, GetServiceQuota, GetAccountSettings, DescribeStacks)', async () => {
    const { clients, sent } = clientsFor(READY);
    const findings = await preflight(clients, { maxvCpus: 16, spot: true });
    assert.deepEqual(
      findings.map((f) => f.status),
      findings.map(() => 'ok'),
      formatFindings(findings, 'test'),
    );
    assert.equal(findings.length, 7);
    const actions = [
      ...sent.iam.map((r) => new URLSearchParams(r.body).get('Action')),
      ...sent.quotas.map((r) => r.headers['x-amz-target']?.split('.')[1]),
      ...sent.cloudformation.map((r) => new URLSearchParams(r.body).get('Action')),
      ...sent.lambda.map((r) => `${r.method} ${r.path}`),
    ];
    for (const action of actions)
      assert.match(String(action), /^(Get|Describe|GET )/, `${action} is not read-only`);
    assert.match(formatFindings(findings, 'test'), /Ready to deploy\.$/);
  });

  it('fails a fresh account on every check that would break the first deploy, and says how to fix each', async () => {
    const { clients } = clientsFor(FRESH);
    const findings = byCheck(await preflight(clients, { maxvCpus: 16, spot: false }));
    const batch = findings['service-linked role AWSServiceRoleForBatch'];
    assert.equal(batch?.status, 'fail');
    assert.equal(batch?.fix, 'aws iam create-service-linked-role --aws-service-name batch.amazonaws.com');
    assert.equal(
      findings['service-linked role AWSServiceRoleForECS']?.fix,
      'aws iam create-service-linked-role --aws-service-name ecs.amazonaws.com',
    );
    const quota = findings['EC2 quota "Running On-Demand G and VT instances"'];
    assert.equal(quota?.status, 'fail');
    assert.match(quota?.message ?? '', /^0 vCPUs/);
    assert.match(quota?.fix ?? '', /--quota-code L-DB2E81BA --desired-value 16/);
    const lambda = findings['Lambda concurrent executions'];
    assert.equal(lambda?.status, 'fail');
    assert.match(lambda?.fix ?? '', /--quota-code L-B99A9384/);
    const bootstrap = findings['CDK bootstrap stack CDKToolkit'];
    assert.equal(bootstrap?.status, 'fail');
    assert.match(bootstrap?.fix ?? '', /cdk bootstrap/);
    assert.equal(
      findings['service-linked role AWSServiceRoleForEC2Spot'],
      undefined,
      'no Spot check without spot',
    );
    const report = formatFindings(Object.values(findings), 'region eu-west-1');
    assert.match(report, /FAIL {2}EC2 quota/);
    assert.match(report, /5 checks failed: fix them before `npx cdk deploy`\./);
  });

  it('warns when the quota allows some GPU instances but fewer than the compute environment may start', async () => {
    const { clients } = clientsFor({ ...READY, applied: { [GPU_QUOTAS.onDemand]: 8 } });
    const quota = byCheck(await preflight(clients, { maxvCpus: 16, spot: false }))[
      'EC2 quota "Running On-Demand G and VT instances"'
    ];
    assert.equal(quota?.status, 'warn');
    assert.match(quota?.message ?? '', /8 vCPUs, below the 16/);
  });

  it('reads the default quota when no value was ever applied', async () => {
    const { clients, sent } = clientsFor({ ...READY, applied: {}, defaults: { [GPU_QUOTAS.onDemand]: 32 } });
    const quota = byCheck(await preflight(clients, { maxvCpus: 16, spot: false }))[
      'EC2 quota "Running On-Demand G and VT instances"'
    ];
    assert.equal(quota?.status, 'ok');
    assert.ok(sent.quotas.some((r) => r.headers['x-amz-target']?.endsWith('GetAWSDefaultServiceQuota')));
  });

  it('fails a bootstrap stack that is too old or rolled back', async () => {
    for (const bootstrap of [
      { status: 'CREATE_COMPLETE', version: 5 },
      { status: 'UPDATE_ROLLBACK_COMPLETE', version: 28 },
    ]) {
      const { clients } = clientsFor({ ...READY, bootstrap });
      const finding = byCheck(await preflight(clients, { maxvCpus: 16, spot: false }))[
        'CDK bootstrap stack CDKToolkit'
      ];
      assert.equal(finding?.status, 'fail', JSON.stringify(bootstrap));
    }
  });

  it('turns a check it cannot make (access denied) into a failure that names the permission, not a crash', async () => {
    const { clients } = clientsFor(READY);
    const denied = recordedHttp(() =>
      jsonError('AccessDeniedException', 'not authorized to perform lambda:GetAccountSettings', 403),
    );
    const findings = await preflight(
      { ...clients, lambda: new LambdaClient(denied.clientConfig) },
      { maxvCpus: 16, spot: false },
    );
    const lambda = byCheck(findings)['Lambda concurrent executions'];
    assert.equal(lambda?.status, 'fail');
    assert.match(lambda?.message ?? '', /could not check: AccessDeniedException/);
    assert.match(lambda?.fix ?? '', /lambda:GetAccountSettings/);
  });
});
