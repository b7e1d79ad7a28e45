/** Job state-change events on EventBridge: one `PutEvents` entry per change of a job's status. */
import { type EventBridgeClient, PutEventsCommand } from '@aws-sdk/client-eventbridge';
import {
  JOB_EVENT_DETAIL_TYPE,
  JOB_EVENT_SOURCE,
  type JobEventSink,
  type JobStateDetail,
} from '../core/jobs/job-events.ts';

/** Puts each event on `eventBusName` (source `descent`, detail-type `Descent Job State Change`). */
export function eventBridgeSink(client: EventBridgeClient, eventBusName: string): JobEventSink {
  return async (detail: JobStateDetail) => {
    const result = await client.send(
      new PutEventsCommand({
        Entries: [
          {
            Source: JOB_EVENT_SOURCE,
            DetailType: JOB_EVENT_DETAIL_TYPE,
            Detail: JSON.stringify(detail),
            EventBusName: eventBusName,
            Time: new Date(detail.time),
          },
        ],
      }),
    );
    if (result.FailedEntryCount) {
      const entry = result.Entries?.find((e) => e.ErrorCode);
      throw new Error(`EventBridge refused the event: ${entry?.ErrorCode} ${entry?.ErrorMessage ?? ''}`);
    }
  };
}
