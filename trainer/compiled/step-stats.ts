/**
 * TensorFlow's per-op timings of one traced run (`NativeSession.trace`: RunMetadata with FULL_TRACE
 * step stats), read with just enough of a protobuf decoder: where a compiled step spends its time
 * (bench:train `--profile`).
 *
 *   RunMetadata { StepStats step_stats = 1 }        StepStats { repeated DeviceStepStats dev_stats = 1 }
 *   DeviceStepStats { string device = 1; repeated NodeExecStats node_stats = 2 }
 *   NodeExecStats { string node_name = 1; int64 all_start_micros = 2; int64 all_end_rel_micros = 5;
 *                   string timeline_label = 8; uint32 thread_id = 10; int64 all_start_nanos = 13;
 *                   int64 all_end_rel_nanos = 16 }
 */

export interface NodeTiming {
  device: string;
  node: string;
  /** The op's type, from its timeline label (`name = Type(inputs)`), else its name. */
  op: string;
  thread: number;
  /** Start, ns since the epoch (TensorFlow's clock), and duration, ns. */
  startNanos: number;
  nanos: number;
}

interface Field {
  field: number;
  wire: number;
  /** varint value, or the bytes of a length-delimited field. */
  value: number | Uint8Array;
}

function* fields(bytes: Uint8Array): Generator<Field> {
  let p = 0;
  const varint = () => {
    let result = 0;
    let scale = 1;
    for (;;) {
      const b = bytes[p++] as number;
      result += (b & 0x7f) * scale;
      if (b < 0x80) return result;
      scale *= 128;
    }
  };
  while (p < bytes.length) {
    const key = varint();
    const wire = key % 8;
    const field = Math.floor(key / 8);
    if (wire === 0) yield { field, wire, value: varint() };
    else if (wire === 2) {
      const length = varint();
      yield { field, wire, value: bytes.subarray(p, p + length) };
      p += length;
    } else if (wire === 1) p += 8;
    else if (wire === 5) p += 4;
    else throw new Error(`unexpected protobuf wire type ${wire}`);
  }
}

const text = (v: number | Uint8Array) => (typeof v === 'number' ? '' : new TextDecoder().decode(v));
const num = (v: number | Uint8Array) => (typeof v === 'number' ? v : 0);

function node(device: string, bytes: Uint8Array): NodeTiming {
  const t: NodeTiming = { device, node: '', op: '', thread: 0, startNanos: 0, nanos: 0 };
  let micros = 0;
  let startMicros = 0;
  for (const { field, value } of fields(bytes)) {
    if (field === 1) t.node = text(value);
    else if (field === 2) startMicros = num(value);
    else if (field === 5) micros = num(value);
    else if (field === 8) t.op = /= (\w+)/.exec(text(value))?.[1] ?? '';
    else if (field === 10) t.thread = num(value);
    else if (field === 13) t.startNanos = num(value);
    else if (field === 16) t.nanos = num(value);
  }
  if (!t.nanos) t.nanos = micros * 1000;
  if (!t.startNanos) t.startNanos = startMicros * 1000;
  t.op ||= t.node;
  return t;
}

/** Every node's timing in a serialized RunMetadata. */
export function stepStats(runMetadata: Uint8Array): NodeTiming[] {
  const out: NodeTiming[] = [];
  for (const meta of fields(runMetadata)) {
    if (meta.field !== 1 || typeof meta.value === 'number') continue;
    for (const dev of fields(meta.value)) {
      if (dev.field !== 1 || typeof dev.value === 'number') continue;
      let device = '';
      const nodes: Uint8Array[] = [];
      for (const f of fields(dev.value)) {
        if (f.field === 1) device = text(f.value);
        else if (f.field === 2 && typeof f.value !== 'number') nodes.push(f.value);
      }
      for (const bytes of nodes) out.push(node(device, bytes));
    }
  }
  return out;
}
