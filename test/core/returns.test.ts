import { Schema } from "effect"
import { describe, expect, it } from "vitest"
import { discountedReturns, identityReturns, returnEstimators, trajectorySumReturns } from "../../packages/core/src/returns.js"
import { perTrajectory, perTurn } from "../../packages/core/src/values.js"
import { batch, expectClose, thrown } from "./batch-builders.js"

// Uneven lengths (3, 2, 1 turns) in group 0 and a 4-turn trajectory in group 1.
const shape = batch(
  [{ correct: true, turns: 3 }, { correct: false, turns: 2 }, { correct: true, turns: 1 }],
  [{ correct: true, turns: 4 }],
)
const rewards = perTurn("reward", [[[0, 0, 1], [0, -0.1], [0.9]], [[1, 2, 3, 4]]])

describe("discounted returns", () => {
  it("discounts later rewards by gamma per turn (gamma 0.9)", () => {
    expectClose(discountedReturns(shape, rewards, { gamma: 0.9 }).values, [
      [[0.81, 0.9, 1], [-0.09, -0.1], [0.9]],
      [[8.146, 7.94, 6.6, 4]],
    ])
  })

  it("gives suffix sums with gamma = 1 and the rewards themselves with gamma = 0", () => {
    expectClose(discountedReturns(shape, rewards, { gamma: 1 }).values, [[[1, 1, 1], [-0.1, -0.1], [0.9]], [[10, 9, 7, 4]]])
    expectClose(discountedReturns(shape, rewards, { gamma: 0 }).values, rewards.values)
  })

  it("defaults to gamma 0.9 and is the 'discounted' entry", () => {
    const entry = returnEstimators.discounted
    expect(entry.defaults).toEqual({ gamma: 0.9 })
    expect([entry.inputLevel, entry.outputLevel]).toEqual(["turn", "turn"])
    expectClose(entry.run({ batch: shape, rewards }, entry.defaults).values, discountedReturns(shape, rewards, { gamma: 0.9 }).values)
    expectClose(discountedReturns(shape, rewards).values, discountedReturns(shape, rewards, { gamma: 0.9 }).values)
    expect(() => Schema.decodeUnknownSync(entry.options)({ gamma: 1.1 })).toThrow()
  })

  it("rejects gamma outside [0, 1] (in the entry's Schema), NaN rewards and mismatched shapes, naming the place", () => {
    const entry = returnEstimators.discounted
    expect(() => Schema.decodeUnknownSync(entry.options)({ gamma: 1.5 })).toThrow(/gamma/)
    expect(() => Schema.decodeUnknownSync(entry.options)({ gamma: -0.1 })).toThrow(/gamma/)
    const nan = perTurn("reward", [[[0, 0, 1], [0, Number.NaN], [0.9]], [[1, 2, 3, 4]]])
    const error = thrown(() => discountedReturns(shape, nan))
    expect(error.fn).toBe("discountedReturns")
    expect(error.where).toBe("group 0, trajectory 1, turn 1")
    const short = perTurn("reward", [[[0, 1], [0, -0.1], [0.9]], [[1, 2, 3, 4]]])
    expect(thrown(() => discountedReturns(shape, short)).message).toMatch(/2 turns, the trajectory has 3.*group 0, trajectory 0/)
  })
})

describe("trajectory-sum and identity returns", () => {
  it("sums a trajectory's turn rewards", () => {
    expectClose(trajectorySumReturns(shape, rewards).values, [[1, -0.1, 0.9], [10]])
    const entry = returnEstimators["trajectory-sum"]
    expect([entry.inputLevel, entry.outputLevel]).toEqual(["turn", "trajectory"])
  })

  it("passes trajectory rewards through and checks their shape", () => {
    const r = perTrajectory("reward", [[1, 0, 1], [0.5]])
    const returns = returnEstimators.identity.run({ batch: shape, rewards: r }, {})
    expect(returns.quantity).toBe("return")
    expectClose(returns.values, [[1, 0, 1], [0.5]])
    expect(thrown(() => identityReturns(shape, perTrajectory("reward", [[1, 0, 1]]))).where).toBe("batch")
    expect(thrown(() => identityReturns(shape, perTrajectory("reward", [[1, 0], [0.5]]))).where).toBe("group 0")
    expect(thrown(() => identityReturns(shape, perTrajectory("reward", [[1, 0, 1], [Number.POSITIVE_INFINITY]]))).where).toBe(
      "group 1, trajectory 0",
    )
  })
})
