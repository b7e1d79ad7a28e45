/**
 * A job whose message reached the dead-letter queue was received the maximum number of times without
 * finishing: the job lifecycle marks it FAILED (`MAX_ATTEMPTS`) so that no job stays QUEUED or RUNNING
 * forever (its subscribers, a sweep among them, hear of it as of any other end).
 */
import { type JobMessage, jobMessage } from './job-record.ts';
import type { DeadLetterOutcome, JobLifecycle } from './lifecycle.ts';

export async function handleDeadLetter(
  lifecycle: JobLifecycle,
  body: string,
  maxAttempts?: number,
  describe?: (times: number) => string,
): Promise<DeadLetterOutcome | 'malformed'> {
  let message: JobMessage;
  try {
    message = jobMessage.parse(JSON.parse(body));
  } catch {
    return 'malformed';
  }
  return lifecycle.deadLettered(message.tenant, message.jobId, maxAttempts, describe);
}
