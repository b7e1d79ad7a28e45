import { fileURLToPath } from 'node:url';
import { type Duration, Validations } from 'aws-cdk-lib';
import { Role, ServicePrincipal } from 'aws-cdk-lib/aws-iam';
import { Architecture, Runtime, Tracing } from 'aws-cdk-lib/aws-lambda';
import { NodejsFunction, OutputFormat } from 'aws-cdk-lib/aws-lambda-nodejs';
import { LogGroup, type RetentionDays } from 'aws-cdk-lib/aws-logs';
import type { Construct } from 'constructs';
import { combine, type Grants, NO_GRANTS } from '../core/api/grants.ts';
import { ENV } from '../core/platform/config.ts';
import { applyGrants, type GrantTargets } from './grants.ts';
import { type FunctionSettings, functionDefaults, withDefaults } from './secure-defaults.ts';

const projectRoot = fileURLToPath(new URL('../', import.meta.url));
const functionsDir = fileURLToPath(new URL('../functions/', import.meta.url));

/**
 * esbuild's ESM output has no `require`; a CommonJS dependency that requires a Node built-in would
 * throw "Dynamic require is not supported" at runtime without this shim.
 */
const REQUIRE_SHIM =
  "import { createRequire as __descentCreateRequire } from 'node:module'; const require = __descentCreateRequire(import.meta.url);";

export interface DescentFunctionProps {
  /** File name under `functions/`, without `.ts`, whose `handler` export Lambda invokes (e.g. `submit-job`). */
  readonly handlerFile: string;
  /**
   * What the function does, shown in the Lambda console.
   * @default - the handler file's name
   */
  readonly description?: string;
  /**
   * How long one invocation may run.
   * @default Duration.seconds(10)
   */
  readonly timeout?: Duration;
  /**
   * Memory in MiB (CPU grows with it).
   * @default 512
   */
  readonly memorySize?: number;
  /**
   * How long the function's CloudWatch logs are kept.
   * @default RetentionDays.ONE_MONTH
   */
  readonly logRetention?: RetentionDays;
  /**
   * The runtime log level, read from `DESCENT_LOG_LEVEL`.
   * @default 'info'
   */
  readonly logLevel?: FunctionSettings['logLevel'];
  /**
   * Extra environment variables. Prefer the constructs' `grant...To` calls, which set the variable
   * together with the permission it needs.
   * @default - none
   */
  readonly environment?: Readonly<Record<string, string>>;
}

/**
 * The one Lambda function class of descent: Node.js 24 on Graviton (arm64), X-Ray tracing, ESM bundled
 * offline by the local esbuild with source maps on, the pinned AWS SDK bundled in, a log group with
 * a retention, and its own role that starts with no permission beyond writing to that log group:
 * `grantAccess` adds what the function's declaration (`core/api/grants.ts`) allows.
 *
 * The role and the log group are created beside the function (in its scope) because the function
 * needs both at construction time; they are `${id}Role` and `${id}Logs`.
 */
export class DescentFunction extends NodejsFunction {
  /** The file under `functions/` this function runs, without `.ts`. */
  public readonly handlerFile: string;
  /** The function's own role (it starts with no permission beyond its log group). */
  public readonly functionRole: Role;
  /** What this function was granted (`core/api/grants.ts`), for tests and docs. */
  public granted: Grants = NO_GRANTS;

  /**
   * Grants what `grants` declares and sets the environment variables that go with it (the bucket,
   * the queue, AWS Batch, the event bus), so that the function can reach exactly what it may touch.
   */
  grantAccess(grants: Grants, targets: GrantTargets): void {
    for (const [name, value] of Object.entries(applyGrants(this.functionRole, grants, targets)))
      this.addEnvironment(name, value);
    this.granted = combine(this.granted, grants);
  }

  constructor(scope: Construct, id: string, props: DescentFunctionProps) {
    const settings = withDefaults(functionDefaults, {
      timeout: props.timeout,
      memorySize: props.memorySize,
      logRetention: props.logRetention,
      logLevel: props.logLevel,
    });
    // Not AWSLambdaBasicExecutionRole: that grants logs:CreateLogGroup/PutLogEvents on every log group.
    const role = new Role(scope, `${id}Role`, {
      assumedBy: new ServicePrincipal('lambda.amazonaws.com'),
      description: `Runs the descent ${props.handlerFile} function`,
    });
    const logGroup = new LogGroup(scope, `${id}Logs`, { retention: settings.logRetention });

    super(scope, id, {
      description: props.description ?? `descent ${props.handlerFile}`,
      entry: `${functionsDir}${props.handlerFile}.ts`,
      handler: 'handler',
      projectRoot,
      depsLockFilePath: `${projectRoot}package-lock.json`,
      runtime: Runtime.NODEJS_24_X,
      architecture: Architecture.ARM_64,
      tracing: Tracing.ACTIVE,
      timeout: settings.timeout,
      memorySize: settings.memorySize,
      role,
      logGroup,
      environment: {
        NODE_OPTIONS: '--enable-source-maps',
        [ENV.logLevel]: settings.logLevel,
        ...props.environment,
      },
      bundling: {
        format: OutputFormat.ESM,
        target: 'node24',
        mainFields: ['module', 'main'],
        banner: REQUIRE_SHIM,
        // The project's pinned AWS SDK is bundled, not the runtime's (which changes under us: its
        // default checksums broke presigned uploads); tree-shaken, only the clients a handler uses.
        externalModules: [],
        minify: true,
        keepNames: true,
        sourceMap: true,
        sourcesContent: false,
        forceDockerBundling: false,
      },
    });
    this.handlerFile = props.handlerFile;
    this.functionRole = role;

    logGroup.grantWrite(role);
    Validations.of(role).acknowledge({
      id: 'AwsSolutions-IAM5[Resource::*]',
      reason:
        'Active tracing needs xray:PutTraceSegments and xray:PutTelemetryRecords, which support no resource-level permissions.',
    });
  }
}
