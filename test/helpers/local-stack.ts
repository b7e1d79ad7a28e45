/** Starts the real local stack on an ephemeral port in a temporary data folder, with small HTTP helpers. */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger } from '../../core/platform/log.ts';
import { type LocalStack, type LocalStackOptions, startLocalStack } from '../../local/stack.ts';

export interface TestStack extends LocalStack {
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

export async function startTestStack(
  options: Partial<LocalStackOptions> & { dataDir?: string } = {},
): Promise<TestStack> {
  const dataDir = options.dataDir ?? (await mkdtemp(join(tmpdir(), 'descent-test-')));
  const stack = await startLocalStack({
    port: 0,
    workers: 1,
    log: quiet,
    ...options,
    // Workers train on wasm unless a test asks otherwise (DESCENT_BACKEND '' = the best available, as
    // `npm start`): these tests are about the service, and wasm is faster for their tiny models.
    workerEnv: { DESCENT_LOG_LEVEL: 'error', DESCENT_BACKEND: 'wasm', ...options.workerEnv },
    dataDir,
  });
  const call: TestStack['call'] = async (method, path, o = {}) => {
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
  const upload: TestStack['upload'] = async (text, format = 'csv', token) => {
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
  const waitFor: TestStack['waitFor'] = async (jobId, until, timeoutMs = 60_000) => {
    const done = until ?? ((job: any) => !['QUEUED', 'RUNNING', 'CANCELLING'].includes(job.status));
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const { status, body } = await call('GET', `/jobs/${jobId}`);
      if (status !== 200) throw new Error(`GET /jobs/${jobId}: ${status} ${JSON.stringify(body)}`);
      if (done(body)) return body;
      if (Date.now() > deadline) throw new Error(`job ${jobId} still ${body.status} after ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 100));
    }
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

/** A seeded synthetic regression dataset: y = 3·a − 2·b + 1 + noise. */
export function regressionCsv(rows = 200, seed = 7): string {
  let s = seed;
  const rnd = () => {
    s = (s * 1103515245 + 12345) % 2147483648;
    return s / 2147483648;
  };
  const lines = ['a,b,y'];
  for (let i = 0; i < rows; i++) {
    const a = +(rnd() * 2 - 1).toFixed(4);
    const b = +(rnd() * 2 - 1).toFixed(4);
    lines.push(`${a},${b},${(3 * a - 2 * b + 1 + (rnd() - 0.5) * 0.1).toFixed(4)}`);
  }
  return `${lines.join('\n')}\n`;
}
