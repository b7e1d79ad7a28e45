/**
 * The AWS wiring: S3 and SQS clients from the environment the CDK stack sets, and the services of the
 * Lambda functions composed once per container, with job-end metrics in CloudWatch's embedded format.
 */
import { S3Client } from '@aws-sdk/client-s3';
import { SQSClient } from '@aws-sdk/client-sqs';
import { jobEndMetrics } from '../core/jobs/job-metrics.ts';
import { ENV, requireEnv } from '../core/platform/config.ts';
import { printMetrics } from '../core/platform/emf.ts';
import { loadRuntimeConfig, type RuntimeConfig } from '../core/platform/runtime-config.ts';
import { createServices, type Services } from '../core/services.ts';
import { S3ObjectStore } from './s3-object-store.ts';
import { SqsJobQueue } from './sqs-job-queue.ts';

export function awsPorts(env: NodeJS.ProcessEnv = process.env): { store: S3ObjectStore; queue: SqsJobQueue } {
  return {
    store: new S3ObjectStore({ client: new S3Client({}), bucket: requireEnv(ENV.bucket, env) }),
    queue: new SqsJobQueue({ client: new SQSClient({}), queueUrl: requireEnv(ENV.queueUrl, env) }),
  };
}

export function createAwsServices(
  env: NodeJS.ProcessEnv = process.env,
  config: RuntimeConfig = loadRuntimeConfig(env),
): Services {
  const { store, queue } = awsPorts(env);
  const services = createServices(store, queue, { limits: config.limits });
  services.lifecycle.subscribe(jobEndMetrics(printMetrics));
  return services;
}
