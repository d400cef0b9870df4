/**
 * Sample filters: which groups of a batch to train on.
 *
 * - `none`: keep every group.
 * - `zero-variance` (DAPO dynamic sampling): drop a group whose trajectories all
 *   have the same outcome score. Under any group-relative advantage such a group's
 *   advantages are all zero, so it adds no gradient, only noise to the token-mean
 *   normaliser; dropping (and refilling) it keeps the effective batch size.
 *
 * The filter reads the OUTCOME (`outcome.score`), never shaped rewards. Shaping gives
 * failed trajectories different partial credits, so a group in which every
 * trajectory failed has non-zero variance in shaped reward and survives a
 * shaped-score filter; a std-normalised advantage then blows the small differences
 * in partial credit up to unit size, a full-size gradient with no correct answer in
 * the group behind it. verl-recipe PR #125 measured exactly this: with the group
 * filter set to the shaped score, such phantom gradients destroyed the policy within
 * 40 steps, while filtering on the binary outcome (DAPO's own criterion) did not.
 *
 * {@link applyKeep} and {@link applyKeepValues} cut a batch and its value tables down
 * to the kept groups.
 *
 * @category constructors
 */
import type { FilterResult, SampleFilter } from "./component.js"
import { AlgorithmInputError } from "./errors.js"
import type { Batch } from "./model.js"
import { NoOptions } from "./stats.js"
import { assertNonEmptyBatch, perTrajectory, perTurn, type PerTrajectory, type PerTurn, type Quantity } from "./values.js"

/**
 * Keep every group.
 *
 * @example
 * keepAllGroups(batch).keep // [true, true, ...]
 */
export const keepAllGroups = (batch: Batch): FilterResult => {
  assertNonEmptyBatch("keepAllGroups", batch)
  return { keep: batch.groups.map(() => true), reasons: batch.groups.map(() => null) }
}

/**
 * DAPO dynamic sampling: drop each group whose outcome scores are all equal (all
 * solved, all failed, or a single trajectory).
 *
 * @example
 * const { keep, reasons } = zeroVarianceGroups(batch)
 * reasons // [null, "all 4 trajectories scored 1", ...]
 */
export const zeroVarianceGroups = (batch: Batch): FilterResult => {
  assertNonEmptyBatch("zeroVarianceGroups", batch)
  const verdicts = batch.groups.map((group) => {
    const first = group.trajectories[0]!.outcome.score
    const same = group.trajectories.every((t) => t.outcome.score === first)
    return same ? `all ${group.trajectories.length} trajectories scored ${first}` : null
  })
  return { keep: verdicts.map((reason) => reason === null), reasons: verdicts }
}

const checkKeep = (fn: string, groups: number, keep: ReadonlyArray<boolean>): void => {
  if (keep.length !== groups) throw new AlgorithmInputError({ fn, where: "keep", problem: `${keep.length} flags for ${groups} groups` })
}

/**
 * The sub-batch of the kept groups, in their original order.
 *
 * @example
 * const kept = applyKeep(batch, zeroVarianceGroups(batch).keep)
 */
export const applyKeep = (batch: Batch, keep: ReadonlyArray<boolean>): Batch => {
  checkKeep("applyKeep", batch.groups.length, keep)
  return { groups: batch.groups.filter((_, g) => keep[g]) }
}

/**
 * The rows of a value table for the kept groups (to filter tables computed before the
 * filter ran).
 *
 * @example
 * const keptAdvantages = applyKeepValues(advantages, keep)
 */
export function applyKeepValues<Q extends Quantity>(table: PerTurn<Q>, keep: ReadonlyArray<boolean>): PerTurn<Q>
export function applyKeepValues<Q extends Quantity>(table: PerTrajectory<Q>, keep: ReadonlyArray<boolean>): PerTrajectory<Q>
export function applyKeepValues<Q extends Quantity>(
  table: PerTurn<Q> | PerTrajectory<Q>,
  keep: ReadonlyArray<boolean>,
): PerTurn<Q> | PerTrajectory<Q> {
  checkKeep("applyKeepValues", table.values.length, keep)
  return table.level === "turn"
    ? perTurn(table.quantity, table.values.filter((_, g) => keep[g]))
    : perTrajectory(table.quantity, table.values.filter((_, g) => keep[g]))
}

/** Catalogue entry `none`. */
export const noFilter: SampleFilter<NoOptions> = {
  name: "none",
  summary: "train on every group",
  options: NoOptions,
  defaults: {},
  run: ({ batch }) => keepAllGroups(batch),
}

/** Catalogue entry `zero-variance` (DAPO dynamic sampling). */
export const zeroVarianceFilter: SampleFilter<NoOptions> = {
  name: "zero-variance",
  summary: "DAPO dynamic sampling: drop groups whose trajectories all have the same outcome score",
  options: NoOptions,
  defaults: {},
  run: ({ batch }) => zeroVarianceGroups(batch),
}

/**
 * The built-in sample filters by name.
 *
 * @example
 * const { keep } = sampleFilters["zero-variance"].run({ batch }, {})
 */
export const sampleFilters = {
  none: noFilter,
  "zero-variance": zeroVarianceFilter,
} as const

/** The name of a built-in sample filter. */
export type SampleFilterName = keyof typeof sampleFilters
