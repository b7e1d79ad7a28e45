/**
 * The real local stack on an ephemeral port in a temporary data folder, with small HTTP helpers: what
 * the tests and the benchmarks start.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger } from '../core/platform/log.ts';
import { eventually } from './eventually.ts';
import { type LocalStack, type LocalStackOptions, startLocalStack } from './stack.ts';

export interface EphemeralStack extends LocalStack {
  readonly dataDir: string;
  /** Calls the API with the default token (or `token`; `null` for none); returns status and parsed body. */
  call(
    method: string,
    path: string,
    options?: { body?: unknown; rawBody?: string; token?: string | null; headers?: Record<string, string> },
  ): Promise<{ status: number; body: any; headers: Headers }>;
  /** Creates a dataset and uploads `text` to it; returns its id. */
  upload(text: string, format?: 'csv' | 'jsonl', token?: string): Promise<string>;
  /** Polls until the job leaves QUEUED/RUNNING/CANCELLING (or `until` matches), failing after `timeoutMs`. */
  waitFor(jobId: string, until?: (job: any) => boolean, timeoutMs?: number): Promise<any>;
  /** Stops the stack and deletes its data folder. */
  destroy(): Promise<void>;
}

const quiet = createLogger({}, () => {}, 'error');

export async function startEphemeralStack(
  options: Partial<LocalStackOptions> & { dataDir?: string } = {},
): Promise<EphemeralStack> {
  const dataDir = options.dataDir ?? (await mkdtemp(join(tmpdir(), 'descent-test-')));
  const stack = await startLocalStack({
    port: 0,
    workers: 1,
    log: quiet,
    ...options,
    // Workers train on wasm unless a caller asks otherwise (DESCENT_BACKEND '' = the best available, as
    // `npm start`): these stacks are about the service, and wasm is faster for their tiny models.
    workerEnv: { DESCENT_LOG_LEVEL: 'error', DESCENT_BACKEND: 'wasm', ...options.workerEnv },
    dataDir,
  });
  const call: EphemeralStack['call'] = async (method, path, o = {}) => {
    const token = o.token === undefined ? stack.token : o.token;
    const headers: Record<string, string> = {
      ...(token ? { authorization: `Bearer ${token}` } : {}),
      ...o.headers,
    };
    let body: string | undefined = o.rawBody;
    if (o.body !== undefined) {
      body = JSON.stringify(o.body);
      headers['content-type'] ??= 'application/json';
    }
    const response = await fetch(`${stack.url}${path}`, {
      method,
      headers,
      ...(body !== undefined ? { body } : {}),
    });
    const text = await response.text();
    let parsed: unknown = text;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {}
    return { status: response.status, body: parsed, headers: response.headers };
  };
  const upload: EphemeralStack['upload'] = async (text, format = 'csv', token) => {
    const created = await call('POST', '/datasets', {
      body: { name: 'test-data', format },
      ...(token ? { token } : {}),
    });
    if (created.status !== 201)
      throw new Error(`POST /datasets: ${created.status} ${JSON.stringify(created.body)}`);
    const put = await fetch(created.body.uploadUrl, {
      method: 'PUT',
      headers: created.body.uploadHeaders,
      body: text,
    });
    if (put.status !== 200) throw new Error(`upload: ${put.status} ${await put.text()}`);
    return created.body.datasetId;
  };
  const waitFor: EphemeralStack['waitFor'] = async (jobId, until, timeoutMs = 180_000) => {
    const done = until ?? ((job: any) => !['QUEUED', 'RUNNING', 'CANCELLING'].includes(job.status));
    return eventually(
      async () => {
        const { status, body } = await call('GET', `/jobs/${jobId}`);
        if (status !== 200) throw new Error(`GET /jobs/${jobId}: ${status} ${JSON.stringify(body)}`);
        return body;
      },
      done,
      { timeoutMs, intervalMs: 50, what: `job ${jobId}` },
    );
  };
  return {
    ...stack,
    dataDir,
    call,
    upload,
    waitFor,
    destroy: async () => {
      await stack.stop();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}
