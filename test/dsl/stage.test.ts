import { describe, expect, it } from "vitest"
import { Effect } from "effect"
import { perTurn, returnEstimators } from "@turnwise/core"
import type { Batch } from "@turnwise/core"
import { runStage, StageError, use } from "@turnwise/dsl"

const turn = { policyTokens: [1], logprobs: [-0.1], text: "x", toolCall: null, malformed: null, feedbackTokens: [], feedbackText: "", answer: null }
const batch: Batch = {
  groups: [{
    groupId: "g",
    promptId: "p",
    trajectories: [{ promptId: "p", groupId: "g", promptTokens: [0], turns: [turn, turn], outcome: { correct: false, score: 0 }, finishReason: "answer" }],
  }],
}

describe("runStage", () => {
  it("runs the entry with its fixed options", async () => {
    const stage = use(returnEstimators.discounted, { gamma: 0.5 })
    const returns = await Effect.runPromise(runStage(stage, { batch, rewards: perTurn("reward", [[[1, 2]]]) }))
    expect(returns.values).toEqual([[[2, 2]]])
  })

  it("turns bad input into a typed StageError that names the stage and the place", async () => {
    const failure = await Effect.runPromise(Effect.flip(runStage(use(returnEstimators.discounted), { batch, rewards: perTurn("reward", [[[1, Number.NaN]]]) })))
    expect(failure).toBeInstanceOf(StageError)
    expect(failure.stage).toBe("discounted")
    expect(failure.message).toMatch(/group 0, trajectory 0, turn 1/)
    expect(failure.message).toMatch(/NaN/)
  })
})
