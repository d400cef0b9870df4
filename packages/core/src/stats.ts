/**
 * Small helpers shared by the algorithm catalogue: sums, means, the population
 * standard deviation, standardisation of a set, range checks on numeric options,
 * and the options schema of entries that take none.
 *
 * Every normalisation in the catalogue (GTPO's normalised returns, GRPO's z-score,
 * REINFORCE++'s whitening) goes through {@link standardize}, so they agree on the
 * convention: population std (divide by n, not n - 1) and `eps` added to the std.
 *
 * @category constructors
 */
import { Schema } from "effect"

/** The options schema of a catalogue entry that takes no options. */
export const NoOptions = Schema.Struct({})
export type NoOptions = typeof NoOptions.Type

/**
 * Sum of the numbers (0 for none).
 *
 * @example
 * sum([1, 2, 3]) // 6
 */
export const sum = (xs: ReadonlyArray<number>): number => {
  let total = 0
  for (const x of xs) total += x
  return total
}

/**
 * Arithmetic mean; callers guarantee at least one number (NaN otherwise).
 *
 * @example
 * mean([1, 2, 3]) // 2
 */
export const mean = (xs: ReadonlyArray<number>): number => sum(xs) / xs.length

/**
 * Population standard deviation (divides by n): the std of the set itself, not an
 * estimate of a wider population. With one number it is 0.
 *
 * @example
 * populationStd([1, 3]) // 1
 */
export const populationStd = (xs: ReadonlyArray<number>): number => {
  const m = mean(xs)
  let squares = 0
  for (const x of xs) squares += (x - m) * (x - m)
  return Math.sqrt(squares / xs.length)
}

/** How {@link standardize} scales. */
export interface StandardizeOptions {
  /** Divide by (std + eps); false subtracts the mean only (Dr.GRPO-style). */
  readonly normalizeStd: boolean
  /** Added to the std before dividing. */
  readonly eps: number
}

/**
 * A function mapping a value to (value - mean(set)) / (std(set) + eps), or to
 * value - mean(set) when `normalizeStd` is false.
 *
 * When std + eps is 0 (every value equal and eps = 0) every numerator is 0 too; the
 * function then returns 0 rather than 0 / 0 = NaN.
 *
 * @example
 * const z = standardize([1, 3], { normalizeStd: true, eps: 0 })
 * z(3) // 1
 */
export const standardize = (set: ReadonlyArray<number>, options: StandardizeOptions): ((value: number) => number) => {
  const m = mean(set)
  if (!options.normalizeStd) return (value) => value - m
  const scale = populationStd(set) + options.eps
  return (value) => (scale === 0 ? 0 : (value - m) / scale)
}
