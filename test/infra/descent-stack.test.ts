import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Stack } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { BlockPublicAccess } from 'aws-cdk-lib/aws-s3';
import { AwsSolutionsChecks } from 'cdk-nag';
import { routes } from '../../core/api/routes.ts';
import { ENV } from '../../core/platform/config.ts';
import { ArtifactBucket } from '../../infra/artifact-bucket.ts';
import {
  actionsOf,
  type CfnResource,
  newApp,
  type PolicyStatement,
  resourcesOfType,
  synthesize,
} from './synth.ts';

const { app, stack, template, resources, logicalId } = synthesize();
const handlerFiles = [...new Set(routes.map((r) => r.handler))];
/** The logical ids of descent's own functions (the API's, the dead-letter handler and the sweep scheduler). */
const functionIds = [
  ...stack.jobsApi.functions.values(),
  stack.jobQueue.deadLetterHandler,
  stack.sweepScheduler.handler,
].map(logicalId);

/** Asserts that every descent function matches `properties`. */
function everyFunctionHas(t: Template, ids: string[], properties: Record<string, unknown>): void {
  const matching = new Set(Object.keys(t.findResources('AWS::Lambda::Function', { Properties: properties })));
  const missing = ids.filter((id) => !matching.has(id));
  assert.deepEqual(missing, [], `functions without ${JSON.stringify(properties)}`);
}

describe('DescentStack functions', () => {
  it('runs the sweep safety net every 5 minutes with every tenant app client id', () => {
    template.hasResourceProperties('AWS::Events::Rule', {
      ScheduleExpression: 'rate(5 minutes)',
      Targets: Match.arrayWith([
        Match.objectLike({ Arn: { 'Fn::GetAtt': [logicalId(stack.sweepScheduler.handler), 'Arn'] } }),
      ]),
    });
    const env =
      template.findResources('AWS::Lambda::Function')[logicalId(stack.sweepScheduler.handler)]?.Properties
        .Environment.Variables;
    assert.match(JSON.stringify(env[ENV.tenants]), new RegExp(logicalId(stack.tenants.clients[0] as never)));
  });

  it('creates one Lambda function per handler of the route table, plus the dead-letter handler and the sweep scheduler', () => {
    assert.deepEqual([...stack.jobsApi.functions.keys()].sort(), [...handlerFiles].sort());
    assert.equal(stack.jobQueue.deadLetterHandler.handlerFile, 'dead-letter');
    assert.equal(stack.sweepScheduler.handler.handlerFile, 'advance-sweeps');
    assert.equal(new Set(functionIds).size, handlerFiles.length + 2);
    // The only other function is CDK's provider that empties the VPC's default security group.
    const others = resourcesOfType(resources, 'AWS::Lambda::Function')
      .map(([id]) => id)
      .filter((id) => !functionIds.includes(id));
    assert.deepEqual(
      others.map((id) => id.replace(/[A-F0-9]{8}$/, '')),
      ['CustomVpcRestrictDefaultSGCustomResourceProviderHandler'],
    );
  });

  it('runs every function on Node.js 24, arm64, with active tracing, source maps and its own log group', () => {
    everyFunctionHas(template, functionIds, {
      Runtime: 'nodejs24.x',
      Architectures: ['arm64'],
      Handler: 'index.handler',
      TracingConfig: { Mode: 'Active' },
      Environment: { Variables: Match.objectLike({ NODE_OPTIONS: '--enable-source-maps' }) },
      LoggingConfig: { LogGroup: { Ref: Match.anyValue() } },
    });
    template.allResourcesProperties('AWS::Logs::LogGroup', { RetentionInDays: Match.anyValue() });
  });

  it('gives every function the bucket and queue under the environment names of core/platform/config.ts', () => {
    const bucketRef = { Ref: logicalId(stack.artifacts.bucket) };
    everyFunctionHas(template, functionIds, {
      Environment: {
        Variables: Match.objectLike({
          [ENV.bucket]: bucketRef,
          [ENV.queueUrl]: { Ref: logicalId(stack.jobQueue.queue) },
          [ENV.deadLetterQueueUrl]: { Ref: logicalId(stack.jobQueue.deadLetterQueue) },
          [ENV.maxAttempts]: '3',
        }),
      },
    });
  });

  it("grants no wildcard action (but the ECS agent's ecs:Submit* on its cluster), and objects only under tenants/", () => {
    const bucketArn = { 'Fn::GetAtt': [logicalId(stack.artifacts.bucket), 'Arn'] };
    const clusterArn = { 'Fn::GetAtt': [logicalId(stack.trainingCluster.cluster), 'Arn'] };
    for (const [id, policy] of resourcesOfType(resources, 'AWS::IAM::Policy')) {
      const statements = (policy.Properties.PolicyDocument as { Statement: PolicyStatement[] }).Statement;
      for (const statement of statements) {
        const actions = actionsOf(statement);
        const wildcards = actions.filter((a) => a.includes('*'));
        if (wildcards.length > 0) {
          assert.deepEqual(wildcards, ['ecs:Submit*'], `${id} allows a wildcard action: ${actions}`);
          assert.deepEqual(statement.Resource, clusterArn, id);
        }
        if (actions.some((a) => a.startsWith('s3:') && a !== 's3:ListBucket')) {
          // Everything under tenants/, or (a trainer's deletes) only the checkpoint and slot folders there.
          const under = (path: string) => ({ 'Fn::Join': ['', [bucketArn, path]] });
          if (actions.includes('s3:DeleteObject') && actions.length === 1)
            assert.deepEqual(
              new Set(statement.Resource as unknown[]),
              new Set([under('/tenants/*/jobs/*/checkpoints/*'), under('/tenants/*/active-slots/*')]),
              id,
            );
          else assert.deepEqual(statement.Resource, under('/tenants/*'), id);
        }
      }
    }
  });

  it("gives every API handler the quota settings under core/platform/config.ts's names", () => {
    const { settings } = stack;
    everyFunctionHas(template, [...stack.jobsApi.functions.values()].map(logicalId), {
      Environment: {
        Variables: Match.objectLike({
          [ENV.quotaActiveJobs]: String(settings.quotaActiveJobs),
          [ENV.quotaDatasetBytes]: String(settings.quotaDatasetBytes),
          [ENV.quotaEpochRows]: String(settings.quotaEpochRows),
          [ENV.jobMemoryBytes]: String(settings.jobMemoryBytes),
          [ENV.maxRuntimeSeconds]: String(settings.maxRuntimeSeconds),
          [ENV.defaultMaxRuntimeSeconds]: String(settings.defaultMaxRuntimeSeconds),
          [ENV.urlExpirySeconds]: String(settings.urlExpirySeconds),
        }),
      },
    });
  });

  it("keeps every log for the settings' retention (cdk.json: 30 days), the access logs for a year", () => {
    const accessLogsId = logicalId(stack.jobsApi.accessLogs);
    for (const [id, group] of resourcesOfType(resources, 'AWS::Logs::LogGroup')) {
      assert.equal(group.Properties.RetentionInDays, id === accessLogsId ? 365 : 30, id);
    }
  });
});

describe('DescentStack API', () => {
  it('serves every route of the route table under its route key, with its own function behind it', () => {
    template.resourceCountIs('AWS::ApiGatewayV2::Route', routes.length);
    const apiRoutes = resourcesOfType(resources, 'AWS::ApiGatewayV2::Route').map(([, r]) => r.Properties);
    for (const route of routes) {
      const routeKey = `${route.method} ${route.path}`;
      const found = apiRoutes.find((r) => r.RouteKey === routeKey);
      assert.ok(found, `no API route for ${routeKey}`);
      const target = found.Target as { 'Fn::Join': [string, [string, { Ref: string }]] };
      const integration = resources[target['Fn::Join'][1][1].Ref];
      const fn = stack.jobsApi.functions.get(route.handler);
      assert.ok(fn, `no function for ${route.handler}`);
      assert.deepEqual(
        integration?.Properties.IntegrationUri,
        { 'Fn::GetAtt': [logicalId(fn), 'Arn'] },
        routeKey,
      );
    }
  });

  it('checks the route scope with the JWT authorizer, and leaves routes without a scope public', () => {
    const authorizers = resourcesOfType(resources, 'AWS::ApiGatewayV2::Authorizer');
    assert.equal(authorizers.length, 1);
    const [authorizerId] = authorizers[0] as [string, CfnResource];
    for (const route of routes) {
      template.hasResourceProperties(
        'AWS::ApiGatewayV2::Route',
        route.scope
          ? {
              RouteKey: `${route.method} ${route.path}`,
              AuthorizationType: 'JWT',
              AuthorizerId: { Ref: authorizerId },
              AuthorizationScopes: [route.scope],
            }
          : {
              RouteKey: `${route.method} ${route.path}`,
              AuthorizationType: 'NONE',
              AuthorizerId: Match.absent(),
            },
      );
    }
  });

  it("accepts only access tokens that the tenants' user pool issued to one of its app clients", () => {
    const userPoolId = logicalId(stack.tenants.userPool);
    template.hasResourceProperties('AWS::ApiGatewayV2::Authorizer', {
      AuthorizerType: 'JWT',
      IdentitySource: ['$request.header.Authorization'],
      JwtConfiguration: {
        Issuer: Match.objectLike({ 'Fn::Join': ['', Match.arrayWith([{ Ref: userPoolId }])] }),
        Audience: stack.tenants.clients.map((c) => ({ Ref: logicalId(c) })),
      },
    });
    const routeScopes = new Set(routes.flatMap((r) => (r.scope ? [r.scope] : [])));
    const [server] = resourcesOfType(resources, 'AWS::Cognito::UserPoolResourceServer').map(
      ([, r]) => r.Properties,
    );
    assert.ok(server, 'no resource server');
    const serverScopes = (server.Scopes as { ScopeName: string }[]).map(
      (s) => `${server.Identifier}/${s.ScopeName}`,
    );
    assert.deepEqual(new Set(serverScopes), routeScopes);
    template.hasResourceProperties('AWS::Cognito::UserPoolClient', {
      AllowedOAuthFlows: ['client_credentials'],
      GenerateSecret: true,
    });
    template.hasResourceProperties('AWS::Cognito::UserPool', {
      AdminCreateUserConfig: { AllowAdminCreateUserOnly: true },
    });
  });

  it('throttles requests and writes JSON access logs on the $default stage', () => {
    template.hasResourceProperties('AWS::ApiGatewayV2::Stage', {
      StageName: '$default',
      AutoDeploy: true,
      DefaultRouteSettings: { ThrottlingRateLimit: Match.anyValue(), ThrottlingBurstLimit: Match.anyValue() },
      AccessLogSettings: {
        DestinationArn: Match.anyValue(),
        Format: Match.stringLikeRegexp('context.requestId'),
      },
    });
  });
});

describe('DescentStack storage', () => {
  it('keeps artifacts in a KMS-encrypted, versioned bucket with all public access blocked', () => {
    template.hasResourceProperties('AWS::S3::Bucket', {
      BucketEncryption: {
        ServerSideEncryptionConfiguration: [
          {
            BucketKeyEnabled: true,
            ServerSideEncryptionByDefault: {
              SSEAlgorithm: 'aws:kms',
              KMSMasterKeyID: { 'Fn::GetAtt': [logicalId(stack.artifacts.encryptionKey), 'Arn'] },
            },
          },
        ],
      },
      PublicAccessBlockConfiguration: {
        BlockPublicAcls: true,
        BlockPublicPolicy: true,
        IgnorePublicAcls: true,
        RestrictPublicBuckets: true,
      },
      VersioningConfiguration: { Status: 'Enabled' },
      LoggingConfiguration: { DestinationBucketName: { Ref: logicalId(stack.artifacts.accessLogsBucket) } },
    });
    template.hasResourceProperties('AWS::KMS::Key', { EnableKeyRotation: true });
  });

  it('denies every request to the artifact bucket that does not use TLS', () => {
    template.hasResourceProperties('AWS::S3::BucketPolicy', {
      Bucket: { Ref: logicalId(stack.artifacts.bucket) },
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({
            Effect: 'Deny',
            Action: 's3:*',
            Principal: { AWS: '*' },
            Condition: { Bool: { 'aws:SecureTransport': 'false' } },
          }),
        ]),
      },
    });
  });

  it('aborts incomplete multipart uploads and lets browsers PUT through presigned URLs', () => {
    template.hasResourceProperties('AWS::S3::Bucket', {
      LifecycleConfiguration: {
        Rules: Match.arrayWith([
          Match.objectLike({ AbortIncompleteMultipartUpload: { DaysAfterInitiation: 7 }, Status: 'Enabled' }),
        ]),
      },
      CorsConfiguration: {
        CorsRules: [Match.objectLike({ AllowedMethods: Match.arrayWith(['PUT']), ExposedHeaders: ['ETag'] })],
      },
    });
  });
});

describe('DescentStack queue', () => {
  it('moves a job message to the KMS-encrypted dead-letter queue after three receives', () => {
    template.hasResourceProperties('AWS::SQS::Queue', {
      KmsMasterKeyId: { 'Fn::GetAtt': [logicalId(stack.jobQueue.encryptionKey), 'Arn'] },
      RedrivePolicy: {
        deadLetterTargetArn: { 'Fn::GetAtt': [logicalId(stack.jobQueue.deadLetterQueue), 'Arn'] },
        maxReceiveCount: 3,
      },
    });
    template.allResourcesProperties('AWS::SQS::Queue', { KmsMasterKeyId: Match.anyValue() });
    template.resourcePropertiesCountIs(
      'AWS::SQS::QueuePolicy',
      {
        PolicyDocument: {
          Statement: Match.arrayWith([
            Match.objectLike({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
          ]),
        },
      },
      2,
    );
  });

  it('feeds the dead-letter queue to the dead-letter handler with partial batch responses', () => {
    template.hasResourceProperties('AWS::Lambda::EventSourceMapping', {
      EventSourceArn: { 'Fn::GetAtt': [logicalId(stack.jobQueue.deadLetterQueue), 'Arn'] },
      FunctionName: { Ref: logicalId(stack.jobQueue.deadLetterHandler) },
      FunctionResponseTypes: ['ReportBatchItemFailures'],
    });
  });

  it('uses the maxAttempts setting as the redrive limit and as DESCENT_MAX_ATTEMPTS of functions and trainers', () => {
    const five = synthesize({}, { 'descent:maxAttempts': '5' });
    five.template.hasResourceProperties('AWS::SQS::Queue', {
      RedrivePolicy: Match.objectLike({ maxReceiveCount: 5 }),
    });
    const ids = [...five.stack.jobsApi.functions.values(), five.stack.jobQueue.deadLetterHandler].map(
      five.logicalId,
    );
    everyFunctionHas(five.template, ids, {
      Environment: { Variables: Match.objectLike({ [ENV.maxAttempts]: '5' }) },
    });
    five.template.hasResourceProperties('AWS::ECS::TaskDefinition', {
      ContainerDefinitions: [
        Match.objectLike({ Environment: Match.arrayWith([{ Name: ENV.maxAttempts, Value: '5' }]) }),
      ],
    });
  });
});

describe('cdk-nag AwsSolutions', () => {
  it('finds nothing in DescentStack that is not acknowledged with a reason', () => {
    const report = new AwsSolutionsChecks().validateScope(app);
    const findings = report.violations.map(
      (v) => `${v.severity} ${v.ruleName}: ${v.violatingResources.map((r) => r.constructPath).join(', ')}`,
    );
    assert.deepEqual(findings, []);
  });

  it('reports a weakened secure default (an artifact bucket that allows a public bucket policy)', () => {
    const weakApp = newApp();
    const weak = new Stack(weakApp, 'Weak');
    const blockPublicAccess = new BlockPublicAccess({
      blockPublicAcls: true,
      ignorePublicAcls: true,
      blockPublicPolicy: false,
      restrictPublicBuckets: false,
    });
    new ArtifactBucket(weak, 'Artifacts', { bucketProps: { blockPublicAccess } });
    Template.fromStack(weak);
    const rules = new AwsSolutionsChecks().validateScope(weakApp).violations.map((v) => v.ruleName);
    assert.deepEqual(rules, ['AwsSolutions-S2']);
  });
});
