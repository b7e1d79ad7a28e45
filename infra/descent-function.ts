import { fileURLToPath } from 'node:url';
import { type Duration, Validations } from 'aws-cdk-lib';
import { Role, ServicePrincipal } from 'aws-cdk-lib/aws-iam';
import { Architecture, Runtime, Tracing } from 'aws-cdk-lib/aws-lambda';
import { NodejsFunction, OutputFormat } from 'aws-cdk-lib/aws-lambda-nodejs';
import { LogGroup, type RetentionDays } from 'aws-cdk-lib/aws-logs';
import type { Construct } from 'constructs';
import { ENV } from '../core/platform/config.ts';
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
 * offline by the local esbuild with source maps on, `@aws-sdk/*` left to the runtime, a log group with
 * a retention, and its own role that starts with no permission beyond writing to that log group.
 *
 * The role and the log group are created beside the function (in its scope) because the function
 * needs both at construction time; they are `${id}Role` and `${id}Logs`.
 */
export class DescentFunction extends NodejsFunction {
  /** The file under `functions/` this function runs, without `.ts`. */
  public readonly handlerFile: string;

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
        // The Node.js 24 runtime ships AWS SDK v3; bundling it again would only add cold-start time.
        externalModules: ['@aws-sdk/*'],
        minify: true,
        keepNames: true,
        sourceMap: true,
        sourcesContent: false,
        forceDockerBundling: false,
      },
    });
    this.handlerFile = props.handlerFile;

    logGroup.grantWrite(role);
    Validations.of(role).acknowledge({
      id: 'AwsSolutions-IAM5[Resource::*]',
      reason:
        'Active tracing needs xray:PutTraceSegments and xray:PutTelemetryRecords, which support no resource-level permissions.',
    });
  }
}
