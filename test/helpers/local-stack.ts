/** Tests start the real local stack in a temporary folder (the benchmarks do too). */
export {
  type EphemeralStack as TestStack,
  startEphemeralStack as startTestStack,
} from '../../local/ephemeral-stack.ts';
