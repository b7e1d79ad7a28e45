/** Seeded row splits: stratified hold-out, k-fold partitions. Pure functions over row indices. */
import { type Rng, shuffleInPlace } from '../platform/random.ts';

/** Groups rows by class (classification) or keeps one group (regression), in row order. */
export function groupsOf(rows: Int32Array, y: Float32Array, classCount?: number): number[][] {
  if (!classCount) return [Array.from(rows)];
  const groups: number[][] = Array.from({ length: classCount }, () => []);
  for (const r of rows) (groups[y[r] as number] as number[]).push(r);
  return groups;
}

const sorted = (rows: number[]) => Int32Array.from(rows).sort();

/**
 * Takes `fraction` of each group (at least one row of every group with two or more rows, never its last
 * row) as the held-out part.
 */
export function holdout(
  groups: number[][],
  fraction: number,
  rng: Rng,
): { kept: Int32Array; heldOut: Int32Array } {
  const kept: number[] = [];
  const heldOut: number[] = [];
  for (const group of groups) {
    const g = [...group];
    shuffleInPlace(g, rng);
    const take = g.length < 2 ? 0 : Math.min(Math.max(1, Math.round(g.length * fraction)), g.length - 1);
    heldOut.push(...g.slice(0, take));
    kept.push(...g.slice(take));
  }
  return { kept: sorted(kept), heldOut: sorted(heldOut) };
}

/**
 * k folds that partition the rows exactly once; each group is dealt round-robin after a seeded
 * shuffle, so every fold gets its share of every class.
 */
export function kfold(
  groups: number[][],
  k: number,
  rng: Rng,
): { train: Int32Array; validation: Int32Array }[] {
  const folds: number[][] = Array.from({ length: k }, () => []);
  let next = 0;
  for (const group of groups) {
    const g = [...group];
    shuffleInPlace(g, rng);
    for (const r of g) {
      (folds[next % k] as number[]).push(r);
      next++;
    }
  }
  return folds.map((validation, i) => ({
    validation: sorted(validation),
    train: sorted(folds.flatMap((f, j) => (j === i ? [] : f))),
  }));
}
