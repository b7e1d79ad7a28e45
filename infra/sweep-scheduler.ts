import { Duration } from 'aws-cdk-lib';
import { Rule, Schedule } from 'aws-cdk-lib/aws-events';
import { LambdaFunction } from 'aws-cdk-lib/aws-events-targets';
import type { RetentionDays } from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import { FUNCTION_GRANTS } from '../core/api/grants.ts';
import { ENV } from '../core/platform/config.ts';
import type { ArtifactBucket } from './artifact-bucket.ts';
import { DescentFunction } from './descent-function.ts';
import type { TrainingTargets } from './grants.ts';
import type { JobQueue } from './job-queue.ts';
import type { TenantUserPool } from './tenant-user-pool.ts';

export interface SweepSchedulerProps {
  readonly artifacts: ArtifactBucket;
  readonly jobQueue: JobQueue;
  /** AWS Batch: a cancelled sweep's queued trials are terminated there. */
  readonly training: TrainingTargets;
  /** The settings every process reads (`infra/runtime-environment.ts`). @default - none */
  readonly runtimeEnvironment?: Readonly<Record<string, string>>;
  /** Whose sweeps to advance: every tenant's app client. */
  readonly tenants: TenantUserPool;
  /**
   * How often the safety-net pass runs.
   * @default Duration.minutes(5)
   */
  readonly every?: Duration;
  /** @default - the DescentFunction default */
  readonly logRetention?: RetentionDays;
}

/**
 * A scheduled function that advances every active sweep: the sweep controller runs without a
 * long-lived process (trial endings drive it), and this pass repairs what a crashed step left.
 */
export class SweepScheduler extends Construct {
  /** The scheduled function. */
  public readonly handler: DescentFunction;
  /** The EventBridge rule that invokes it. */
  public readonly rule: Rule;

  constructor(scope: Construct, id: string, props: SweepSchedulerProps) {
    super(scope, id);
    this.handler = new DescentFunction(this, 'Handler', {
      handlerFile: 'advance-sweeps',
      description: 'Advances active hyperparameter sweeps (safety net of the trial-driven controller)',
      timeout: Duration.minutes(2),
      ...(props.logRetention ? { logRetention: props.logRetention } : {}),
      environment: {
        ...props.runtimeEnvironment,
        [ENV.tenants]: props.tenants.clients.map((c) => c.userPoolClientId).join(','),
      },
    });
    this.handler.grantAccess(FUNCTION_GRANTS['advance-sweeps'], {
      artifacts: props.artifacts,
      jobQueue: props.jobQueue,
      training: props.training,
    });
    this.rule = new Rule(this, 'Schedule', {
      description: 'Advances active descent sweeps',
      schedule: Schedule.rate(props.every ?? Duration.minutes(5)),
      targets: [new LambdaFunction(this.handler, { retryAttempts: 2 })],
    });
  }
}
