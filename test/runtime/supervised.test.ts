import * as tf from "@tensorflow/tfjs"
import type { TrainingSequence } from "@turnwise/core"
import { beforeAll, describe, expect, it } from "vitest"
import { Rng } from "../../packages/core/src/rng.js"
import { disposeBatch, padSequences } from "../../packages/runtime/src/train/batching.js"
import { createSupervisedTrainer, crossEntropyObjective } from "../../packages/runtime/src/train/supervised.js"
import { tokenLogprobs } from "../../packages/runtime/src/train/trainer.js"
import { createTinyModel, sequence, useBackend } from "./fixtures/tiny-model.js"

beforeAll(async () => {
  await useBackend("cpu")
})

describe("crossEntropyObjective", () => {
  it("is the token mean of -log p over the mask, with argmax accuracy", () => {
    // Two positions predict: entry 1 (from logits[0]) and entry 2 (from logits[1]); only entry 2 is masked in.
    const batch = padSequences([{ ...sequence([0, 1, 0], 1, 1), mask: [0, 0, 1] }])
    const logits = tf.tensor3d([[[0, 5], [2, 0], [0, 0]]]) as tf.Tensor3D // [1, 3, 2]
    const logprobs = tokenLogprobs(logits, batch.tokens)
    const { loss, metrics } = crossEntropyObjective({ batch, logits, logprobs })
    // Entry 2 is token 0 predicted from [2, 0]: -log softmax = log(1 + e^-2); argmax 0 is right.
    expect(loss.dataSync()[0]).toBeCloseTo(Math.log(1 + Math.exp(-2)), 6)
    expect(metrics["sft/accuracy"]?.dataSync()[0]).toBe(1)
    disposeBatch(batch)
  })
})

describe("createSupervisedTrainer", () => {
  // The fixed mapping to learn: after token x comes (3x + 1) mod 8.
  const next = (x: number) => (3 * x + 1) % 8
  const demonstrations = (rng: Rng, count: number): Array<TrainingSequence> =>
    Array.from({ length: count }, () => {
      const tokens = [rng.int(8)]
      const length = 3 + rng.int(4)
      while (tokens.length < length) tokens.push(next(tokens.at(-1) ?? 0))
      return sequence(tokens, 1, 0)
    })

  it("learns a fixed bigram mapping: token accuracy rises from below 0.4 to above 0.95", async () => {
    const model = createTinyModel({ seed: 21, dim: 8 })
    const rng = Rng.fromSeed(5)
    const sft = createSupervisedTrainer(model, {
      schedule: { peakLr: 0.05, warmupSteps: 5, totalSteps: 60, decay: "cosine", minLr: 0.005 },
      microBatchSize: 4,
      rng: Rng.fromSeed(6),
      log: () => {},
    })
    const first = await sft.step(demonstrations(rng, 16))
    let last = first
    for (let i = 1; i < 60; i++) last = await sft.step(demonstrations(rng, 16))
    expect(first.accuracy).toBeLessThan(0.4)
    expect(last.accuracy).toBeGreaterThan(0.95)
    expect(last.crossEntropy).toBeLessThan(first.crossEntropy / 4)
    expect(last.crossEntropy).toBe(last.loss)
    expect(last.microBatches).toBe(4)
    expect(sft.optimizer.step).toBe(60)
    // The learned greedy continuation follows the mapping from every token.
    const predicted = tf.tidy(() => Array.from(model.logits(tf.tensor2d([[0, 1, 2, 3, 4, 5, 6, 7]], [1, 8], "int32")).argMax(-1).dataSync()))
    expect(predicted).toEqual([0, 1, 2, 3, 4, 5, 6, 7].map(next))
    sft.dispose()
    model.dispose()
  })
})
