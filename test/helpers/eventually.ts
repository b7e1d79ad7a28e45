/** The polling helper with a deadline lives beside the ephemeral stack that uses it too. */
export { type EventuallyOptions, eventually } from '../../local/eventually.ts';
