/**
 * The random numbers of private training: Poisson sampling and the Gaussian noise. They come from
 * AES-256 in counter mode under a key drawn from the operating system's generator when the run
 * starts, so that nobody can predict (and subtract) the noise, even knowing the job's seed, which is
 * public in its record. The whole state is the key and the block counter: a checkpoint keeps both,
 * and a resumed run continues the very same stream.
 */
import { createCipheriv, randomBytes } from 'node:crypto';

export interface KeyedRandomState {
  /** 32 bytes, base64. */
  key: string;
  /** 16-byte blocks of keystream used so far. */
  block: number;
}

const TWO_POW_53 = 2 ** 53;

export class KeyedRandom {
  readonly #key: Buffer;
  #block: number;

  constructor(state: KeyedRandomState) {
    this.#key = Buffer.from(state.key, 'base64');
    if (this.#key.length !== 32) throw new Error('a keyed random state needs a 32-byte key');
    this.#block = state.block;
  }

  /** A new stream under a fresh key (or under `key`, for reproducible tests). */
  static create(key: Uint8Array = randomBytes(32)): KeyedRandom {
    return new KeyedRandom({ key: Buffer.from(key).toString('base64'), block: 0 });
  }

  state(): KeyedRandomState {
    return { key: this.#key.toString('base64'), block: this.#block };
  }

  /** The next `n` bytes of keystream (AES-256-CTR of zeros from the current block). */
  bytes(n: number): Buffer {
    const blocks = Math.ceil(n / 16);
    const iv = Buffer.alloc(16);
    iv.writeBigUInt64BE(BigInt(this.#block), 8);
    const cipher = createCipheriv('aes-256-ctr', this.#key, iv);
    const out = cipher.update(Buffer.alloc(blocks * 16));
    this.#block += blocks;
    return out.subarray(0, n);
  }

  /** `n` uniform numbers strictly inside (0, 1), 53 bits each. */
  uniforms(n: number): Float64Array {
    const raw = this.bytes(8 * n);
    const out = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      const hi = raw.readUInt32BE(8 * i) >>> 5; // 27 bits
      const lo = raw.readUInt32BE(8 * i + 4) >>> 6; // 26 bits
      out[i] = (hi * 67_108_864 + lo + 0.5) / TWO_POW_53;
    }
    return out;
  }

  /** `n` standard normal numbers (Box–Muller on pairs of uniforms). */
  normals(n: number): Float32Array {
    const u = this.uniforms(n + (n % 2));
    const out = new Float32Array(n);
    for (let i = 0; i < n; i += 2) {
      const r = Math.sqrt(-2 * Math.log(u[i] as number));
      const theta = 2 * Math.PI * (u[i + 1] as number);
      out[i] = r * Math.cos(theta);
      if (i + 1 < n) out[i + 1] = r * Math.sin(theta);
    }
    return out;
  }

  /**
   * A Poisson sample of `0..n−1`: every index independently with probability `q`, in order. Drawn by
   * geometric gaps (the distance to the next chosen index is Geometric(q)), so it costs one uniform
   * per chosen index instead of one per row.
   */
  poissonSample(n: number, q: number): Int32Array {
    if (q >= 1) return Int32Array.from({ length: n }, (_, i) => i);
    const chosen: number[] = [];
    const logMiss = Math.log1p(-q);
    const chunk = Math.max(16, Math.ceil(n * q * 1.25) + 8);
    let i = -1;
    for (;;) {
      const u = this.uniforms(chunk);
      for (const v of u) {
        i += Math.floor(Math.log(v) / logMiss) + 1;
        if (i >= n) return Int32Array.from(chosen);
        chosen.push(i);
      }
    }
  }
}
