/** The AWS wiring of the ports: S3 and SQS clients from the environment the CDK stack sets. */
import { S3Client } from '@aws-sdk/client-s3';
import { SQSClient } from '@aws-sdk/client-sqs';
import { ENV, requireEnv } from '../core/platform/config.ts';
import { limitsFromEnv } from '../core/platform/limits.ts';
import { createServices, type Services } from '../core/services.ts';
import { S3ObjectStore } from './s3-object-store.ts';
import { SqsJobQueue } from './sqs-job-queue.ts';

export function createAwsServices(env: NodeJS.ProcessEnv = process.env): Services {
  const store = new S3ObjectStore({ client: new S3Client({}), bucket: requireEnv(ENV.bucket, env) });
  const queue = new SqsJobQueue({ client: new SQSClient({}), queueUrl: requireEnv(ENV.queueUrl, env) });
  return createServices(store, queue, { limits: limitsFromEnv(env) });
}
