/**
 * ECS task scale-in protection, set from inside the container through the ECS container agent:
 * `PUT $ECS_AGENT_URI/task-protection/v1/state` with `{"ProtectionEnabled": true, "ExpiresInMinutes": N}`.
 * While a trainer trains, neither service scale-in nor a deployment stops its task; the agent calls
 * ECS's UpdateTaskProtection with the task role's credentials, so the task role needs
 * `ecs:UpdateTaskProtection` on its own task (see `infra/training-cluster.ts`).
 *
 * Protection is best effort: a failed call is logged and never fails the job, and it is granted for a
 * bounded time and renewed while the job trains, so a worker that hangs loses it by itself.
 */
import type { Logger } from '../core/platform/log.ts';

/** Set by the ECS agent in every container of a task on ECS (EC2 with agent 1.65+ and Fargate 1.4+). */
export const ECS_AGENT_URI = 'ECS_AGENT_URI';

/** The agent's path for the protection state, under `$ECS_AGENT_URI`. */
export const TASK_PROTECTION_PATH = '/task-protection/v1/state';

/** ECS accepts 1 to 2,880 minutes (48 hours). */
export const MAX_PROTECTION_MINUTES = 2880;

export interface TaskProtectionOptions {
  /** `$ECS_AGENT_URI`. When it is unset (not on ECS, or the local stack), protection is a no-op. */
  readonly agentUri: string | undefined;
  /** How long one protection lasts, 1 to 2,880 minutes; it is renewed every third of that while busy. */
  readonly expiresInMinutes: number;
  readonly log: Logger;
  /** @default globalThis.fetch */
  readonly fetch?: typeof fetch;
  /** @default a third of `expiresInMinutes` */
  readonly renewEveryMs?: number;
  /** Per-request timeout. @default 5000 */
  readonly timeoutMs?: number;
}

interface AgentResponse {
  protection?: { ProtectionEnabled?: boolean; ExpirationDate?: string; TaskArn?: string };
  failure?: { Arn?: string; Reason?: string; Detail?: string };
  error?: { Arn?: string; Code?: string; Message?: string };
}

export class TaskProtection {
  readonly #options: TaskProtectionOptions;
  readonly #fetch: typeof fetch;
  #renewal: ReturnType<typeof setInterval> | undefined;
  /** Calls run one after another, so a late "enable" can never land after the "disable" that followed it. */
  #queue: Promise<unknown> = Promise.resolve();

  constructor(options: TaskProtectionOptions) {
    const minutes = options.expiresInMinutes;
    if (!Number.isInteger(minutes) || minutes < 1 || minutes > MAX_PROTECTION_MINUTES) {
      throw new RangeError(
        `expiresInMinutes must be an integer from 1 to ${MAX_PROTECTION_MINUTES}, got ${minutes}.`,
      );
    }
    this.#options = options;
    this.#fetch = options.fetch ?? globalThis.fetch;
  }

  /** Whether there is an agent to talk to. */
  get available(): boolean {
    return Boolean(this.#options.agentUri);
  }

  /**
   * The Worker's `onBusy` hook: protects the task while `busy` (renewing the protection until the job
   * ends) and drops the protection when idle. Resolves once the agent answered; never rejects.
   */
  setBusy(busy: boolean): Promise<void> {
    if (!this.available) return Promise.resolve();
    this.#stopRenewal();
    if (busy) {
      const every = this.#options.renewEveryMs ?? (this.#options.expiresInMinutes * 60_000) / 3;
      this.#renewal = setInterval(() => void this.#enqueue(true), every);
      this.#renewal.unref();
    }
    return this.#enqueue(busy);
  }

  /** Stops renewing (the protection already granted runs out by itself). Safe to call twice. */
  close(): void {
    this.#stopRenewal();
  }

  #stopRenewal(): void {
    if (this.#renewal) clearInterval(this.#renewal);
    this.#renewal = undefined;
  }

  #enqueue(enabled: boolean): Promise<void> {
    const next = this.#queue.then(() => this.#put(enabled));
    this.#queue = next;
    return next;
  }

  async #put(enabled: boolean): Promise<void> {
    const { agentUri, expiresInMinutes, log, timeoutMs } = this.#options;
    const body = enabled
      ? { ProtectionEnabled: true, ExpiresInMinutes: expiresInMinutes }
      : { ProtectionEnabled: false };
    try {
      const response = await this.#fetch(`${agentUri}${TASK_PROTECTION_PATH}`, {
        method: 'PUT',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(timeoutMs ?? 5000),
      });
      const text = await response.text();
      let parsed: AgentResponse = {};
      try {
        parsed = JSON.parse(text) as AgentResponse;
      } catch {
        // Not JSON: reported below with the status.
      }
      // The agent answers 200 with `protection` on success; `failure` (even with a 200) or `error` otherwise.
      if (response.ok && parsed.protection && !parsed.failure && !parsed.error) {
        log.debug('task protection updated', {
          protectionEnabled: parsed.protection.ProtectionEnabled,
          expirationDate: parsed.protection.ExpirationDate,
        });
        return;
      }
      const reason =
        parsed.error?.Message ??
        parsed.failure?.Reason ??
        `HTTP ${response.status}: ${text.slice(0, 200) || response.statusText}`;
      log.warn('task protection not updated', {
        protectionEnabled: enabled,
        status: response.status,
        reason,
      });
    } catch (error) {
      log.warn('task protection not updated', { protectionEnabled: enabled, reason: String(error) });
    }
  }
}
