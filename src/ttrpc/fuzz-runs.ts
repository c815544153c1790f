/**
 * How many cases each property test tries: a few hundred in the unit tests, as many as
 * HULL_FUZZ_RUNS says under `npm run fuzz` (100,000).
 */
export function fuzzRuns(quick = 300): number {
  const asked = Number(process.env.HULL_FUZZ_RUNS);
  return Number.isInteger(asked) && asked > 0 ? asked : quick;
}
