/**
 * The one trainer fixture: real local ports in a temporary folder, the composed services (with the
 * job lifecycle and its sweep subscriber), and the deps `runJob` takes on a chosen backend, with
 * the compiled engine where the backend has it (as a worker starts: trainer/startup.ts).
 */
import type { JobRecord } from '../../core/jobs/job-record.ts';
import { submitJob } from '../../core/jobs/job-service.ts';
import type { JobStore } from '../../core/jobs/job-store.ts';
import { createLogger } from '../../core/platform/log.ts';
import type { EnginePreference } from '../../core/platform/runtime-config.ts';
import { createServices, type ServiceOverrides, type Services } from '../../core/services.ts';
import { type SelectedBackend, selectBackend } from '../../trainer/backend.ts';
import { compiledSetup } from '../../trainer/compiled/select.ts';
import { type JobOutcome, runJob, type TrainerDeps } from '../../trainer/run-job.ts';
import { use } from './backends.ts';
import { type LocalPorts, localPorts, putDataset } from './local-ports.ts';

export const TENANT = 'acme';
export const quiet = createLogger({}, () => {}, 'error');

export interface TrainerFixture {
  readonly ports: LocalPorts;
  readonly services: Services;
  readonly deps: TrainerDeps;
  readonly jobs: JobStore;
  /** Stores a dataset as an upload would and returns its id. */
  dataset(data: string, format?: 'csv' | 'jsonl'): Promise<string>;
  /** Submits a job through the API's service function; `body` is merged over a classification spec. */
  submit(body: Record<string, unknown>): Promise<JobRecord>;
  /** One delivery of the job, as a worker runs it. */
  run(jobId: string, signal?: AbortSignal): Promise<JobOutcome>;
  /** The job's record now. */
  record(jobId: string): Promise<JobRecord>;
  cleanup(): Promise<void>;
}

export async function trainerFixture(
  options: {
    /** A backend started already (one of `trainingBackends()`), or the name of one to start. @default 'wasm' */
    backend?: string | SelectedBackend;
    /**
     * `DESCENT_ENGINE` of the worker: `auto` trains compiled where it can (on tensorflow), as a
     * worker does by default. @default 'auto'
     */
    engine?: EnginePreference;
    deps?: Partial<TrainerDeps>;
    services?: ServiceOverrides;
    ports?: Parameters<typeof localPorts>[0];
  } = {},
): Promise<TrainerFixture> {
  const ports = await localPorts(options.ports);
  const services = createServices(ports.store, ports.queue, { log: quiet, ...options.services });
  const backend =
    typeof options.backend === 'object' ? options.backend : await selectBackend(options.backend ?? 'wasm');
  const deps: TrainerDeps = {
    store: ports.store,
    lifecycle: services.lifecycle,
    tf: await use(backend),
    backend: backend.name,
    device: backend.device,
    compiled: compiledSetup(backend, options.engine ?? 'auto'),
    now: services.now,
    log: quiet,
    progressIntervalMs: 0,
    ...options.deps,
  };
  const jobs = services.lifecycle.jobs;
  return {
    ports,
    services,
    deps,
    jobs,
    dataset: (data, format = 'csv') => putDataset(ports.store, TENANT, services.newId(), data, format),
    submit: async (body) => (await submitJob(services, TENANT, { task: 'classification', ...body })).record,
    run: (jobId, signal = new AbortController().signal) => runJob(deps, { tenant: TENANT, jobId }, signal),
    record: async (jobId) => (await jobs.get(TENANT, jobId)).record,
    cleanup: () => ports.cleanup(),
  };
}
