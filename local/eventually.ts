/**
 * The one way tests wait for something asynchronous: poll `probe` until `done` says its value is
 * ready, and fail with the last value seen once `timeoutMs` has passed (a regression fails, it never
 * hangs). No fixed sleeps: the interval only paces the polling.
 */
export interface EventuallyOptions {
  /** @default 30_000 */
  readonly timeoutMs?: number;
  /** @default 10 */
  readonly intervalMs?: number;
  /** What is being waited for, for the failure message. */
  readonly what?: string;
}

export async function eventually<T, U extends T>(
  probe: () => Promise<T> | T,
  done: (value: T) => value is U,
  options?: EventuallyOptions,
): Promise<U>;
export async function eventually<T>(
  probe: () => Promise<T> | T,
  done: (value: T) => boolean,
  options?: EventuallyOptions,
): Promise<T>;
export async function eventually<T>(
  probe: () => Promise<T> | T,
  done: (value: T) => boolean,
  options: EventuallyOptions = {},
): Promise<T> {
  const deadline = Date.now() + (options.timeoutMs ?? 30_000);
  for (;;) {
    const value = await probe();
    if (done(value)) return value;
    if (Date.now() > deadline) {
      const seen = JSON.stringify(value, (_, v) => (typeof v === 'bigint' ? String(v) : v))?.slice(0, 500);
      throw new Error(
        `timed out after ${options.timeoutMs ?? 30_000} ms waiting for ${options.what ?? 'a condition'}; last seen: ${seen}`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, options.intervalMs ?? 10));
  }
}
