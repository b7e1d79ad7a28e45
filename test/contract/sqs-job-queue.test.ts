import { randomUUID } from 'node:crypto';
import { after } from 'node:test';
import { SQSClient } from '@aws-sdk/client-sqs';
import { type FauxqsServer, startFauxqs } from 'fauxqs';
import { SqsJobQueue } from '../../aws/sqs-job-queue.ts';
import { jobQueueContract } from './job-queue-contract.ts';

let started: Promise<{ server: FauxqsServer; client: SQSClient }> | undefined;
const emulator = (): Promise<{ server: FauxqsServer; client: SQSClient }> => {
  started ??= (async () => {
    const server = await startFauxqs({ port: 0, logger: false });
    const client = new SQSClient({
      endpoint: server.address,
      region: 'us-east-1',
      credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
    });
    return { server, client };
  })();
  return started;
};

after(async () => {
  if (started === undefined) return;
  const { server, client } = await started;
  client.destroy();
  await server.stop();
});

jobQueueContract('SqsJobQueue on the fauxqs emulator', async () => {
  const { server, client } = await emulator();
  const name = `jobs-${randomUUID()}`;
  const dlq = server.createQueue(`${name}-dlq`);
  const main = server.createQueue(name, {
    attributes: {
      VisibilityTimeout: '30',
      RedrivePolicy: JSON.stringify({ deadLetterTargetArn: dlq.queueArn, maxReceiveCount: 2 }),
    },
  });
  return {
    queue: new SqsJobQueue({ client, queueUrl: main.queueUrl }),
    deadLetterQueue: new SqsJobQueue({ client, queueUrl: dlq.queueUrl }),
    teardown: async () => {
      server.deleteQueue(name);
      server.deleteQueue(`${name}-dlq`);
    },
  };
});
