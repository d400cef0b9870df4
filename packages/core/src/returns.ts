/**
 * Return estimators: from rewards to the returns that advantages are computed from.
 *
 * - `discounted` (GTPO, per turn -> per turn): R_{i,j} = sum_{m >= j} gamma^(m-j) r_{i,m},
 *   the reward of turn j plus the discounted rewards of the turns after it, so an
 *   early turn is credited with what it led to. gamma = 1 gives plain suffix sums.
 * - `trajectory-sum` (per turn -> per trajectory): the sum of a trajectory's turn
 *   rewards, for feeding turn-level rewards to a trajectory-level estimator.
 * - `identity` (per trajectory -> per trajectory): GRPO's return is its reward.
 *
 * @category constructors
 */
import { Schema } from "effect"
import type { ReturnEstimator } from "./component.js"
import type { Batch } from "./model.js"
import { defaultsOf, setting } from "./setting.js"
import { NoOptions, sum } from "./stats.js"
import { assertNonEmptyBatch, assertTrajectoryShape, assertTurnShape, perTrajectory, perTurn, type PerTrajectory, type PerTurn } from "./values.js"

/** Options of the `discounted` estimator. */
export const DiscountedOptions = Schema.Struct({
  // 0.9, the value third-party implementations attribute to the GTPO paper.
  gamma: setting(
    Schema.Finite.check(Schema.isGreaterThanOrEqualTo(0), Schema.isLessThanOrEqualTo(1)),
    0.9,
    "Discount per turn, in [0, 1]; 1 turns discounting off",
  ),
})
export type DiscountedOptions = typeof DiscountedOptions.Type

/** The `discounted` estimator's defaults. */
export const discountedDefaults: DiscountedOptions = defaultsOf(DiscountedOptions)

/**
 * Discounted per-turn returns, computed backwards: R_j = r_j + gamma * R_{j+1}.
 *
 * @example
 * discountedReturns(batch, perTurn("reward", [[[0, 0, 1]]]), { gamma: 0.9 }).values // [[[0.81, 0.9, 1]]]
 */
export const discountedReturns = (
  batch: Batch,
  rewards: PerTurn<"reward">,
  options: DiscountedOptions = discountedDefaults,
): PerTurn<"return"> => {
  const fn = "discountedReturns"
  const { gamma } = options
  assertNonEmptyBatch(fn, batch)
  assertTurnShape(fn, batch, rewards)
  return perTurn(
    "return",
    rewards.values.map((rows) =>
      rows.map((row) => {
        const returns = new Array<number>(row.length)
        let next = 0
        for (let j = row.length - 1; j >= 0; j--) {
          next = row[j]! + gamma * next
          returns[j] = next
        }
        return returns
      })
    ),
  )
}

/**
 * One return per trajectory: the sum of its turn rewards.
 *
 * @example
 * trajectorySumReturns(batch, perTurn("reward", [[[-0.1, 0, 1]]])).values // [[0.9]]
 */
export const trajectorySumReturns = (batch: Batch, rewards: PerTurn<"reward">): PerTrajectory<"return"> => {
  const fn = "trajectorySumReturns"
  assertNonEmptyBatch(fn, batch)
  assertTurnShape(fn, batch, rewards)
  return perTrajectory("return", rewards.values.map((rows) => rows.map(sum)))
}

/**
 * A trajectory's return is its reward (GRPO).
 *
 * @example
 * identityReturns(batch, perTrajectory("reward", [[1, 0]])).values // [[1, 0]]
 */
export const identityReturns = (batch: Batch, rewards: PerTrajectory<"reward">): PerTrajectory<"return"> => {
  const fn = "identityReturns"
  assertNonEmptyBatch(fn, batch)
  assertTrajectoryShape(fn, batch, rewards)
  return perTrajectory("return", rewards.values)
}

/** Catalogue entry `discounted` (GTPO). */
export const discountedReturnEstimator: ReturnEstimator<"turn", "turn", DiscountedOptions> = {
  name: "discounted",
  summary: "GTPO: per-turn discounted return R_j = sum_{m>=j} gamma^(m-j) r_m",
  inputLevel: "turn",
  outputLevel: "turn",
  options: DiscountedOptions,
  defaults: discountedDefaults,
  run: ({ batch, rewards }, options) => discountedReturns(batch, rewards, options),
}

/** Catalogue entry `trajectory-sum`. */
export const trajectorySumReturnEstimator: ReturnEstimator<"turn", "trajectory", NoOptions> = {
  name: "trajectory-sum",
  summary: "one return per trajectory: the sum of its turn rewards",
  inputLevel: "turn",
  outputLevel: "trajectory",
  options: NoOptions,
  defaults: {},
  run: ({ batch, rewards }) => trajectorySumReturns(batch, rewards),
}

/** Catalogue entry `identity` (GRPO). */
export const identityReturnEstimator: ReturnEstimator<"trajectory", "trajectory", NoOptions> = {
  name: "identity",
  summary: "GRPO: a trajectory's return is its reward",
  inputLevel: "trajectory",
  outputLevel: "trajectory",
  options: NoOptions,
  defaults: {},
  run: ({ batch, rewards }) => identityReturns(batch, rewards),
}

/**
 * The built-in return estimators by name.
 *
 * @example
 * const estimator = returnEstimators.discounted
 * estimator.run({ batch, rewards }, { gamma: 1 })
 */
export const returnEstimators = {
  discounted: discountedReturnEstimator,
  "trajectory-sum": trajectorySumReturnEstimator,
  identity: identityReturnEstimator,
} as const

/** The name of a built-in return estimator. */
export type ReturnEstimatorName = keyof typeof returnEstimators
