/**
 * Just enough of a ZIP reader to take files out of a Python wheel: the central directory (ZIP64
 * included), stored and deflated entries, each streamed to disk with its CRC-32 checked. No
 * dependency and no `unzip` on the machine needed; a wheel is read without unpacking the rest of it
 * (TensorFlow's holds 15,000 files and 1.3 GB; setup:native wants three of them and a few headers).
 */
import { createReadStream, createWriteStream } from 'node:fs';
import { type FileHandle, mkdir, open, rm, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { crc32, createInflateRaw, inflateRawSync } from 'node:zlib';

export interface ZipEntry {
  readonly name: string;
  /** 0 = stored, 8 = deflate; anything else cannot be read here. */
  readonly method: number;
  readonly crc: number;
  readonly compressedSize: number;
  readonly size: number;
  readonly localHeaderOffset: number;
}

const EOCD = 0x06054b50;
const EOCD64 = 0x06064b50;
const EOCD64_LOCATOR = 0x07064b50;
const CENTRAL = 0x02014b50;
const LOCAL = 0x04034b50;
const MAX16 = 0xffff;
const MAX32 = 0xffffffff;

async function readAt(file: FileHandle, position: number, length: number): Promise<Buffer> {
  const buffer = Buffer.alloc(length);
  const { bytesRead } = await file.read(buffer, 0, length, position);
  return buffer.subarray(0, bytesRead);
}

export class ZipFile {
  readonly path: string;
  /** Every entry by its name (folders end in `/`). */
  readonly entries: ReadonlyMap<string, ZipEntry>;
  private readonly file: FileHandle;

  private constructor(path: string, entries: ReadonlyMap<string, ZipEntry>, file: FileHandle) {
    this.path = path;
    this.entries = entries;
    this.file = file;
  }

  /** Reads the central directory; throws when the file is not a ZIP archive. */
  static async open(path: string): Promise<ZipFile> {
    const file = await open(path, 'r');
    try {
      const { size } = await file.stat();
      // The end-of-central-directory record is in the last 22 bytes + up to 64 KiB of comment.
      const tailLength = Math.min(size, 22 + MAX16);
      const tail = await readAt(file, size - tailLength, tailLength);
      const at = tail.lastIndexOf(Buffer.from([0x50, 0x4b, 0x05, 0x06]));
      if (at < 0 || tail.readUInt32LE(at) !== EOCD) throw new Error(`${path} is not a ZIP file`);
      let count = tail.readUInt16LE(at + 10);
      let dirSize = tail.readUInt32LE(at + 12);
      let dirOffset = tail.readUInt32LE(at + 16);
      if (count === MAX16 || dirSize === MAX32 || dirOffset === MAX32) {
        // ZIP64: the locator just before points at the 64-bit record.
        const locator = tail.subarray(at - 20, at);
        if (locator.readUInt32LE(0) !== EOCD64_LOCATOR) throw new Error(`${path}: broken ZIP64 directory`);
        const record = await readAt(file, Number(locator.readBigUInt64LE(8)), 56);
        if (record.readUInt32LE(0) !== EOCD64) throw new Error(`${path}: broken ZIP64 directory`);
        count = Number(record.readBigUInt64LE(32));
        dirSize = Number(record.readBigUInt64LE(40));
        dirOffset = Number(record.readBigUInt64LE(48));
      }
      const dir = await readAt(file, dirOffset, dirSize);
      const entries = new Map<string, ZipEntry>();
      let p = 0;
      for (let i = 0; i < count; i++) {
        if (dir.readUInt32LE(p) !== CENTRAL) throw new Error(`${path}: broken central directory`);
        const nameLength = dir.readUInt16LE(p + 28);
        const extraLength = dir.readUInt16LE(p + 30);
        const commentLength = dir.readUInt16LE(p + 32);
        const name = dir.toString('utf8', p + 46, p + 46 + nameLength);
        let compressedSize = dir.readUInt32LE(p + 20);
        let size = dir.readUInt32LE(p + 24);
        let localHeaderOffset = dir.readUInt32LE(p + 42);
        // ZIP64 extra field (id 1): the 64-bit values of whichever fields are 0xffffffff, in order.
        let e = p + 46 + nameLength;
        const extraEnd = e + extraLength;
        while (e + 4 <= extraEnd) {
          const id = dir.readUInt16LE(e);
          const length = dir.readUInt16LE(e + 2);
          if (id === 1) {
            let q = e + 4;
            const next = () => {
              const value = Number(dir.readBigUInt64LE(q));
              q += 8;
              return value;
            };
            if (size === MAX32) size = next();
            if (compressedSize === MAX32) compressedSize = next();
            if (localHeaderOffset === MAX32) localHeaderOffset = next();
          }
          e += 4 + length;
        }
        entries.set(name, {
          name,
          method: dir.readUInt16LE(p + 10),
          crc: dir.readUInt32LE(p + 16),
          compressedSize,
          size,
          localHeaderOffset,
        });
        p = extraEnd + commentLength;
      }
      return new ZipFile(path, entries, file);
    } catch (error) {
      await file.close();
      throw error;
    }
  }

  async close(): Promise<void> {
    await this.file.close();
  }

  /** Where an entry's data starts: after its local header, whose name and extra lengths may differ. */
  private async dataOffset(entry: ZipEntry): Promise<number> {
    const header = await readAt(this.file, entry.localHeaderOffset, 30);
    if (header.readUInt32LE(0) !== LOCAL) throw new Error(`${this.path}: broken entry ${entry.name}`);
    return entry.localHeaderOffset + 30 + header.readUInt16LE(26) + header.readUInt16LE(28);
  }

  private entry(name: string): ZipEntry {
    const entry = this.entries.get(name);
    if (!entry) throw new Error(`${this.path} has no ${name}`);
    if (entry.method !== 0 && entry.method !== 8)
      throw new Error(`${this.path}: ${name} uses compression method ${entry.method}`);
    return entry;
  }

  /** A (small) entry's bytes in memory, CRC-checked. */
  async read(name: string): Promise<Buffer> {
    const entry = this.entry(name);
    const raw = await readAt(this.file, await this.dataOffset(entry), entry.compressedSize);
    const data = entry.method === 8 ? inflateRawSync(raw) : raw;
    if (data.length !== entry.size || crc32(data) >>> 0 !== entry.crc)
      throw new Error(`${this.path}: ${name} is corrupt (size or CRC-32 mismatch)`);
    return data;
  }

  /** Streams an entry to `destination` (folders created), CRC-checked; a bad entry leaves no file behind. */
  async extract(name: string, destination: string, mode = 0o644): Promise<void> {
    const entry = this.entry(name);
    await mkdir(dirname(destination), { recursive: true });
    if (entry.compressedSize === 0) {
      if (entry.size !== 0) throw new Error(`${this.path}: ${name} is corrupt (no data)`);
      await writeFile(destination, '', { mode });
      return;
    }
    const start = await this.dataOffset(entry);
    let crc = 0;
    let size = 0;
    const check = new Transform({
      transform(chunk: Buffer, _encoding, done) {
        crc = crc32(chunk, crc);
        size += chunk.length;
        done(null, chunk);
      },
    });
    // A stream of its own per entry: streams sharing the open handle would each add a listener to it.
    const source = createReadStream(this.path, { start, end: start + entry.compressedSize - 1 });
    const sink = createWriteStream(destination, { mode });
    try {
      if (entry.method === 8) await pipeline(source, createInflateRaw(), check, sink);
      else await pipeline(source, check, sink);
      if (size !== entry.size || crc >>> 0 !== entry.crc)
        throw new Error(`${this.path}: ${name} is corrupt (size or CRC-32 mismatch)`);
    } catch (error) {
      await rm(destination, { force: true });
      throw error;
    }
  }
}
