import { describe, expect, it } from "vitest"
import { toTrainingSequence, toTrainingSequences } from "../../packages/core/src/tokens.js"
import { perTurn } from "../../packages/core/src/values.js"
import { batch, thrown, trajectory } from "./batch-builders.js"

const twoTurns = trajectory({
  correct: true,
  promptTokens: [1, 2],
  turns: [
    { policyTokens: [10, 11], logprobs: [-0.1, -0.2], feedbackTokens: [20] },
    { policyTokens: [12], logprobs: [-0.3], feedbackTokens: [] },
  ],
})

describe("toTrainingSequence", () => {
  it("lays out prompt, then per turn policy and feedback tokens, with the turn's advantage on its policy tokens only", () => {
    const seq = toTrainingSequence(twoTurns, [0.5, -0.2])
    expect(seq.tokens).toEqual([1, 2, 10, 11, 20, 12])
    expect(seq.mask).toEqual([0, 0, 1, 1, 0, 1])
    expect(seq.oldLogprobs).toEqual([0, 0, -0.1, -0.2, 0, -0.3])
    expect(seq.advantages).toEqual([0, 0, 0.5, 0.5, 0, -0.2])
    expect(seq.turnIndex).toEqual([-1, -1, 0, 0, -1, 1])
  })

  it("rejects mismatched logprobs, wrong advantage counts, NaN advantages and an empty prompt", () => {
    const broken = trajectory({ correct: true, turns: [{ policyTokens: [10], logprobs: [-0.1] }, { policyTokens: [10, 11], logprobs: [-0.1] }] })
    const error = thrown(() => toTrainingSequence(broken, [1, 1]))
    expect(error.where).toBe("trajectory, turn 1")
    expect(error.message).toMatch(/1 logprobs for 2 policy tokens/)
    expect(thrown(() => toTrainingSequence(twoTurns, [1])).message).toMatch(/1 advantages for 2 turns/)
    expect(thrown(() => toTrainingSequence(twoTurns, [1, Number.NaN])).where).toBe("trajectory, turn 1")
    expect(thrown(() => toTrainingSequence(trajectory({ correct: true, promptTokens: [], turns: 1 }), [1])).message).toMatch(/prompt has no tokens/)
  })
})

describe("toTrainingSequences", () => {
  it("flattens the batch in group order", () => {
    const b = batch(
      [{ correct: true, turns: [{ policyTokens: [30] }] }, { correct: false, turns: [{ policyTokens: [31] }, { policyTokens: [32] }] }],
      [{ correct: true, turns: [{ policyTokens: [33] }] }],
    )
    const seqs = toTrainingSequences(b, perTurn("advantage", [[[1], [-1, -2]], [[3]]]))
    expect(seqs.map((s) => s.tokens)).toEqual([[1, 2, 30], [1, 2, 31, 32], [1, 2, 33]])
    expect(seqs.map((s) => s.advantages)).toEqual([[0, 0, 1], [0, 0, -1, -2], [0, 0, 3]])
  })

  it("names the trajectory of a bad turn and checks the table's shape", () => {
    const b = batch([{ correct: true, turns: 1 }], [{ correct: true, turns: 1 }, { correct: true, turns: [{ policyTokens: [5, 6], logprobs: [-1] }] }])
    expect(thrown(() => toTrainingSequences(b, perTurn("advantage", [[[1]], [[1], [1]]]))).where).toBe("group 1, trajectory 1, turn 0")
    expect(thrown(() => toTrainingSequences(b, perTurn("advantage", [[[1]], [[1], [1, 2]]]))).where).toBe("group 1, trajectory 1")
    expect(thrown(() => toTrainingSequences({ groups: [] }, perTurn("advantage", []))).where).toBe("batch")
  })
})
