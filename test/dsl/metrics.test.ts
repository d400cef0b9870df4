import { describe, expect, it } from "vitest"
import type { Trajectory, Turn } from "@turnwise/core"
import { batchMetrics } from "../../packages/dsl/src/Metrics.js"

const turn = (over: Partial<Turn>): Turn => ({
  policyTokens: [1, 2],
  logprobs: [-0.1, -0.2],
  text: "",
  toolCall: null,
  malformed: null,
  feedbackTokens: [],
  feedbackText: "",
  answer: null,
  ...over,
})
const call = (status: "ok" | "error"): Turn => turn({ toolCall: { language: "js", code: "1+1" }, toolStatus: status })
const answer = turn({ answer: "2" })

const trajectory = (turns: ReadonlyArray<Turn>, correct: boolean): Trajectory => ({
  promptId: "p",
  groupId: "g",
  promptTokens: [0],
  turns,
  outcome: { correct, score: correct ? 1 : 0 },
  finishReason: "answer",
})

describe("batchMetrics", () => {
  // Four trajectories: an answer with no call, one call then the answer, a failed call, a fix and
  // the answer, and a malformed call then the answer.
  const batch = {
    groups: [{
      groupId: "g",
      promptId: "p",
      trajectories: [
        trajectory([answer], false),
        trajectory([call("ok"), answer], true),
        trajectory([call("error"), call("ok"), answer], true),
        trajectory([turn({ malformed: "unterminated" }), answer], false),
      ],
    }],
  }
  const m = batchMetrics(batch)

  it("counts the trajectories that call the tool at all, apart from how often they call it", () => {
    expect(m["tool/use_rate"]).toBe(3 / 4)
    expect(m["tool/calls_per_trajectory"]).toBe(4 / 4)
  })

  it("counts outcomes, turns, failed calls and policy tokens", () => {
    expect(m["outcome/accuracy"]).toBe(2 / 4)
    expect(m["turns/mean"]).toBe((1 + 2 + 3 + 2) / 4)
    expect(m["tool/error_rate"]).toBe(2 / 4)
    expect(m["tokens/policy"]).toBe(8 * 2)
    expect(m["finish/answer_rate"]).toBe(1)
  })
})
