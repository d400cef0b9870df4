import { describe, expect, it } from "vitest"
import { applyKeep, applyKeepValues, sampleFilters, zeroVarianceGroups } from "../../packages/core/src/filters.js"
import { perTrajectory, perTurn } from "../../packages/core/src/values.js"
import { batch, thrown } from "./batch-builders.js"

const b = batch(
  [{ correct: true, turns: 1 }, { correct: false, turns: 2 }], // mixed: kept
  [{ correct: true, turns: 1 }, { correct: true, turns: 3 }], // all success: dropped
  [{ correct: false, turns: [{ code: "a" }] }, { correct: false, turns: [{ code: "zzz" }] }], // all fail, different code: dropped
  [{ correct: true, turns: 1 }], // one trajectory: dropped
  [{ correct: false, score: 0.5, turns: 1 }, { correct: false, score: 0.25, turns: 1 }], // graded, different: kept
  [{ correct: false, score: 0.5, turns: 1 }, { correct: false, score: 0.5, turns: 1 }], // graded, equal: dropped
)

describe("zero-variance filter (DAPO dynamic sampling)", () => {
  it("drops the groups whose outcome scores are all equal", () => {
    const result = zeroVarianceGroups(b)
    expect(result.keep).toEqual([true, false, false, false, true, false])
    expect(result.reasons).toEqual([
      null,
      "all 2 trajectories scored 1",
      "all 2 trajectories scored 0",
      "all 1 trajectories scored 1",
      null,
      "all 2 trajectories scored 0.5",
    ])
    expect(sampleFilters["zero-variance"].run({ batch: b }, {})).toEqual(result)
  })

  it("'none' keeps everything", () => {
    expect(sampleFilters.none.run({ batch: b }, {}).keep).toEqual([true, true, true, true, true, true])
    expect(Object.entries(sampleFilters).every(([name, entry]) => entry.name === name)).toBe(true)
  })

  it("rejects an empty batch or group", () => {
    expect(thrown(() => zeroVarianceGroups({ groups: [] })).where).toBe("batch")
    expect(thrown(() => zeroVarianceGroups(batch([{ correct: true, turns: 1 }], []))).where).toBe("group 1")
  })
})

describe("applyKeep", () => {
  it("keeps the flagged groups in order, for the batch and its tables", () => {
    const keep = [true, false, false, false, true, false]
    expect(applyKeep(b, keep).groups.map((g) => g.groupId)).toEqual(["g0", "g4"])
    const rewards = perTrajectory("reward", [[1, 0], [1, 1], [0, 0], [1], [0.5, 0.25], [0.5, 0.5]])
    expect(applyKeepValues(rewards, keep)).toEqual(perTrajectory("reward", [[1, 0], [0.5, 0.25]]))
    const turns = perTurn("advantage", [[[1], [2, 3]], [[4], [5]], [[6], [7]], [[8]], [[9], [10]], [[11], [12]]])
    expect(applyKeepValues(turns, keep).values).toEqual([[[1], [2, 3]], [[9], [10]]])
  })

  it("rejects a keep list of the wrong length", () => {
    expect(thrown(() => applyKeep(b, [true])).message).toMatch(/1 flags for 6 groups/)
    expect(thrown(() => applyKeepValues(perTrajectory("reward", [[1]]), [true, false])).fn).toBe("applyKeepValues")
  })
})
