import { Schema } from "effect"
import { describe, expect, it } from "vitest"
import type { Embedder } from "../../packages/core/src/component.js"
import { charNgramEmbedding, cosine, embeddings, fnv1a } from "../../packages/core/src/embedding.js"
import { codeSimilarityCredits, codeSimilarityTrajectoryShaping, codeSimilarityTurnShaping, shapers } from "../../packages/core/src/shaping.js"
import { codeSimilarityDefaults } from "../../packages/core/src/shaping.js"
import { perTrajectory, perTurn } from "../../packages/core/src/values.js"
import { batch, expectClose, thrown } from "./batch-builders.js"

// A hand-made embedding: cos(b, a) = cos(b, c) = 1/sqrt 2, cos(d, a) = -1, cos(d, c) = 0.
const table: Record<string, ReadonlyArray<number>> = { a: [1, 0], b: [1, 1], c: [0, 1], d: [-1, 0], x: [1, 0], y: [1, 0] }
const recording = () => {
  const calls: Array<ReadonlyArray<string>> = []
  const embed: Embedder = (codes) => {
    calls.push(codes)
    return codes.map((code) => table[code]!)
  }
  return { calls, embed }
}

const shape = batch(
  [
    { correct: true, turns: [{ code: "a" }] },
    { correct: false, turns: [{ code: null }, { code: "b" }] }, // close to both successes
    { correct: false, turns: [{ code: "d" }] }, // opposite of a, orthogonal to c: clipped to 0
    { correct: true, turns: [{ code: "c" }] },
    { correct: false, turns: [{ code: null }] }, // ran no code
  ],
  [
    { correct: false, turns: [{ code: "x" }] }, // a group with no success: untouched
    { correct: false, turns: [{ code: "y" }] },
  ],
  [
    { correct: false, turns: [{ code: "a" }, { code: null }] }, // same code as the success: capped at maxSimilarity
    { correct: true, turns: [{ code: "a" }] },
  ],
)
const half = 0.5 / Math.SQRT2 // alpha * mean(1/sqrt2, 1/sqrt2)

describe("code-similarity credits", () => {
  it("credits failed trajectories by alpha * min(cap, mean positive cosine to the successes)", () => {
    const { calls, embed } = recording()
    expectClose(codeSimilarityCredits(shape, codeSimilarityDefaults, embed).values, [[0, half, 0, 0, 0], [0, 0], [0.45, 0]], 1e-12)
    // one embedder call, only for groups with a success, never for empty code
    expect(calls).toEqual([["a", "b", "d", "c", "a", "a"]])
  })

  it("scales with alpha and maxSimilarity", () => {
    const { embed } = recording()
    expectClose(codeSimilarityCredits(shape, { ...codeSimilarityDefaults, alpha: 0.2, maxSimilarity: 0.5 }, embed).values, [[0, 0.1, 0, 0, 0], [0, 0], [
      0.1,
      0,
    ]], 1e-12)
    expectClose(codeSimilarityCredits(shape, { ...codeSimilarityDefaults, alpha: 0 }, embed).values, [[0, 0, 0, 0, 0], [0, 0], [0, 0]])
  })

  it("rejects alpha or maxSimilarity outside [0, 1) and a misbehaving embedder", () => {
    // options are checked once, by the entry's Schema, where a recipe is decoded
    const decode = Schema.decodeUnknownSync(shapers["code-similarity"].options)
    expect(() => decode({ ...codeSimilarityDefaults, alpha: 1 })).toThrow(/alpha/)
    expect(() => decode({ ...codeSimilarityDefaults, maxSimilarity: 1 })).toThrow(/maxSimilarity/)
    expect(() => decode({ ...codeSimilarityDefaults, alpha: -0.1 })).toThrow(/alpha/)
    expect(() => decode({ ...codeSimilarityDefaults, ngram: 0 })).toThrow(/ngram/)
    expect(thrown(() => codeSimilarityCredits(shape, codeSimilarityDefaults, (codes) => codes.slice(1).map(() => [1]))).message).toMatch(
      /returned 5 vectors for 6/,
    )
    expect(thrown(() => codeSimilarityCredits(shape, codeSimilarityDefaults, (codes) => codes.map(() => [Number.NaN]))).where).toBe("embedder, vector 0")
    expect(thrown(() => codeSimilarityCredits(shape, codeSimilarityDefaults, (codes) => codes.map((_, k) => (k === 2 ? [1, 2, 3] : [1, 0])))).where).toBe(
      "embedder, vector 2",
    )
    const entry = shapers["code-similarity"]
    expect(() => Schema.decodeUnknownSync(entry.options)({ ...entry.defaults, maxSimilarity: 1 })).toThrow()
  })
})

describe("code-similarity shapers", () => {
  it("adds the credit to the last turn (turn level)", () => {
    const { embed } = recording()
    const rewards = perTurn("reward", [[[1], [0, 0], [0], [1], [-0.1]], [[0], [0]], [[-0.1, 0], [1]]])
    const entry = shapers["code-similarity"]
    expect(entry.level).toBe("turn")
    expect(entry.defaults).toEqual({ alpha: 0.5, maxSimilarity: 0.9, embedding: "char-ngram", ngram: 3, dims: 2048 })
    expectClose(entry.run({ batch: shape, rewards, embed }, entry.defaults).values, [
      [[1], [0, half], [0], [1], [-0.1]],
      [[0], [0]],
      [[-0.1, 0.45], [1]],
    ], 1e-12)
  })

  it("adds the credit to the trajectory reward (trajectory level)", () => {
    const { embed } = recording()
    const rewards = perTrajectory("reward", [[1, 0, -0.1, 1, -0.1], [0, 0], [-0.1, 1]])
    const entry = shapers["code-similarity-trajectory"]
    expect(entry.level).toBe("trajectory")
    expectClose(entry.run({ batch: shape, rewards, embed }, entry.defaults).values, [[1, half, -0.1, 1, -0.1], [0, 0], [0.35, 1]], 1e-12)
  })

  it("uses the char-ngram embedding when none is passed: identical code hits the cap, unrelated code earns less", () => {
    const lexical = batch([
      { correct: true, turns: [{ code: "total = sum(range(101))\nprint(total)" }] },
      { correct: false, turns: [{ code: "total  =  sum(range(101))\n\nprint(total)" }] }, // same up to whitespace
      { correct: false, turns: [{ code: "total = sum(range(100))\nprint(total)" }] }, // off by one: cosine > 0.9, capped
      { correct: false, turns: [{ code: "total = 0\nfor i in range(101):\n    total += i\nprint(total)" }] }, // same idea, a loop
      { correct: false, turns: [{ code: "import os" }] }, // no trigram in common
    ])
    const [[success, same, offByOne, loop, unrelated]] = codeSimilarityCredits(lexical).values as [ReadonlyArray<number>]
    expect(success).toBe(0)
    expect(same).toBeCloseTo(0.45, 12)
    expect(offByOne).toBeCloseTo(0.45, 12)
    expect(loop!).toBeGreaterThan(0.3)
    expect(loop!).toBeLessThan(0.4)
    expect(unrelated).toBe(0)
  })

  it("checks the rewards' shape", () => {
    const bad = perTurn("reward", [[[1], [0], [0], [1], [-0.1]], [[0], [0]], [[-0.1, 0], [1]]])
    expect(thrown(() => codeSimilarityTurnShaping(shape, bad)).where).toBe("group 0, trajectory 1")
    expect(thrown(() => codeSimilarityTrajectoryShaping(shape, perTrajectory("reward", [[1], [0, 0], [0, 1]]))).where).toBe("group 0")
  })

  it("'none' entries return the rewards unchanged, at their level", () => {
    const turnRewards = perTurn("reward", [[[1], [0, 0], [0], [1], [-0.1]], [[0], [0]], [[-0.1, 0], [1]]])
    expect(shapers.none.run({ batch: shape, rewards: turnRewards }, {})).toBe(turnRewards)
    expect(shapers.none.level).toBe("turn")
    const trajectoryRewards = perTrajectory("reward", [[1, 0, 0, 1, 0], [0, 0], [0, 1]])
    expect(shapers["none-trajectory"].run({ batch: shape, rewards: trajectoryRewards }, {})).toBe(trajectoryRewards)
    expect(shapers["none-trajectory"].level).toBe("trajectory")
    expect(Object.entries(shapers).every(([name, entry]) => entry.name === name)).toBe(true)
  })
})

describe("char-ngram embedding and cosine", () => {
  it("hashes with 32-bit FNV-1a", () => {
    expect(fnv1a("")).toBe(0x811c9dc5)
    expect(fnv1a("a")).toBe(0xe40c292c)
    expect(fnv1a("foobar")).toBe(0xbf9cf968)
  })

  it("counts each n-gram in its bucket after collapsing whitespace", () => {
    const embed = charNgramEmbedding({ n: 2, dims: 64 })
    const [aaaa, ab, empty, spaced, tight] = embed(["aaaa", "a", "", "x =\n\n   1", "x = 1"])
    expect(aaaa![fnv1a("aa") % 64]).toBe(3)
    expect(aaaa!.reduce((s, v) => s + v, 0)).toBe(3) // len - n + 1 grams
    expect(ab![fnv1a("a") % 64]).toBe(1) // shorter than n: one gram
    expect(empty!.every((v) => v === 0)).toBe(true)
    expect(spaced).toEqual(tight)
    expect(tight!.reduce((s, v) => s + v, 0)).toBe(4) // "x =", " 1" -> "x ", " =", "= ", " 1"
    expect(embeddings["char-ngram"]({ n: 3, dims: 16 })(["abc"])[0]!.length).toBe(16)
  })

  it("computes cosine, 0 for a zero vector, and rejects different lengths", () => {
    expect(cosine([1, 0], [1, 1])).toBeCloseTo(Math.SQRT1_2, 12)
    expect(cosine([2, 0], [-1, 0])).toBe(-1)
    expect(cosine([0, 0], [1, 1])).toBe(0)
    expect(thrown(() => cosine([1], [1, 2])).fn).toBe("cosine")
  })
})
