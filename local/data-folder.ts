/**
 * The local data folder: created owner-only (0700: it holds every tenant's data, tokens and the
 * signing secret) and checked writable at start, so that a read-only or foreign folder stops the
 * stack with a message that says what to do instead of a stack trace.
 */
import { chmod, mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

export class DataFolderError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DataFolderError';
  }
}

const codeOf = (error: unknown): string =>
  typeof error === 'object' && error !== null && 'code' in error ? String(error.code) : 'error';

/** Creates `dir` (0700) if needed and proves it writable; a `DataFolderError` naming it otherwise. */
export async function prepareDataFolder(dir: string): Promise<void> {
  try {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    // An existing folder of an earlier version may be world-readable; one we do not own stays as it is.
    await chmod(dir, 0o700).catch((error: unknown) => {
      if (codeOf(error) !== 'EPERM') throw error;
    });
    const probe = join(dir, `.write-check-${process.pid}`);
    await writeFile(probe, '', { mode: 0o600 });
    await rm(probe, { force: true });
  } catch (error) {
    const code = codeOf(error);
    const why =
      code === 'EACCES' || code === 'EPERM'
        ? 'permission denied'
        : code === 'EROFS'
          ? 'the filesystem is read-only'
          : code === 'ENOSPC'
            ? 'the disk is full'
            : code === 'ENOTDIR' || code === 'EEXIST'
              ? 'a file is in the way'
              : (error as Error).message;
    throw new DataFolderError(
      `The data folder ${dir} cannot be written (${why}, ${code}). Set DESCENT_DATA_DIR to a folder descent may write, or fix this one's permissions.`,
    );
  }
}
