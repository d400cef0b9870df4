/**
 * Small helpers shared by the algorithm catalogue: sums, means, the population
 * standard deviation, standardisation of a set, the options schema of entries that take none, the bootstrap interval that
 * comparisons report, and the unbiased pass@k estimator of sampled evaluation.
 *
 * Every normalisation in the catalogue (GTPO's normalised returns, GRPO's z-score,
 * REINFORCE++'s whitening) goes through {@link standardize}, so they agree on the
 * convention: population std (divide by n, not n - 1) and `eps` added to the std.
 *
 * @category constructors
 */
import { Schema } from "effect"
import { AlgorithmInputError } from "./errors.js"
import { Rng } from "./rng.js"

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
export const standardize = (set: ReadonlyArray<number>, options: StandardizeOptions): (value: number) => number => {
  const m = mean(set)
  if (!options.normalizeStd) return (value) => value - m
  const scale = populationStd(set) + options.eps
  return (value) => (scale === 0 ? 0 : (value - m) / scale)
}

/** A mean with a confidence interval. */
export interface Interval {
  /** Mean of the whole table. */
  readonly mean: number
  /** Lower end of the interval. */
  readonly lo: number
  /** Upper end of the interval. */
  readonly hi: number
  /** Confidence level of [lo, hi], e.g. 0.95. */
  readonly level: number
}

/** Settings of {@link bootstrapInterval}. */
export interface BootstrapOptions {
  /** Resamples drawn. Default 2000. */
  readonly resamples?: number
  /** Confidence level in (0, 1). Default 0.95. */
  readonly level?: number
  /** Seed of the resampling, so a report is reproducible. Default 0. */
  readonly seed?: number
}

/**
 * Percentile bootstrap interval of the mean of a table `values[row][column]`, resampling
 * both ways: rows (seeds) with replacement, and columns (problems) with replacement,
 * the same columns for every drawn row. Both sources of variation widen the interval,
 * and a table of paired differences (recipe B minus recipe A on the same seed and
 * problem) keeps its pairing, so the interval of its mean is the paired interval.
 *
 * Every row must have the same, non-zero number of finite entries; throws
 * AlgorithmInputError otherwise. With one row only columns vary; with one column only
 * rows vary.
 *
 * @example
 * const ci = bootstrapInterval([[1, 0, 1, 1], [1, 1, 0, 1]], { seed: 1 })
 * ci.mean // 0.75
 * ci.lo <= 0.75 && 0.75 <= ci.hi // true
 */
export const bootstrapInterval = (values: ReadonlyArray<ReadonlyArray<number>>, options: BootstrapOptions = {}): Interval => {
  const fn = "bootstrapInterval"
  const resamples = options.resamples ?? 2000
  const level = options.level ?? 0.95
  if (!(Number.isInteger(resamples) && resamples >= 1)) {
    throw new AlgorithmInputError({ fn, where: "option resamples", problem: `resamples must be a positive integer, got ${resamples}` })
  }
  if (!(Number.isFinite(level) && level > 0 && level < 1)) {
    throw new AlgorithmInputError({ fn, where: "option level", problem: `level must be in (0, 1), got ${level}` })
  }
  const rows = values.length
  if (rows === 0) throw new AlgorithmInputError({ fn, where: "values", problem: "the table has no rows; nothing to resample" })
  const columns = values[0]?.length ?? 0
  if (columns === 0) throw new AlgorithmInputError({ fn, where: "values[0]", problem: "the first row has no entries; nothing to resample" })
  values.forEach((row, r) => {
    if (row.length !== columns) {
      throw new AlgorithmInputError({
        fn,
        where: `values[${r}]`,
        problem: `values[${r}] has ${row.length} entries, values[0] has ${columns}; every row must cover the same columns`,
      })
    }
    row.forEach((v, c) => {
      if (!Number.isFinite(v)) {
        throw new AlgorithmInputError({ fn, where: `values[${r}][${c}]`, problem: `values[${r}][${c}] is ${v}; every entry must be a finite number` })
      }
    })
  })
  const rowSums = values.map((row) => sum(row))
  const mean = sum(rowSums) / (rows * columns)
  const rng = Rng.fromSeed(options.seed ?? 0)
  const means = new Float64Array(resamples)
  const rowPick = new Int32Array(rows)
  for (let b = 0; b < resamples; b++) {
    for (let r = 0; r < rows; r++) rowPick[r] = rows === 1 ? 0 : rng.int(rows)
    let total = 0
    if (columns === 1) {
      for (let r = 0; r < rows; r++) total += values[rowPick[r]!]![0]!
    } else {
      for (let c = 0; c < columns; c++) {
        const column = rng.int(columns)
        for (let r = 0; r < rows; r++) total += values[rowPick[r]!]![column]!
      }
    }
    means[b] = total / (rows * columns)
  }
  means.sort()
  const quantile = (q: number): number => {
    const position = q * (resamples - 1)
    const below = Math.floor(position)
    const above = Math.min(resamples - 1, below + 1)
    return means[below]! + (means[above]! - means[below]!) * (position - below)
  }
  const tail = (1 - level) / 2
  return { mean, lo: quantile(tail), hi: quantile(1 - tail), level }
}

/**
 * The unbiased estimator of pass@k: the probability that at least one of k
 * completions drawn without replacement from n sampled completions, c of them
 * correct, is correct, i.e. 1 - C(n - c, k) / C(n, k). Averaged over problems it
 * estimates the chance that k fresh samples solve a problem, with less variance than
 * drawing exactly k samples (n > k). With n = k it is 1 when any sample is correct,
 * else 0; with k = 1 it is c / n.
 *
 * Computed as 1 - prod_{i = n-c+1}^{n} (1 - k / i), which never forms the binomial
 * coefficients, so it stays exact enough for large n. Throws AlgorithmInputError
 * unless n, c, k are integers with 0 <= c <= n and 1 <= k <= n.
 *
 * @example
 * passAtK(4, 1, 2) // 0.5: 1 - C(3,2)/C(4,2) = 1 - 3/6
 * passAtK(5, 0, 5) // 0
 * passAtK(5, 2, 1) // 0.4
 */
export const passAtK = (n: number, c: number, k: number): number => {
  const fn = "passAtK"
  if (!(Number.isInteger(n) && n >= 1)) throw new AlgorithmInputError({ fn, where: "n", problem: `n (samples) must be a positive integer, got ${n}` })
  if (!(Number.isInteger(c) && c >= 0 && c <= n)) {
    throw new AlgorithmInputError({ fn, where: "c", problem: `c (correct samples) must be an integer in [0, ${n}], got ${c}` })
  }
  if (!(Number.isInteger(k) && k >= 1 && k <= n)) {
    throw new AlgorithmInputError({ fn, where: "k", problem: `k must be an integer in [1, n = ${n}], got ${k}` })
  }
  // Fewer wrong samples than k: every draw of k contains a correct one.
  if (n - c < k) return 1
  let allWrong = 1
  for (let i = n - c + 1; i <= n; i++) allWrong *= 1 - k / i
  return 1 - allWrong
}
