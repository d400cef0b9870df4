/**
 * Advantage estimators: from returns to the advantages the policy loss weighs tokens by.
 *
 * - `normalized-returns` (GTPO, per turn -> per turn): A_{i,j} = (R_{i,j} - mean(S)) /
 *   (std(S) + eps) where the set S is chosen by `scope`:
 *     `group` (default): every turn return of every trajectory of the group;
 *     `turn-index`: the returns of turn j across the group's trajectories that have a
 *       turn j (biased when the policy controls how many turns it takes);
 *     `batch`: every turn return of the batch.
 *   `normalizeStd: false` subtracts the mean only (the Dr.GRPO-style variant).
 * - `grpo`: z-score of the trajectory return within its group.
 * - `dr-grpo`: return minus the group mean (no std: Dr.GRPO argues the division
 *   biases updates towards groups that are almost all right or all wrong).
 * - `rloo`: return minus the mean of the other G - 1 returns of the group (leave one
 *   out), 0 when the group has one trajectory.
 * - `reinforce++`: returns whitened over the whole batch; `subtractGroupMean` first
 *   subtracts each group's mean (REINFORCE++-baseline).
 *
 * {@link broadcastToTurns} gives a trajectory advantage to each of its turns, so any
 * estimator feeds the per-turn token layout of the trainer.
 *
 * Every std is the population std (see stats.ts).
 *
 * @category constructors
 */
import { Schema } from "effect"
import type { AdvantageEstimator } from "./component.js"
import type { Batch } from "./model.js"
import { defaultsOf, setting } from "./setting.js"
import { mean, NoOptions, standardize } from "./stats.js"
import { assertNonEmptyBatch, assertTrajectoryShape, assertTurnShape, perTrajectory, perTurn, type PerTrajectory, type PerTurn, type Values } from "./values.js"

const Eps = Schema.Finite.check(Schema.isGreaterThanOrEqualTo(0))

/** Which returns a normalised return is compared with. */
export const NormalizationScope = Schema.Literals(["group", "turn-index", "batch"])
export type NormalizationScope = typeof NormalizationScope.Type

/** Options of the `normalized-returns` estimator. */
export const NormalizedReturnsOptions = Schema.Struct({
  scope: setting(NormalizationScope, "group", "The set S of returns whose mean (and std) normalise each return: group, turn-index or batch"),
  normalizeStd: setting(Schema.Boolean, true, "Divide by std(S) + eps; false subtracts the mean only"),
  eps: setting(Eps, 1e-6, "Added to the std, >= 0"),
})
export type NormalizedReturnsOptions = typeof NormalizedReturnsOptions.Type

/** GTPO's defaults: normalise over the group, divide by std + 1e-6. */
export const normalizedReturnsDefaults: NormalizedReturnsOptions = defaultsOf(NormalizedReturnsOptions)

/**
 * GTPO's advantage: each turn return normalised over the set chosen by `scope`.
 *
 * @example
 * normalizedReturnAdvantages(batch, perTurn("return", [[[1, 1], [0]]])).values
 * // group scope: S = {1, 1, 0}, mean 2/3, std 0.4714 -> [[[0.7071, 0.7071], [-1.4142]]]
 */
export const normalizedReturnAdvantages = (
  batch: Batch,
  returns: PerTurn<"return">,
  options: NormalizedReturnsOptions = normalizedReturnsDefaults,
): PerTurn<"advantage"> => {
  const fn = "normalizedReturnAdvantages"
  const o = options
  assertNonEmptyBatch(fn, batch)
  assertTurnShape(fn, batch, returns)
  const values = returns.values
  switch (o.scope) {
    case "batch": {
      const z = standardize(values.flat(2), o)
      return perTurn("advantage", values.map((rows) => rows.map((row) => row.map(z))))
    }
    case "group":
      return perTurn(
        "advantage",
        values.map((rows) => {
          const z = standardize(rows.flat(), o)
          return rows.map((row) => row.map(z))
        }),
      )
    case "turn-index":
      return perTurn(
        "advantage",
        values.map((rows) => {
          const longest = Math.max(...rows.map((row) => row.length))
          // zs[j] normalises over the returns of turn j of the trajectories that reached it.
          const zs = Array.from({ length: longest }, (_, j) => standardize(rows.flatMap((row) => (j < row.length ? [row[j]!] : [])), o))
          return rows.map((row) => row.map((r, j) => zs[j]!(r)))
        }),
      )
  }
}

/** Options of the `grpo` estimator. */
export const GrpoOptions = Schema.Struct({
  eps: setting(Eps, 1e-6, "Added to the group std, >= 0"),
  normalizeStd: setting(Schema.Boolean, true, "Divide by std + eps; false gives Dr.GRPO"),
})
export type GrpoOptions = typeof GrpoOptions.Type

/** GRPO's defaults. */
export const grpoDefaults: GrpoOptions = defaultsOf(GrpoOptions)

const checkTrajectoryReturns = (fn: string, batch: Batch, returns: PerTrajectory<"return">): void => {
  assertNonEmptyBatch(fn, batch)
  assertTrajectoryShape(fn, batch, returns)
}

/**
 * GRPO's group-relative advantage: (r_i - mean_group) / (std_group + eps).
 *
 * @example
 * grpoAdvantages(batch, perTrajectory("return", [[1, 0]]), { eps: 0 }).values // [[1, -1]]
 */
export const grpoAdvantages = (
  batch: Batch,
  returns: PerTrajectory<"return">,
  options: GrpoOptions = grpoDefaults,
): PerTrajectory<"advantage"> => {
  const fn = "grpoAdvantages"
  const o = options
  checkTrajectoryReturns(fn, batch, returns)
  return perTrajectory("advantage", returns.values.map((row) => row.map(standardize(row, o))))
}

/**
 * Dr.GRPO's advantage: r_i - mean_group, no division by the std.
 *
 * @example
 * drGrpoAdvantages(batch, perTrajectory("return", [[1, 0, 0, 0]])).values // [[0.75, -0.25, -0.25, -0.25]]
 */
export const drGrpoAdvantages = (batch: Batch, returns: PerTrajectory<"return">): PerTrajectory<"advantage"> => {
  checkTrajectoryReturns("drGrpoAdvantages", batch, returns)
  return perTrajectory("advantage", returns.values.map((row) => row.map(standardize(row, { normalizeStd: false, eps: 0 }))))
}

/**
 * RLOO's leave-one-out advantage: r_i - mean of the group's other G - 1 returns
 * (= G / (G - 1) times r_i - mean_group); 0 when G = 1.
 *
 * @example
 * rlooAdvantages(batch, perTrajectory("return", [[1, 0, 0]])).values // [[1, -0.5, -0.5]]
 */
export const rlooAdvantages = (batch: Batch, returns: PerTrajectory<"return">): PerTrajectory<"advantage"> => {
  checkTrajectoryReturns("rlooAdvantages", batch, returns)
  return perTrajectory(
    "advantage",
    returns.values.map((row) => {
      const n = row.length
      if (n === 1) return [0]
      const total = row.reduce((a, b) => a + b, 0)
      return row.map((r) => r - (total - r) / (n - 1))
    }),
  )
}

/** Options of the `reinforce++` estimator. */
export const ReinforcePlusPlusOptions = Schema.Struct({
  subtractGroupMean: setting(Schema.Boolean, false, "Subtract each group's mean before whitening (REINFORCE++-baseline)"),
  eps: setting(Eps, 1e-6, "Added to the batch std, >= 0"),
})
export type ReinforcePlusPlusOptions = typeof ReinforcePlusPlusOptions.Type

/** Plain REINFORCE++: no group baseline. */
export const reinforcePlusPlusDefaults: ReinforcePlusPlusOptions = defaultsOf(ReinforcePlusPlusOptions)

/**
 * REINFORCE++: trajectory returns whitened over the whole batch,
 * (r - mean_batch) / (std_batch + eps), optionally after subtracting group means.
 *
 * @example
 * reinforcePlusPlusAdvantages(batch, perTrajectory("return", [[1, 0], [1, 1]]), { eps: 0 }).values
 * // mean 0.75, std 0.433 -> [[0.577, -1.732], [0.577, 0.577]]
 */
export const reinforcePlusPlusAdvantages = (
  batch: Batch,
  returns: PerTrajectory<"return">,
  options: ReinforcePlusPlusOptions = reinforcePlusPlusDefaults,
): PerTrajectory<"advantage"> => {
  const fn = "reinforcePlusPlusAdvantages"
  const o = options
  checkTrajectoryReturns(fn, batch, returns)
  const centred = o.subtractGroupMean
    ? returns.values.map((row) => {
      const m = mean(row)
      return row.map((r) => r - m)
    })
    : returns.values
  const z = standardize(centred.flat(), { normalizeStd: true, eps: o.eps })
  return perTrajectory("advantage", centred.map((row) => row.map(z)))
}

/**
 * Give each trajectory's advantage to every one of its turns; a per-turn table is
 * checked against the batch and returned as it is.
 *
 * @example
 * broadcastToTurns(batch, perTrajectory("advantage", [[0.5, -0.5]])).values // [[[0.5, 0.5, 0.5], [-0.5]]]
 */
export const broadcastToTurns = (batch: Batch, advantages: Values<"advantage">): PerTurn<"advantage"> => {
  const fn = "broadcastToTurns"
  assertNonEmptyBatch(fn, batch)
  if (advantages.level === "turn") {
    assertTurnShape(fn, batch, advantages)
    return advantages
  }
  assertTrajectoryShape(fn, batch, advantages)
  return perTurn(
    "advantage",
    batch.groups.map((group, g) => group.trajectories.map((t, i) => t.turns.map(() => advantages.values[g]![i]!))),
  )
}

/** Catalogue entry `normalized-returns` (GTPO). */
export const normalizedReturnsAdvantage: AdvantageEstimator<"turn", "turn", NormalizedReturnsOptions> = {
  name: "normalized-returns",
  summary: "GTPO: each turn return normalised by the mean (and std) of the returns in its group, turn index or batch",
  inputLevel: "turn",
  outputLevel: "turn",
  options: NormalizedReturnsOptions,
  defaults: normalizedReturnsDefaults,
  run: ({ batch, returns }, options) => normalizedReturnAdvantages(batch, returns, options),
}

/** Catalogue entry `grpo`. */
export const grpoAdvantage: AdvantageEstimator<"trajectory", "trajectory", GrpoOptions> = {
  name: "grpo",
  summary: "GRPO: z-score of the trajectory return within its group",
  inputLevel: "trajectory",
  outputLevel: "trajectory",
  options: GrpoOptions,
  defaults: grpoDefaults,
  run: ({ batch, returns }, options) => grpoAdvantages(batch, returns, options),
}

/** Catalogue entry `dr-grpo`. */
export const drGrpoAdvantage: AdvantageEstimator<"trajectory", "trajectory", NoOptions> = {
  name: "dr-grpo",
  summary: "Dr.GRPO: trajectory return minus its group's mean",
  inputLevel: "trajectory",
  outputLevel: "trajectory",
  options: NoOptions,
  defaults: {},
  run: ({ batch, returns }) => drGrpoAdvantages(batch, returns),
}

/** Catalogue entry `rloo`. */
export const rlooAdvantage: AdvantageEstimator<"trajectory", "trajectory", NoOptions> = {
  name: "rloo",
  summary: "RLOO: trajectory return minus the mean of the group's other returns",
  inputLevel: "trajectory",
  outputLevel: "trajectory",
  options: NoOptions,
  defaults: {},
  run: ({ batch, returns }) => rlooAdvantages(batch, returns),
}

/** Catalogue entry `reinforce++`. */
export const reinforcePlusPlusAdvantage: AdvantageEstimator<"trajectory", "trajectory", ReinforcePlusPlusOptions> = {
  name: "reinforce++",
  summary: "REINFORCE++: trajectory returns whitened over the batch (optionally after subtracting group means)",
  inputLevel: "trajectory",
  outputLevel: "trajectory",
  options: ReinforcePlusPlusOptions,
  defaults: reinforcePlusPlusDefaults,
  run: ({ batch, returns }, options) => reinforcePlusPlusAdvantages(batch, returns, options),
}

/**
 * The built-in advantage estimators by name.
 *
 * @example
 * const estimator = advantageEstimators.grpo
 * broadcastToTurns(batch, estimator.run({ batch, returns }, estimator.defaults))
 */
export const advantageEstimators = {
  "normalized-returns": normalizedReturnsAdvantage,
  grpo: grpoAdvantage,
  "dr-grpo": drGrpoAdvantage,
  rloo: rlooAdvantage,
  "reinforce++": reinforcePlusPlusAdvantage,
} as const

/** The name of a built-in advantage estimator. */
export type AdvantageEstimatorName = keyof typeof advantageEstimators
