/**
 * `JobQueue` on SQLite (`node:sqlite`), with SQS semantics: long poll, visibility timeout, receive
 * count, delay, dead-lettering past a maximum receive count. Several queues (the jobs queue and its
 * dead-letter queue) share one database file as rows of one table, and several processes may open
 * that file at once: WAL mode, a busy timeout, and `BEGIN IMMEDIATE` around every read-modify-write,
 * so that two processes can never receive the same message.
 *
 * A receipt handle is `<messageId>.<random>`: a stale handle (the message was received again since,
 * or deleted, or moved to the dead-letter queue) is told apart from the current one.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { chmodSync, closeSync, existsSync, openSync } from 'node:fs';
import { DatabaseSync, type StatementSync } from 'node:sqlite';
import { setTimeout as sleep } from 'node:timers/promises';
import type { JobQueue, QueueDepth, QueueMessage, ReceiveOptions } from '../core/platform/ports.ts';

export interface SqliteJobQueueOptions {
  /** The database file (created when missing), shared by every queue and process. */
  readonly path: string;
  readonly queueName: string;
  /** Default 30. */
  readonly visibilityTimeoutSeconds?: number;
  /** A message that would be delivered more often than this goes to `deadLetterQueueName` instead. */
  readonly maxReceiveCount?: number;
  readonly deadLetterQueueName?: string;
  /** How often a long poll looks again (default 100 ms). */
  readonly pollIntervalMs?: number;
  /** Clock in milliseconds (for tests); long-poll waits use real time. */
  readonly now?: () => number;
}

const MAX_VISIBILITY_SECONDS = 43_200;
const MAX_DELAY_SECONDS = 900;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS queue_messages (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  queue TEXT NOT NULL,
  message_id TEXT NOT NULL UNIQUE,
  body TEXT NOT NULL,
  sent_at INTEGER NOT NULL,
  visible_at INTEGER NOT NULL,
  receive_count INTEGER NOT NULL DEFAULT 0,
  receipt_handle TEXT
);
CREATE INDEX IF NOT EXISTS queue_messages_ready ON queue_messages (queue, visible_at, seq);
`;

interface MessageRow {
  seq: number;
  message_id: string;
  body: string;
  visible_at: number;
  receive_count: number;
  receipt_handle: string | null;
  queue: string;
}

const checkSeconds = (name: string, value: number, max: number): void => {
  if (!Number.isFinite(value) || value < 0 || value > max) {
    throw new RangeError(`${name} must be between 0 and ${max} seconds, got ${value}`);
  }
};

const messageIdOf = (receiptHandle: string): string => {
  const dot = receiptHandle.lastIndexOf('.');
  if (dot <= 0) throw new Error(`malformed receipt handle ${JSON.stringify(receiptHandle)}`);
  return receiptHandle.slice(0, dot);
};

export class SqliteJobQueue implements JobQueue {
  readonly #db: DatabaseSync;
  readonly #queue: string;
  readonly #visibilityMs: number;
  readonly #maxReceiveCount: number | undefined;
  readonly #deadLetterQueue: string | undefined;
  readonly #pollIntervalMs: number;
  readonly #now: () => number;
  readonly #statements: {
    insert: StatementSync;
    ready: StatementSync;
    deliver: StatementSync;
    deadLetter: StatementSync;
    byId: StatementSync;
    setVisibleAt: StatementSync;
    delete: StatementSync;
    visible: StatementSync;
    inFlight: StatementSync;
  };
  #closed = false;

  constructor(options: SqliteJobQueueOptions) {
    if (options.queueName === '') throw new Error('queueName must not be empty');
    const visibility = options.visibilityTimeoutSeconds ?? 30;
    checkSeconds('visibilityTimeoutSeconds', visibility, MAX_VISIBILITY_SECONDS);
    if (options.maxReceiveCount !== undefined) {
      if (!Number.isSafeInteger(options.maxReceiveCount) || options.maxReceiveCount < 1) {
        throw new RangeError(`maxReceiveCount must be a positive integer, got ${options.maxReceiveCount}`);
      }
      if (options.deadLetterQueueName === undefined || options.deadLetterQueueName === options.queueName) {
        throw new Error('maxReceiveCount needs a deadLetterQueueName other than the queue itself');
      }
    }
    this.#queue = options.queueName;
    this.#visibilityMs = visibility * 1000;
    this.#maxReceiveCount = options.maxReceiveCount;
    this.#deadLetterQueue = options.deadLetterQueueName;
    this.#pollIntervalMs = options.pollIntervalMs ?? 100;
    this.#now = options.now ?? Date.now;

    // Owner-only: SQLite gives its -wal and -shm files the database file's permissions.
    if (options.path !== ':memory:') {
      closeSync(openSync(options.path, 'a', 0o600));
      for (const file of [options.path, `${options.path}-wal`, `${options.path}-shm`])
        if (existsSync(file)) chmodSync(file, 0o600);
    }
    this.#db = new DatabaseSync(options.path, { timeout: 5000 });
    try {
      this.#db.exec('PRAGMA busy_timeout = 5000');
      this.#db.exec('PRAGMA journal_mode = WAL');
      this.#db.exec('PRAGMA synchronous = FULL');
      this.#transaction(() => this.#db.exec(SCHEMA));
      const db = this.#db;
      this.#statements = {
        insert: db.prepare(
          'INSERT INTO queue_messages (queue, message_id, body, sent_at, visible_at) VALUES (?, ?, ?, ?, ?)',
        ),
        ready: db.prepare(
          `SELECT seq, message_id, body, visible_at, receive_count, receipt_handle, queue FROM queue_messages
           WHERE queue = ? AND visible_at <= ? ORDER BY visible_at, seq LIMIT ?`,
        ),
        deliver: db.prepare(
          'UPDATE queue_messages SET receive_count = receive_count + 1, receipt_handle = ?, visible_at = ? WHERE seq = ?',
        ),
        deadLetter: db.prepare(
          'UPDATE queue_messages SET queue = ?, receive_count = 0, receipt_handle = NULL, visible_at = ? WHERE seq = ?',
        ),
        byId: db.prepare(
          `SELECT seq, message_id, body, visible_at, receive_count, receipt_handle, queue FROM queue_messages
           WHERE message_id = ?`,
        ),
        setVisibleAt: db.prepare('UPDATE queue_messages SET visible_at = ? WHERE seq = ?'),
        delete: db.prepare('DELETE FROM queue_messages WHERE seq = ?'),
        visible: db.prepare('SELECT COUNT(*) AS n FROM queue_messages WHERE queue = ? AND visible_at <= ?'),
        inFlight: db.prepare(
          `SELECT COUNT(*) AS n FROM queue_messages
           WHERE queue = ? AND visible_at > ? AND receipt_handle IS NOT NULL`,
        ),
      };
    } catch (error) {
      this.#db.close();
      throw error;
    }
  }

  async send(body: string, options: { delaySeconds?: number } = {}): Promise<{ messageId: string }> {
    this.#assertOpen();
    const delay = options.delaySeconds ?? 0;
    checkSeconds('delaySeconds', delay, MAX_DELAY_SECONDS);
    const messageId = randomUUID();
    const now = this.#now();
    this.#statements.insert.run(this.#queue, messageId, body, now, now + delay * 1000);
    return { messageId };
  }

  async receive(options: ReceiveOptions): Promise<QueueMessage[]> {
    this.#assertOpen();
    const max = options.maxMessages ?? 1;
    if (!Number.isSafeInteger(max) || max < 1 || max > 10) {
      throw new RangeError(`maxMessages must be between 1 and 10, got ${max}`);
    }
    checkSeconds('waitSeconds', options.waitSeconds, Number.MAX_SAFE_INTEGER);
    const visibilityMs =
      options.visibilityTimeoutSeconds === undefined
        ? this.#visibilityMs
        : options.visibilityTimeoutSeconds * 1000;
    if (options.visibilityTimeoutSeconds !== undefined) {
      checkSeconds('visibilityTimeoutSeconds', options.visibilityTimeoutSeconds, MAX_VISIBILITY_SECONDS);
    }
    const signal = options.signal;
    const deadline = Date.now() + options.waitSeconds * 1000;
    for (;;) {
      if (signal?.aborted || this.#closed) return [];
      const messages = this.#receiveNow(max, visibilityMs);
      if (messages.length > 0) return messages;
      const remaining = deadline - Date.now();
      if (remaining <= 0) return [];
      try {
        await sleep(Math.min(this.#pollIntervalMs, remaining), undefined, signal ? { signal } : {});
      } catch {
        return []; // aborted
      }
    }
  }

  async extendVisibility(receiptHandle: string, seconds: number): Promise<void> {
    this.#assertOpen();
    checkSeconds('seconds', seconds, MAX_VISIBILITY_SECONDS);
    this.#transaction(() => {
      const row = this.#current(receiptHandle, 'extend the visibility of');
      const now = this.#now();
      if (row.visible_at <= now) {
        throw new Error(
          `cannot extend the visibility of message ${row.message_id}: its visibility timeout has expired`,
        );
      }
      this.#statements.setVisibleAt.run(now + seconds * 1000, row.seq);
    });
  }

  async release(receiptHandle: string): Promise<void> {
    this.#assertOpen();
    this.#transaction(() => {
      const row = this.#current(receiptHandle, 'release');
      const now = this.#now();
      if (row.visible_at > now) this.#statements.setVisibleAt.run(now, row.seq);
    });
  }

  async delete(receiptHandle: string): Promise<void> {
    this.#assertOpen();
    this.#transaction(() => {
      const row = this.#row(receiptHandle);
      if (row === undefined) return; // already deleted
      this.#assertCurrent(row, receiptHandle, 'delete');
      this.#statements.delete.run(row.seq);
    });
  }

  async depth(): Promise<QueueDepth> {
    this.#assertOpen();
    const now = this.#now();
    const visible = this.#statements.visible.get(this.#queue, now) as { n: number };
    const inFlight = this.#statements.inFlight.get(this.#queue, now) as { n: number };
    return { visible: Number(visible.n), inFlight: Number(inFlight.n) };
  }

  /** Closes the database connection; later calls throw, a pending long poll returns []. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#db.close();
  }

  #receiveNow(max: number, visibilityMs: number): QueueMessage[] {
    return this.#transaction(() => {
      const delivered: QueueMessage[] = [];
      const now = this.#now();
      // Rows already handled in this call are skipped (with a zero visibility timeout they stay ready).
      const seen = new Set<number>();
      while (delivered.length < max) {
        const limit = max - delivered.length + seen.size;
        const all = this.#statements.ready.all(this.#queue, now, limit) as unknown as MessageRow[];
        const rows = all.filter((row) => !seen.has(row.seq));
        if (rows.length === 0) break;
        for (const row of rows) {
          if (delivered.length >= max) break;
          seen.add(row.seq);
          if (this.#maxReceiveCount !== undefined && row.receive_count + 1 > this.#maxReceiveCount) {
            this.#statements.deadLetter.run(this.#deadLetterQueue ?? null, now, row.seq);
            continue;
          }
          const receiptHandle = `${row.message_id}.${randomBytes(12).toString('hex')}`;
          this.#statements.deliver.run(receiptHandle, now + visibilityMs, row.seq);
          delivered.push({
            messageId: row.message_id,
            body: row.body,
            receiptHandle,
            receiveCount: Number(row.receive_count) + 1,
          });
        }
      }
      return delivered;
    });
  }

  #row(receiptHandle: string): MessageRow | undefined {
    return this.#statements.byId.get(messageIdOf(receiptHandle)) as unknown as MessageRow | undefined;
  }

  #current(receiptHandle: string, action: string): MessageRow {
    const row = this.#row(receiptHandle);
    if (row === undefined) {
      throw new Error(`cannot ${action} message ${messageIdOf(receiptHandle)}: it has been deleted`);
    }
    this.#assertCurrent(row, receiptHandle, action);
    return row;
  }

  #assertCurrent(row: MessageRow, receiptHandle: string, action: string): void {
    if (row.queue !== this.#queue) {
      throw new Error(
        `cannot ${action} message ${row.message_id}: it is no longer in queue ${this.#queue} (now in ${row.queue})`,
      );
    }
    if (row.receipt_handle !== receiptHandle) {
      throw new Error(
        `cannot ${action} message ${row.message_id}: the receipt handle is stale (the message was received again since)`,
      );
    }
  }

  #transaction<T>(work: () => T): T {
    this.#db.exec('BEGIN IMMEDIATE');
    try {
      const result = work();
      this.#db.exec('COMMIT');
      return result;
    } catch (error) {
      if (this.#db.isTransaction) this.#db.exec('ROLLBACK');
      throw error;
    }
  }

  #assertOpen(): void {
    if (this.#closed) throw new Error(`queue ${this.#queue} is closed`);
  }
}
