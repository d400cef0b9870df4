import { Schema } from "effect"
import { describe, expect, it } from "vitest"
import {
  advantageEstimators,
  broadcastToTurns,
  drGrpoAdvantages,
  grpoAdvantages,
  normalizedReturnAdvantages,
  reinforcePlusPlusAdvantages,
  rlooAdvantages,
} from "../../packages/core/src/advantages.js"
import { normalizedReturnsDefaults, grpoDefaults, reinforcePlusPlusDefaults } from "../../packages/core/src/advantages.js"
import { perTrajectory, perTurn } from "../../packages/core/src/values.js"
import { batch, expectClose, thrown } from "./batch-builders.js"

const tol = 1e-5

describe("normalized-returns (GTPO)", () => {
  // group 0: trajectories of 3 and 1 turns; group 1: two of 2 turns.
  const shape = batch(
    [{ correct: true, turns: 3 }, { correct: true, turns: 1 }],
    [{ correct: false, turns: 2 }, { correct: true, turns: 2 }],
  )
  const returns = perTurn("return", [[[1, 2, 3], [6]], [[0, 4], [2, 2]]])
  const exact = { eps: 0 }

  it("scope group: all turn returns of the group", () => {
    // g0: S = {1,2,3,6}, mean 3, std sqrt(3.5); g1: S = {0,4,2,2}, mean 2, std sqrt(2)
    const s0 = Math.sqrt(3.5)
    const s1 = Math.sqrt(2)
    expectClose(normalizedReturnAdvantages(shape, returns, { ...normalizedReturnsDefaults, ...exact, scope: "group" }).values, [
      [[-2 / s0, -1 / s0, 0], [3 / s0]],
      [[-2 / s1, 2 / s1], [0, 0]],
    ], tol)
  })

  it("scope turn-index: returns of turn j across the trajectories that reached it", () => {
    // g0 turn 0: {1, 6} mean 3.5 std 2.5; turns 1 and 2 have one return each -> 0
    // g1 turn 0: {0, 2} mean 1 std 1; turn 1: {4, 2} mean 3 std 1
    expectClose(normalizedReturnAdvantages(shape, returns, { ...normalizedReturnsDefaults, ...exact, scope: "turn-index" }).values, [
      [[-1, 0, 0], [1]],
      [[-1, 1], [1, -1]],
    ], tol)
  })

  it("scope batch: every turn return of the batch", () => {
    // S = {1,2,3,6,0,4,2,2}: mean 2.5, population std sqrt(3)
    const s = Math.sqrt(3)
    expectClose(normalizedReturnAdvantages(shape, returns, { ...normalizedReturnsDefaults, ...exact, scope: "batch" }).values, [
      [[-1.5 / s, -0.5 / s, 0.5 / s], [3.5 / s]],
      [[-2.5 / s, 1.5 / s], [-0.5 / s, -0.5 / s]],
    ], tol)
  })

  it("subtracts the mean only when normalizeStd is false", () => {
    const meanOnly = { normalizeStd: false, eps: 1e-6 }
    expectClose(normalizedReturnAdvantages(shape, returns, { ...normalizedReturnsDefaults, ...meanOnly, scope: "group" }).values, [[[-2, -1, 0], [3]], [
      [-2, 2],
      [0, 0],
    ]])
    expectClose(normalizedReturnAdvantages(shape, returns, { ...normalizedReturnsDefaults, ...meanOnly, scope: "turn-index" }).values, [[[-2.5, 0, 0], [2.5]], [
      [-1, 1],
      [1, -1],
    ]])
    expectClose(normalizedReturnAdvantages(shape, returns, { ...normalizedReturnsDefaults, ...meanOnly, scope: "batch" }).values, [
      [[-1.5, -0.5, 0.5], [3.5]],
      [[-2.5, 1.5], [-0.5, -0.5]],
    ])
  })

  it("adds eps to the std and defaults to scope group", () => {
    const s0 = Math.sqrt(3.5) + 0.5
    expectClose(normalizedReturnAdvantages(shape, returns, { ...normalizedReturnsDefaults, eps: 0.5 }).values[0], [[-2 / s0, -1 / s0, 0], [3 / s0]])
    const entry = advantageEstimators["normalized-returns"]
    expect(entry.defaults).toEqual({ scope: "group", normalizeStd: true, eps: 1e-6 })
    expect([entry.inputLevel, entry.outputLevel]).toEqual(["turn", "turn"])
    expect(() => Schema.decodeUnknownSync(entry.options)({ ...entry.defaults, scope: "prompt" })).toThrow()
  })

  it("gives zero advantage to a group whose returns are all equal (all-fail, all-success)", () => {
    const flat = batch([{ correct: false, turns: 2 }, { correct: false, turns: 1 }], [{ correct: true, turns: 1 }, { correct: true, turns: 1 }])
    const equal = perTurn("return", [[[0, 0], [0]], [[1], [1]]])
    for (const scope of ["group", "turn-index"] as const) {
      expectClose(normalizedReturnAdvantages(flat, equal, { ...normalizedReturnsDefaults, scope }).values, [[[0, 0], [0]], [[0], [0]]])
      expectClose(normalizedReturnAdvantages(flat, equal, { ...normalizedReturnsDefaults, scope, eps: 0 }).values, [[[0, 0], [0]], [[0], [0]]])
    }
  })

  it("rejects bad options and bad returns, naming the place", () => {
    // options are checked once, by the entry's Schema, where a recipe is decoded
    expect(() => Schema.decodeUnknownSync(advantageEstimators["normalized-returns"].options)({ ...normalizedReturnsDefaults, eps: -1 })).toThrow(/eps/)
    const nan = perTurn("return", [[[1, 2, 3], [6]], [[0, Number.NaN], [2, 2]]])
    expect(thrown(() => normalizedReturnAdvantages(shape, nan)).where).toBe("group 1, trajectory 0, turn 1")
    const missing = perTurn("return", [[[1, 2, 3], [6]], [[0, 4]]])
    expect(thrown(() => normalizedReturnAdvantages(shape, missing)).message).toMatch(/1 trajectories, the group has 2 \(at group 1\)/)
  })
})

describe("trajectory-level estimators", () => {
  // a mixed group, an all-success group, and a graded group
  const shape = batch(
    [{ correct: true, turns: 1 }, { correct: false, turns: 2 }, { correct: false, turns: 1 }, { correct: true, turns: 3 }],
    [{ correct: true, turns: 1 }, { correct: true, turns: 1 }],
    [{ correct: false, turns: 1 }, { correct: false, turns: 1 }, { correct: true, turns: 1 }],
  )
  const returns = perTrajectory("return", [[1, 0, 0, 1], [1, 1], [0.5, 0, 1]])

  it("grpo: z-score within the group (population std)", () => {
    const s2 = Math.sqrt(1 / 6)
    expectClose(grpoAdvantages(shape, returns, { ...grpoDefaults, eps: 0 }).values, [[1, -1, -1, 1], [0, 0], [0, -0.5 / s2, 0.5 / s2]], tol)
    expectClose(grpoAdvantages(shape, returns).values[0], [0.5 / 0.500001, -0.5 / 0.500001, -0.5 / 0.500001, 0.5 / 0.500001], 1e-9)
    expectClose(grpoAdvantages(shape, returns, { ...grpoDefaults, normalizeStd: false }).values, drGrpoAdvantages(shape, returns).values)
  })

  it("dr-grpo: return minus the group mean", () => {
    expectClose(drGrpoAdvantages(shape, returns).values, [[0.5, -0.5, -0.5, 0.5], [0, 0], [0, -0.5, 0.5]])
    expectClose(advantageEstimators["dr-grpo"].run({ batch: shape, returns }, {}).values, drGrpoAdvantages(shape, returns).values)
  })

  it("rloo: return minus the mean of the other G - 1; 0 for a group of one", () => {
    expectClose(rlooAdvantages(shape, returns).values, [[2 / 3, -2 / 3, -2 / 3, 2 / 3], [0, 0], [0, -0.75, 0.75]])
    const single = batch([{ correct: true, turns: 1 }])
    expectClose(rlooAdvantages(single, perTrajectory("return", [[0.7]])).values, [[0]])
  })

  it("reinforce++: whitened over the batch, optionally after subtracting group means", () => {
    const two = batch([{ correct: true, turns: 1 }, { correct: false, turns: 1 }], [{ correct: true, turns: 1 }, { correct: true, turns: 1 }])
    const r = perTrajectory("return", [[1, 0], [1, 1]])
    // batch {1, 0, 1, 1}: mean 0.75, std sqrt(0.1875)
    const s = Math.sqrt(0.1875)
    expectClose(reinforcePlusPlusAdvantages(two, r, { ...reinforcePlusPlusDefaults, eps: 0 }).values, [[0.25 / s, -0.75 / s], [0.25 / s, 0.25 / s]], tol)
    // group-centred {0.5, -0.5, 0, 0}: mean 0, std sqrt(0.125)
    const c = Math.sqrt(0.125)
    expectClose(
      reinforcePlusPlusAdvantages(two, r, { ...reinforcePlusPlusDefaults, eps: 0, subtractGroupMean: true }).values,
      [[0.5 / c, -0.5 / c], [0, 0]],
      tol,
    )
    expect(advantageEstimators["reinforce++"].defaults).toEqual({ subtractGroupMean: false, eps: 1e-6 })
  })

  it("reject NaN returns, empty groups and wrong shapes, naming the place", () => {
    const nan = perTrajectory("return", [[1, 0, Number.NaN, 1], [1, 1], [0.5, 0, 1]])
    for (const f of [grpoAdvantages, drGrpoAdvantages, rlooAdvantages, reinforcePlusPlusAdvantages]) {
      const error = thrown(() => f(shape, nan))
      expect(error.where).toBe("group 0, trajectory 2")
      expect(error.message).toMatch(/return is NaN/)
    }
    const emptyGroup = batch([{ correct: true, turns: 1 }], [])
    expect(thrown(() => grpoAdvantages(emptyGroup, perTrajectory("return", [[1], []]))).message).toMatch(/the group is empty \(at group 1\)/)
    expect(thrown(() => rlooAdvantages(shape, perTrajectory("return", [[1, 0, 0, 1], [1, 1]]))).where).toBe("batch")
  })
})

describe("broadcastToTurns", () => {
  const shape = batch([{ correct: true, turns: 3 }, { correct: false, turns: 1 }])

  it("gives a trajectory's advantage to each of its turns", () => {
    const turns = broadcastToTurns(shape, perTrajectory("advantage", [[0.5, -0.5]]))
    expect(turns.level).toBe("turn")
    expectClose(turns.values, [[[0.5, 0.5, 0.5], [-0.5]]])
  })

  it("passes per-turn advantages through after checking them", () => {
    const already = perTurn("advantage", [[[1, 2, 3], [4]]])
    expect(broadcastToTurns(shape, already)).toBe(already)
    expect(thrown(() => broadcastToTurns(shape, perTurn("advantage", [[[1, 2], [4]]]))).where).toBe("group 0, trajectory 0")
    expect(thrown(() => broadcastToTurns(shape, perTrajectory("advantage", [[0.5]]))).where).toBe("group 0")
  })
})
