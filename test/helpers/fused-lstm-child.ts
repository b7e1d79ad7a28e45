/**
 * Run by test/unit/fused-lstm.test.ts in a process of its own with DESCENT_LSTM_ISA set (the kernel
 * picks its instruction set once per process): prints the kernel's ISA and each case's errors
 * against the float64 reference, as one line of JSON.
 */
import { loadGraphAddon } from '../../trainer/compiled/native.ts';
import { fusedLstm, LSTM_CASES, lstmErrors, referenceLstm } from './fused-lstm.ts';

const { addon, error } = loadGraphAddon();
if (!addon) throw new Error(`the graph addon is not built (${error})`);
const errors = LSTM_CASES.map((c) => lstmErrors(fusedLstm(addon, c), referenceLstm(c)));
process.stdout.write(`${JSON.stringify({ isa: addon.lstmIsa, errors })}\n`);
