/**
 * An AWS SDK client's HTTP layer answered from recorded responses, in process: the real SDK builds,
 * signs and serializes each request and parses each response (errors included), and nothing leaves
 * the machine. `requests` keeps what the client sent, for asserting the request shapes.
 */
import { Readable } from 'node:stream';

export interface SentRequest {
  readonly method: string;
  readonly path: string;
  readonly query: Record<string, string | string[] | null>;
  readonly headers: Record<string, string>;
  readonly body: string;
}

export interface RecordedResponse {
  readonly status: number;
  readonly body: string;
  readonly headers?: Record<string, string>;
}

/** What `respond` answers for each request; it may throw to simulate a network failure. */
export function recordedHttp(respond: (request: SentRequest) => RecordedResponse) {
  const requests: SentRequest[] = [];
  const requestHandler = {
    async handle(request: {
      method: string;
      path: string;
      query?: Record<string, string | string[] | null>;
      headers: Record<string, string>;
      body?: unknown;
    }) {
      const body =
        typeof request.body === 'string'
          ? request.body
          : request.body instanceof Uint8Array
            ? Buffer.from(request.body).toString('utf8')
            : '';
      const sent: SentRequest = {
        method: request.method,
        path: request.path,
        query: request.query ?? {},
        headers: request.headers,
        body,
      };
      requests.push(sent);
      const answer = respond(sent);
      return {
        response: {
          statusCode: answer.status,
          headers: { 'x-amzn-requestid': 'recorded', ...answer.headers },
          body: Readable.from([Buffer.from(answer.body)]),
        },
      };
    },
    updateHttpClientConfig() {},
    httpHandlerConfigs: () => ({}),
    destroy() {},
  };
  return {
    requests,
    /** Options for an SDK client: the recorded handler, a region and static credentials. */
    clientConfig: {
      region: 'eu-west-1',
      credentials: { accessKeyId: 'AKIDTEST', secretAccessKey: 'secret' },
      requestHandler,
      maxAttempts: 1,
    },
  };
}

/** An AWS JSON-protocol response (EventBridge, Service Quotas, Batch's REST JSON, Lambda). */
export const jsonResponse = (body: unknown, status = 200): RecordedResponse => ({
  status,
  body: JSON.stringify(body),
  headers: { 'content-type': 'application/json' },
});

/** An AWS JSON-protocol error, as the services send it. */
export const jsonError = (type: string, message: string, status = 400): RecordedResponse => ({
  status,
  body: JSON.stringify({ __type: type, message }),
  headers: { 'content-type': 'application/json', 'x-amzn-errortype': type },
});

/** An AWS query-protocol (XML) response (IAM, CloudFormation). */
export const xmlResponse = (body: string, status = 200): RecordedResponse => ({
  status,
  body,
  headers: { 'content-type': 'text/xml' },
});
