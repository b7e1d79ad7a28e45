import { Duration, Validations } from 'aws-cdk-lib';
import { AccessLogFormat } from 'aws-cdk-lib/aws-apigateway';
import {
  HttpApi,
  HttpMethod,
  type HttpRoute,
  type HttpStage,
  LogGroupLogDestination,
  type ThrottleSettings,
} from 'aws-cdk-lib/aws-apigatewayv2';
import { HttpUserPoolAuthorizer } from 'aws-cdk-lib/aws-apigatewayv2-authorizers';
import { HttpLambdaIntegration } from 'aws-cdk-lib/aws-apigatewayv2-integrations';
import { LogGroup, RetentionDays } from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import { type Route, routes as routeTable } from '../core/api/routes.ts';
import type { ArtifactBucket } from './artifact-bucket.ts';
import { DescentFunction } from './descent-function.ts';
import type { TrainingTargets } from './grants.ts';
import type { JobQueue } from './job-queue.ts';
import { apiThrottleDefaults, withDefaults } from './secure-defaults.ts';
import type { TenantUserPool } from './tenant-user-pool.ts';

/** One line of JSON per request; `$context.requestId` is required by API Gateway. */
const ACCESS_LOG_FORMAT = AccessLogFormat.custom(
  JSON.stringify({
    requestId: '$context.requestId',
    requestTime: '$context.requestTime',
    sourceIp: '$context.identity.sourceIp',
    routeKey: '$context.routeKey',
    status: '$context.status',
    responseLength: '$context.responseLength',
    latencyMs: '$context.responseLatency',
    clientId: '$context.authorizer.claims.client_id',
    authorizerError: '$context.authorizer.error',
    integrationError: '$context.integrationErrorMessage',
  }),
);

export interface JobsApiProps {
  /** The bucket every handler reads and writes. */
  readonly artifacts: ArtifactBucket;
  /** The queue that submitted jobs are sent to. */
  readonly jobQueue: JobQueue;
  /** AWS Batch: routes that cancel terminate the Batch jobs of their jobs. */
  readonly training: TrainingTargets;
  /** The user pool whose access tokens the JWT authorizer accepts (one app client per tenant). */
  readonly tenants: TenantUserPool;
  /**
   * The routes to serve, each with its own Lambda function running `functions/<handler>.ts`.
   * @default - the route table of `core/api/routes.ts`
   */
  readonly routes?: readonly Route[];
  /**
   * Request rate limits of the API's stage.
   * @default - 50 requests per second, bursts of 100
   */
  readonly throttle?: ThrottleSettings;
  /**
   * How long the access logs are kept.
   * @default RetentionDays.ONE_YEAR
   */
  readonly accessLogRetention?: RetentionDays;
  /**
   * How long the handlers' logs are kept.
   * @default RetentionDays.ONE_MONTH
   */
  readonly functionLogRetention?: RetentionDays;
  /**
   * The settings every process reads (`infra/runtime-environment.ts`): quotas and limits.
   * @default - none: the handlers use `DEFAULT_LIMITS`
   */
  readonly runtimeEnvironment?: Readonly<Record<string, string>>;
}

/**
 * The HTTP API of descent: one Lambda function per route of the route table, a JWT authorizer that
 * checks the tenant's Cognito access token and the route's scope (routes without a scope are public),
 * throttling, and JSON access logs.
 *
 * Each function gets the grants its route declares in the route table (`core/api/grants.ts`) and
 * nothing else: the read routes cannot write, only the routes that submit can send to the queue, and
 * the public `GET /openapi.json` has no permission and no AWS setting at all.
 */
export class JobsApi extends Construct {
  /** The HTTP API. */
  public readonly api: HttpApi;
  /** The `$default` stage, with throttling and access logs. */
  public readonly stage: HttpStage;
  /** The API's base URL. */
  public readonly url: string;
  /** The function of each route, by the route's handler file name. */
  public readonly functions: ReadonlyMap<string, DescentFunction>;
  /** The log group of the access logs. */
  public readonly accessLogs: LogGroup;

  constructor(scope: Construct, id: string, props: JobsApiProps) {
    super(scope, id);
    this.api = new HttpApi(this, 'Api', {
      description: 'descent: submit training jobs, read their results',
      createDefaultStage: false,
    });
    this.accessLogs = new LogGroup(this, 'AccessLogs', {
      retention: props.accessLogRetention ?? RetentionDays.ONE_YEAR,
    });
    this.stage = this.api.addStage('DefaultStage', {
      stageName: '$default',
      autoDeploy: true,
      throttle: withDefaults<ThrottleSettings>(apiThrottleDefaults, props.throttle),
      accessLogSettings: {
        destination: new LogGroupLogDestination(this.accessLogs),
        format: ACCESS_LOG_FORMAT,
      },
    });
    this.url = this.stage.url;

    const authorizer = new HttpUserPoolAuthorizer('TenantToken', props.tenants.userPool, {
      userPoolClients: [...props.tenants.clients],
    });

    const functions = new Map<string, DescentFunction>();
    const integrations = new Map<string, HttpLambdaIntegration>();
    for (const route of props.routes ?? routeTable) {
      let integration = integrations.get(route.handler);
      if (!integration) {
        const fn = new DescentFunction(this, pascalCase(route.handler), {
          handlerFile: route.handler,
          description: `descent ${route.method} ${route.path}: ${route.summary}`,
          logRetention: props.functionLogRetention,
          // The public document needs no setting either.
          ...(route.scope ? { environment: props.runtimeEnvironment } : {}),
          ...(route.lambda?.memorySize ? { memorySize: route.lambda.memorySize } : {}),
          ...(route.lambda?.timeoutSeconds ? { timeout: Duration.seconds(route.lambda.timeoutSeconds) } : {}),
        });
        fn.grantAccess(route.grants, {
          artifacts: props.artifacts,
          jobQueue: props.jobQueue,
          training: props.training,
        });
        integration = new HttpLambdaIntegration(`${pascalCase(route.handler)}Integration`, fn);
        functions.set(route.handler, fn);
        integrations.set(route.handler, integration);
      }
      const added: HttpRoute[] = this.api.addRoutes({
        path: route.path,
        methods: [HttpMethod[route.method]],
        integration,
        ...(route.scope && { authorizer, authorizationScopes: [route.scope] }),
      });
      if (!route.scope) {
        for (const r of added) {
          Validations.of(r).acknowledge({
            id: 'AwsSolutions-APIG4',
            reason: `${route.method} ${route.path} is public by design (no scope in the route table): ${route.summary}.`,
          });
        }
      }
    }
    this.functions = functions;
  }
}

/** `get-job-metrics` → `GetJobMetrics`, for construct ids. */
function pascalCase(name: string): string {
  return name
    .split(/[^a-zA-Z0-9]+/)
    .filter(Boolean)
    .map((part) => part.charAt(0).toUpperCase() + part.slice(1))
    .join('');
}
