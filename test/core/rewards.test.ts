import { Schema } from "effect"
import { describe, expect, it } from "vitest"
import {
  customTrajectoryReward,
  customTurnReward,
  outcomeOnLastTurnRewards,
  rewardAssigners,
  trajectoryOutcomeRewards,
  turnLevelRewards,
} from "../../packages/core/src/rewards.js"
import { trajectoryOutcomeDefaults, turnLevelDefaults } from "../../packages/core/src/rewards.js"
import { batch, expectClose, thrown } from "./batch-builders.js"

// group 0: uneven lengths, every format case; group 1: a partial score.
const mixed = batch(
  [
    { correct: true, turns: 3 }, // clean success
    { correct: false, turns: [{}, { malformed: "unterminated" }] }, // malformed last turn
    { correct: true, turns: [{ code: null }] }, // single turn, right answer, never called the tool
    { correct: false, turns: [{ code: null, malformed: "syntax-error" }, { code: null }] }, // both penalties on turn 0
  ],
  [{ correct: false, score: 0.5, turns: 2 }],
)

describe("turn-level rewards (GTPO)", () => {
  it("puts accuracy on the last turn and format penalties on their turns", () => {
    expectClose(turnLevelRewards(mixed).values, [
      [[0, 0, 1], [0, -0.1], [0.9], [-0.1, 0]],
      [[0, 0]],
    ])
  })

  it("adds the two penalties on turn 0 when uncapped", () => {
    expectClose(turnLevelRewards(mixed, { ...turnLevelDefaults, capFormatPerTurn: false }).values[0]![3], [-0.2, 0])
  })

  it("skips the no-tool penalty when asked", () => {
    const values = turnLevelRewards(mixed, { ...turnLevelDefaults, penalizeNoToolCall: false }).values
    expectClose(values[0]![2], [1])
    expectClose(values[0]![3], [-0.1, 0])
  })

  it("uses the graded score with accuracy 'score' and scales with formatPenalty", () => {
    expectClose(turnLevelRewards(mixed, { ...turnLevelDefaults, accuracy: "score", formatPenalty: 0.25 }).values, [
      [[0, 0, 1], [0, -0.25], [0.75], [-0.25, 0]],
      [[0, 0.5]],
    ])
  })

  it("is the catalogue entry 'turn-level' with GTPO's defaults", () => {
    const entry = rewardAssigners["turn-level"]
    expect(entry.name).toBe("turn-level")
    expect(entry.level).toBe("turn")
    expect(entry.defaults).toEqual({ accuracy: "binary", formatPenalty: 0.1, penalizeNoToolCall: true, capFormatPerTurn: true })
    expectClose(entry.run({ batch: mixed }, entry.defaults).values, turnLevelRewards(mixed).values)
    expect(Schema.decodeUnknownSync(entry.options)(entry.defaults)).toEqual(entry.defaults)
    expect(() => Schema.decodeUnknownSync(entry.options)({ ...entry.defaults, formatPenalty: -0.1 })).toThrow()
  })
})

describe("trajectory-outcome rewards (GRPO min rule)", () => {
  it("gives accuracy when well formed and -formatPenalty otherwise, whatever the answer", () => {
    expectClose(trajectoryOutcomeRewards(mixed).values, [[1, -0.1, -0.1, -0.1], [0]])
  })

  it("counts a trajectory without tool calls as well formed when penalizeNoToolCall is off", () => {
    expectClose(trajectoryOutcomeRewards(mixed, { ...trajectoryOutcomeDefaults, penalizeNoToolCall: false }).values, [[1, -0.1, 1, -0.1], [0]])
  })

  it("uses the graded score", () => {
    expectClose(trajectoryOutcomeRewards(mixed, { ...trajectoryOutcomeDefaults, accuracy: "score" }).values[1], [0.5])
  })

  it("places the outcome on the last turn for outcome-on-last-turn", () => {
    expectClose(outcomeOnLastTurnRewards(mixed).values, [
      [[0, 0, 1], [0, -0.1], [-0.1], [0, -0.1]],
      [[0, 0]],
    ])
    const entry = rewardAssigners["outcome-on-last-turn"]
    expect(entry.level).toBe("turn")
    expectClose(entry.run({ batch: mixed }, entry.defaults).values, outcomeOnLastTurnRewards(mixed).values)
    expect(rewardAssigners["trajectory-outcome"].level).toBe("trajectory")
  })
})

describe("custom reward entries", () => {
  it("wraps a per-turn function and checks its output", () => {
    const perToken = customTurnReward("per-token", "-0.01 per policy token", (t) => t.turns.map((turn) => -0.01 * turn.policyTokens.length))
    expect(perToken.level).toBe("turn")
    expectClose(perToken.run({ batch: mixed }, {}).values[1], [[-0.01, -0.01]])
    const short = customTurnReward("short", "wrong length", () => [1])
    const error = thrown(() => short.run({ batch: mixed }, {}))
    expect(error.fn).toBe("short")
    expect(error.where).toBe("group 0, trajectory 0")
    const nan = customTurnReward("nan", "NaN on turn 1", (t) => t.turns.map((_, j) => (j === 1 ? Number.NaN : 0)))
    expect(thrown(() => nan.run({ batch: mixed }, {})).where).toBe("group 0, trajectory 0, turn 1")
  })

  it("wraps a per-trajectory function and checks its output", () => {
    const byGroupSize = customTrajectoryReward("group-size", "score over group size", (t, g) => t.outcome.score / g.trajectories.length)
    expectClose(byGroupSize.run({ batch: mixed }, {}).values, [[0.25, 0, 0.25, 0], [0.5]])
    const bad = customTrajectoryReward("bad", "infinite for failures", (t) => (t.outcome.correct ? 1 : Number.POSITIVE_INFINITY))
    expect(thrown(() => bad.run({ batch: mixed }, {})).message).toMatch(/bad: .*Infinity.*group 0, trajectory 1/)
  })
})

describe("bad input", () => {
  it("rejects empty batches, empty groups, turnless trajectories and negative penalties", () => {
    expect(thrown(() => turnLevelRewards({ groups: [] })).where).toBe("batch")
    expect(thrown(() => trajectoryOutcomeRewards(batch([{ correct: true, turns: 1 }], []))).where).toBe("group 1")
    expect(thrown(() => outcomeOnLastTurnRewards(batch([{ correct: true, turns: 1 }, { correct: false, turns: 0 }]))).where).toBe(
      "group 0, trajectory 1",
    )
    // options are checked once, by the entry's Schema, where a recipe is decoded
    expect(() => Schema.decodeUnknownSync(rewardAssigners["turn-level"].options)({ ...turnLevelDefaults, formatPenalty: -0.1 })).toThrow(/formatPenalty/)
    expect(() => Schema.decodeUnknownSync(rewardAssigners["trajectory-outcome"].options)({ ...trajectoryOutcomeDefaults, accuracy: "graded" })).toThrow(
      /accuracy/,
    )
  })
})

describe("test-based rewards for program synthesis", () => {
  // Pass fractions 1, 0.6 and 0.2, one malformed turn, one trajectory without a tool call.
  const graded = batch([
    { correct: true, score: 1, turns: 2 },
    { correct: false, score: 0.6, turns: [{ malformed: "unterminated" }, {}] },
    { correct: false, score: 0.2, turns: [{ code: null }] },
  ])

  it("tests-passed puts the pass fraction on the last turn, with GTPO's format penalties", () => {
    const assigner = rewardAssigners["tests-passed"]
    expect(assigner.level).toBe("turn")
    expectClose(assigner.run({ batch: graded }, assigner.defaults).values, [[[0, 1], [-0.1, 0.6], [0.1]]])
  })

  it("allPass rewards only a submission that passes every test", () => {
    const assigner = rewardAssigners["tests-passed"]
    expectClose(assigner.run({ batch: graded }, { ...assigner.defaults, allPass: true }).values, [[[0, 1], [-0.1, 0], [-0.1]]])
  })

  it("tests-passed-outcome gives one reward per trajectory by the min rule", () => {
    const assigner = rewardAssigners["tests-passed-outcome"]
    expect(assigner.level).toBe("trajectory")
    expectClose(assigner.run({ batch: graded }, assigner.defaults).values, [[1, -0.1, -0.1]])
    expectClose(assigner.run({ batch: graded }, { ...assigner.defaults, penalizeNoToolCall: false }).values, [[1, -0.1, 0.2]])
  })
})
