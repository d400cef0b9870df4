// The behaviour-policy correction of asynchronous mode: truncated importance weights
// folded into the advantages, with the proximal log-probs as the ratio's denominator.
import * as tf from "@tensorflow/tfjs"
import { beforeAll, describe, expect, it } from "vitest"
import { Effect } from "effect"
import { defaultPolicyLossOptions, policyLoss } from "@turnwise/core"
import type { TrainingSequence } from "@turnwise/core"
import type { PolicyShape } from "@turnwise/dsl"
import { createTransformer, setBackend } from "@turnwise/runtime"
import { behaviourCorrected, importanceCorrection, proximalLogprobs } from "@turnwise/cluster"
import { modelConfig } from "./harness.js"

const ln = Math.log

// Two sequences: a prompt token (mask 0), policy tokens, one feedback token (mask 0).
const behaviour: Array<TrainingSequence> = [
  { tokens: [5, 6, 7, 8, 9], mask: [0, 1, 1, 0, 1], oldLogprobs: [0, -1.2, -0.4, 0, -2.0], advantages: [0, 0.8, 0.8, 0, -0.5], turnIndex: [-1, 0, 0, -1, 1] },
  { tokens: [5, 10, 11], mask: [0, 1, 1], oldLogprobs: [0, -0.3, -1.5], advantages: [0, -1.1, -1.1], turnIndex: [-1, 0, 0] },
]

/** Proximal log-probs = behaviour + log(weight) on policy tokens; anything on context tokens. */
const proximalWith = (weights: ReadonlyArray<ReadonlyArray<number>>): Array<Array<number>> =>
  behaviour.map((s, i) => s.oldLogprobs.map((l, k) => (s.mask[k] === 1 ? l + ln(weights[i]![k]!) : 42)))

/** The sequences as [B, T] loss inputs (all the same length here after padding with mask 0). */
const asInputs = (sequences: ReadonlyArray<TrainingSequence>, logprobs: tf.Tensor2D) => {
  const T = 5
  const pad = (values: ReadonlyArray<number>) => [...values, ...Array(T - values.length).fill(0)]
  return {
    logprobs,
    oldLogprobs: tf.tensor2d(sequences.map((s) => pad(s.oldLogprobs))),
    advantages: tf.tensor2d(sequences.map((s) => pad(s.advantages))),
    mask: tf.tensor2d(sequences.map((s) => pad(s.mask))),
  }
}

// Current-policy log-probs: some tokens inside the clip band, some outside either side.
const current = [
  [0, -0.5, -0.45, 0, -2.3],
  [0, -0.31, -0.9, 0, 0],
]

const lossGradient = (sequences: ReadonlyArray<TrainingSequence>) =>
  tf.tidy(() => {
    const grad = tf.grad((lp: tf.Tensor) => policyLoss(asInputs(sequences, lp as tf.Tensor2D), defaultPolicyLossOptions).loss)
    return grad(tf.tensor2d(current)).arraySync() as Array<Array<number>>
  })

describe("importance correction", () => {
  beforeAll(() => setBackend("wasm"))

  it("leaves the sequences unchanged when the behaviour policy is the proximal one", () => {
    const proximal = proximalWith(behaviour.map((s) => s.tokens.map(() => 1)))
    const { sequences, stats } = importanceCorrection(behaviour, proximal, 2)
    expect(sequences).toEqual(behaviour)
    expect(stats).toEqual({ mean: 1, max: 1, truncatedFraction: 0, tokens: 5 })
    // So the loss's gradient is the synchronous one.
    expect(lossGradient(sequences)).toEqual(lossGradient(behaviour))
  })

  it("multiplies each policy token's advantage by its weight, cut at the cap, and uses the proximal log-probs as old log-probs", () => {
    const weights = [
      [1, 0.5, 1.5, 1, 4],
      [1, 3, 1, 1, 1],
    ]
    const proximal = proximalWith(weights)
    const { sequences, stats } = importanceCorrection(behaviour, proximal, 2)
    expect(sequences[0]!.advantages[1]).toBeCloseTo(0.4, 12)
    expect(sequences[0]!.advantages[2]).toBeCloseTo(1.2, 12)
    expect(sequences[0]!.advantages[4]).toBeCloseTo(-1.0, 12) // 4 cut to 2
    expect(sequences[1]!.advantages[1]).toBeCloseTo(-2.2, 12) // 3 cut to 2
    expect(sequences[1]!.advantages[2]).toBeCloseTo(-1.1, 12)
    // Context tokens keep their values; policy tokens take the proximal log-probs.
    expect(sequences[0]!.oldLogprobs).toEqual([0, proximal[0]![1], proximal[0]![2], 0, proximal[0]![4]])
    expect(sequences[0]!.advantages[3]).toBe(0)
    expect(stats.max).toBeCloseTo(4, 12)
    expect(stats.mean).toBeCloseTo((0.5 + 1.5 + 4 + 3 + 1) / 5, 12)
    expect(stats.truncatedFraction).toBe(2 / 5)
    // Without a cap nothing is cut.
    const uncapped = importanceCorrection(behaviour, proximal, null)
    expect(uncapped.sequences[0]!.advantages[4]).toBeCloseTo(-2.0, 12)
    expect(uncapped.stats.truncatedFraction).toBe(0)
  })

  it("the corrected clipped loss has the gradient of the decoupled objective w * max(-r A, -clip(r) A), r against the proximal policy", () => {
    const weights = [
      [1, 0.5, 1.5, 1, 4],
      [1, 3, 0.8, 1, 1],
    ]
    const cap = 2
    const proximal = proximalWith(weights)
    const { sequences } = importanceCorrection(behaviour, proximal, cap)
    const { epsLow, epsHigh } = defaultPolicyLossOptions
    const expected = tf.tidy(() => {
      const decoupled = (lp: tf.Tensor) => {
        const padded = proximal.map((row) => [...row, ...Array(5 - row.length).fill(0)])
        const mask = tf.tensor2d(behaviour.map((s) => [...s.mask, ...Array(5 - s.mask.length).fill(0)]))
        const adv = tf.tensor2d(behaviour.map((s) => [...s.advantages, ...Array(5 - s.advantages.length).fill(0)]))
        const w = tf.tensor2d(weights.map((row) => row.map((x) => Math.min(x, cap))))
        const r = tf.exp(tf.mul(tf.sub(lp, tf.tensor2d(padded)), mask))
        const perToken = tf.maximum(tf.neg(tf.mul(r, adv)), tf.neg(tf.mul(tf.clipByValue(r, 1 - epsLow, 1 + epsHigh), adv)))
        return tf.div(tf.sum(tf.mul(tf.mul(w, perToken), mask)), tf.sum(mask))
      }
      return tf.grad(decoupled)(tf.tensor2d(current)).arraySync() as Array<Array<number>>
    })
    const got = lossGradient(sequences)
    expect(got.flat().some((g) => g !== 0)).toBe(true)
    got.flat().forEach((g, i) => expect(g).toBeCloseTo(expected.flat()[i]!, 6))
    // And it differs from the uncorrected loss on the behaviour log-probs.
    expect(got.flat().some((g, i) => Math.abs(g - lossGradient(behaviour).flat()[i]!) > 1e-3)).toBe(true)
  })

  it("a corrected policy rewrites the sequences with the model's log-probs before the learner's update", async () => {
    const model = createTransformer(modelConfig)
    const sequences = behaviour.map((s) => ({ ...s, tokens: s.tokens.map((t) => t + 60) }))
    const proximal = await proximalLogprobs(model, sequences, 0.7)
    // Sampled by exactly the model (weights 1), except one token 3 times less likely under the behaviour policy.
    const sampled = sequences.map((s, i) => ({ ...s, oldLogprobs: s.oldLogprobs.map((_, k) => (s.mask[k] === 1 ? proximal[i]![k]! : 0)) }))
    sampled[1] = { ...sampled[1]!, oldLogprobs: sampled[1]!.oldLogprobs.map((l, k) => (k === 2 ? l - ln(3) : l)) }
    const trained: Array<ReadonlyArray<TrainingSequence>> = []
    const stats: Array<{ max: number; truncatedFraction: number }> = []
    const inner = {
      train: (s: ReadonlyArray<TrainingSequence>) => Effect.sync(() => (trained.push(s), { skipped: false, metrics: {} })),
    } as unknown as PolicyShape
    const policy = behaviourCorrected(inner, model, 2, (s) => stats.push(s))
    await Effect.runPromise(policy.train(sampled, { loss: () => undefined as never, temperature: 0.7, accumulation: "tokens" }))
    const got = trained[0]!
    got[0]!.advantages.forEach((a, k) => expect(a).toBeCloseTo(sampled[0]!.advantages[k]!, 4))
    expect(got[1]!.advantages[1]).toBeCloseTo(-1.1, 4)
    expect(got[1]!.advantages[2]).toBeCloseTo(-2.2, 4) // weight 3 cut to 2
    expect(got[1]!.oldLogprobs[2]).toBeCloseTo(proximal[1]![2]!, 6)
    expect(stats[0]!.max).toBeCloseTo(3, 4)
    expect(stats[0]!.truncatedFraction).toBe(1 / 5)
    model.dispose()
  })
})
