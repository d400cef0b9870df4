import * as tf from "@tensorflow/tfjs"
import type { LossInputs, LossOutput, TrainingSequence } from "@turnwise/core"
import { beforeAll, describe, expect, it } from "vitest"
import { Rng } from "../../packages/core/src/rng.js"
import { padSequences, planMicroBatches, TrainingInputError } from "../../packages/runtime/src/train/batching.js"
import { constantSchedule } from "../../packages/runtime/src/train/schedule.js"
import { createTrainer, createUpdateEngine, policyObjective, splitMiniBatches, tokenLogprobs } from "../../packages/runtime/src/train/trainer.js"
import { defaultPolicyLossOptions, policyLoss } from "../../packages/core/src/loss.js"
import { createTransformer } from "../../packages/runtime/src/model/transformer.js"
import { presets } from "../../packages/runtime/src/model/config.js"
import { byteTokenizer } from "../../packages/runtime/src/tokenizer.js"
import { makePolicyRuntime } from "../../packages/runtime/src/PolicyRuntime.js"
import { SafetensorsCheckpoints, TfjsPolicy } from "../../packages/runtime/src/index.js"
import { FileCheckpointStore } from "../../packages/runtime/src/checkpoint/store.js"
import { mkdtempSync } from "node:fs"
import { tmpdir } from "node:os"
import * as path from "node:path"
import { defaultOptimizer, Policy } from "../../packages/dsl/src/index.js"
import { Effect } from "effect"
import { clippedSurrogate, createTinyModel, maxDiff, sequence, snapshot, type TinyModel, useBackend } from "./fixtures/tiny-model.js"

beforeAll(async () => {
  await useBackend("cpu")
})

const quiet = { log: () => {} }

/** Old logprobs equal to the model's current ones, so the first update is on-policy. */
const onPolicy = (model: TinyModel, seqs: ReadonlyArray<TrainingSequence>, temperature = 1): Array<TrainingSequence> =>
  seqs.map((s) => {
    const lp = tf.tidy(() => {
      const tokens = tf.tensor2d([Array.from(s.tokens)], [1, s.tokens.length], "int32")
      return Array.from(tokenLogprobs(model.logits(tokens), tokens, temperature).dataSync())
    })
    return { ...s, oldLogprobs: s.mask.map((m, k) => (m === 1 ? (lp[k] ?? 0) : 0)) }
  })

/** Sequences of different lengths and policy-token counts, so micro-batch weights differ. */
const mixedBatch = (): Array<TrainingSequence> => [
  sequence([1, 2, 3, 4, 5, 6], 2, 1.0, -1.5),
  sequence([3, 1], 1, -0.5, -2.2),
  sequence([7, 6, 5, 4], 3, 2.0, -1.1),
  sequence([0, 2, 4, 6, 1, 3, 5], 1, -1.0, -2.5),
  sequence([5, 5, 5], 1, 0.7, -1.9),
]

describe("tokenLogprobs", () => {
  it("reads log_softmax(logits[k-1] / temperature) at token k, with 0 at entry 0", () => {
    const logits = tf.tensor3d([[[1, 2], [0, 3], [5, 5]]]) // [1, 3, 2]
    const tokens = tf.tensor2d([[0, 1, 0]], [1, 3], "int32")
    const lp = Array.from(tokenLogprobs(logits, tokens, 2).dataSync())
    // entry 1: token 1 from logits [1, 2] / 2 = [0.5, 1]; entry 2: token 0 from [0, 1.5].
    const lse = (a: number, b: number) => Math.log(Math.exp(a) + Math.exp(b))
    expect(lp[0]).toBe(0)
    expect(lp[1]).toBeCloseTo(1 - lse(0.5, 1), 6)
    expect(lp[2]).toBeCloseTo(0 - lse(0, 1.5), 6)
  })
})

describe("batching", () => {
  it("pads to the longest sequence, masks padding and entry 0", () => {
    const batch = padSequences([sequence([1, 2, 3], 0, 1), sequence([4], 0, 1)], 9)
    expect(batch.tokens.shape).toEqual([2, 3])
    expect(Array.from(batch.tokens.dataSync())).toEqual([1, 2, 3, 4, 9, 9])
    expect(Array.from(batch.mask.dataSync())).toEqual([0, 1, 1, 0, 0, 0])
    expect(Array.from(batch.advantages.dataSync())).toEqual([0, 1, 1, 0, 0, 0])
    expect(batch.maskedTokens).toBe(2)
  })

  it("plans micro-batches under a token budget and a count, reproducibly shuffled", () => {
    expect(planMicroBatches([5, 5, 5], { maxTokens: 10 })).toEqual([[0, 1], [2]])
    expect(planMicroBatches([2, 9, 2, 2], { maxTokens: 8 })).toEqual([[0], [1], [2, 3]])
    expect(planMicroBatches([1, 1, 1, 1, 1], { maxSequences: 2 })).toEqual([[0, 1], [2, 3], [4]])
    const a = planMicroBatches([1, 1, 1, 1, 1, 1, 1, 1], { maxSequences: 3 }, Rng.fromSeed(7))
    const b = planMicroBatches([1, 1, 1, 1, 1, 1, 1, 1], { maxSequences: 3 }, Rng.fromSeed(7))
    expect(a).toEqual(b)
    expect(a.flat().sort()).toEqual([0, 1, 2, 3, 4, 5, 6, 7])
    expect(a.flat()).not.toEqual([0, 1, 2, 3, 4, 5, 6, 7])
  })

  it("rejects a token outside the vocabulary, naming the sequence and position", async () => {
    const model = createTinyModel({ vocabSize: 8 })
    const trainer = createTrainer(model, { loss: clippedSurrogate(), schedule: constantSchedule(0.01), ...quiet })
    await expect(trainer.step([sequence([1, 2], 1, 1), sequence([1, 8], 1, 1)])).rejects.toThrow(TrainingInputError)
    await expect(trainer.step([sequence([1, 2], 1, 1), sequence([1, 8], 1, 1)])).rejects.toThrow(/sequence 1, token 1/)
    model.dispose()
    trainer.dispose()
  })
})

describe("createTrainer", () => {
  it("reduces the clipped-surrogate loss by at least 0.15 over 30 steps (seed 3)", async () => {
    const model = createTinyModel({ seed: 3 })
    // From token 1, continuing 2 -> 3 -> 4 is rewarded and 5 -> 6 -> 7 is punished.
    const batch = onPolicy(model, [sequence([1, 2, 3, 4], 1, 1), sequence([1, 5, 6, 7], 1, -1)])
    const trainer = createTrainer(model, {
      loss: clippedSurrogate(0.2),
      schedule: constantSchedule(0.02),
      optimizer: { weightDecay: 0 },
      maxGradNorm: 1,
      ...quiet,
    })
    const goodBefore = onPolicy(model, batch)[0]?.oldLogprobs[1] ?? 0
    const reports = []
    for (let i = 0; i < 30; i++) reports.push(await trainer.step(batch))
    const first = reports[0]?.loss ?? Number.NaN
    const last = reports.at(-1)?.loss ?? Number.NaN
    // On-policy start: ratio 1, loss = -mean(A) = 0. The floor is -(1.2 x 3 - 0.8 x 3) / 6 = -0.2.
    expect(first).toBeCloseTo(0, 5)
    expect(last).toBeLessThan(first - 0.15)
    expect(reports.every((r) => !r.skipped)).toBe(true)
    expect(reports.at(-1)?.metrics["actor/clip_frac"]).toBeGreaterThan(0.5)
    expect(onPolicy(model, batch)[0]?.oldLogprobs[1] ?? 0).toBeGreaterThan(goodBefore)
    expect(trainer.optimizer.step).toBe(30)
    trainer.dispose()
    model.dispose()
  })

  it("accumulates micro-batch gradients into the full-batch gradient (token-mean, 1e-5)", async () => {
    const model = createTinyModel({ seed: 5 })
    const objective = policyObjective(clippedSurrogate(0.2))
    const full = createUpdateEngine(model, { schedule: constantSchedule(0.01), ...quiet })
    const micro = createUpdateEngine(model, { schedule: constantSchedule(0.01), microBatchSize: 2, ...quiet })
    const single = createUpdateEngine(model, { schedule: constantSchedule(0.01), microBatchTokens: 7, rng: Rng.fromSeed(2), ...quiet })
    const a = await full.gradients(mixedBatch(), objective, 0.9)
    for (const engine of [micro, single]) {
      const b = await engine.gradients(mixedBatch(), objective, 0.9)
      expect(b.loss).toBeCloseTo(a.loss, 5)
      for (const [name, g] of a.grads) {
        const h = b.grads.get(name)
        expect(h?.shape).toEqual(g.shape)
        const diff = tf.tidy(() => (h === undefined ? Number.POSITIVE_INFINITY : g.sub(h).abs().max().dataSync()[0] ?? 0))
        expect(diff).toBeLessThan(1e-5)
      }
      tf.dispose([...b.grads.values()])
    }
    // The gradient is not trivially zero.
    expect(tf.tidy(() => tf.addN([...a.grads.values()].map((g) => g.abs().sum())).dataSync()[0])).toBeGreaterThan(1e-3)
    tf.dispose([...a.grads.values()])
    for (const e of [full, micro, single]) e.optimizer.dispose()
    model.dispose()
  })

  it("gives the same update with micro-batches as with one full batch", async () => {
    const run = async (microBatchSize: number | undefined) => {
      const model = createTinyModel({ seed: 11 })
      const trainer = createTrainer(model, {
        loss: clippedSurrogate(0.2),
        schedule: constantSchedule(0.01),
        maxGradNorm: 0.05, // small, so clipping acts and its factor depends on the accumulated norm
        temperature: 0.7,
        ...(microBatchSize === undefined ? {} : { microBatchSize }),
        ...quiet,
      })
      const reports = [await trainer.step(mixedBatch()), await trainer.step(mixedBatch())]
      const weights = snapshot(model.variables)
      trainer.dispose()
      model.dispose()
      return { reports, weights }
    }
    const full = await run(undefined)
    const micro = await run(1)
    expect(micro.reports[0]?.microBatches).toBe(5)
    expect(full.reports[0]?.microBatches).toBe(1)
    expect(micro.reports[0]?.gradNorm).toBeCloseTo(full.reports[0]?.gradNorm ?? 0, 5)
    expect(full.reports[0]?.gradNorm).toBeGreaterThan(0.05)
    expect(maxDiff(full.weights, micro.weights)).toBeLessThan(1e-5)
  })

  it("skips a non-finite loss and keeps the weights and optimizer state", async () => {
    const model = createTinyModel({ seed: 4 })
    const log: Array<string> = []
    const trainer = createTrainer(model, { loss: clippedSurrogate(), schedule: constantSchedule(0.05), log: (l) => log.push(l) })
    await trainer.step(mixedBatch())
    const before = snapshot(model.variables)
    const moments = snapshot(trainer.optimizer.state().tensors)
    const broken = mixedBatch()
    broken[2] = { ...sequence([7, 6, 5, 4], 3, 2.0), oldLogprobs: [0, 0, 0, Number.NaN] }
    const tensorsBefore = tf.memory().numTensors
    const report = await trainer.step(broken)
    expect(tf.memory().numTensors).toBe(tensorsBefore)
    expect(report.skipped).toBe(true)
    expect(report.reason).toMatch(/loss is NaN/)
    expect(report.updates).toBe(0)
    expect(trainer.optimizer.step).toBe(1)
    expect(maxDiff(before, snapshot(model.variables))).toBe(0)
    expect(maxDiff(moments, snapshot(trainer.optimizer.state().tensors))).toBe(0)
    expect(log.join("\n")).toMatch(/skipped update 2: loss is NaN/)
    expect(report.metrics["train/skipped_updates"]).toBe(1)
    const next = await trainer.step(mixedBatch())
    expect(next.skipped).toBe(false)
    expect(next.metrics["train/skipped_updates"]).toBe(1)
    trainer.dispose()
    model.dispose()
  })

  it("skips a non-finite gradient norm even when the loss is finite", async () => {
    const model = createTinyModel({ seed: 4 })
    // sqrt at 0 has value 0 and an infinite derivative: a finite loss with a NaN gradient.
    const sqrtLoss = ({ logprobs, mask }: LossInputs): LossOutput => ({
      loss: logprobs.mul(mask).mul(0).sum().sqrt() as tf.Scalar,
      metrics: {},
    })
    const trainer = createTrainer(model, { loss: sqrtLoss, schedule: constantSchedule(0.05), ...quiet })
    const before = snapshot(model.variables)
    const tensorsBefore = tf.memory().numTensors
    const report = await trainer.step(mixedBatch())
    expect(tf.memory().numTensors).toBe(tensorsBefore)
    expect(report.skipped).toBe(true)
    expect(report.reason).toMatch(/gradient norm is (NaN|Infinity)/)
    expect(maxDiff(before, snapshot(model.variables))).toBe(0)
    trainer.dispose()
    model.dispose()
  })

  it("runs one update per epoch and reports averaged metrics", async () => {
    const model = createTinyModel({ seed: 8 })
    const trainer = createTrainer(model, {
      loss: clippedSurrogate(),
      schedule: { peakLr: 0.01, warmupSteps: 4, totalSteps: 10, decay: "linear", minLr: 0 },
      epochs: 3,
      microBatchSize: 2,
      rng: Rng.fromSeed(1),
      ...quiet,
    })
    const report = await trainer.step(mixedBatch())
    expect(report.updates).toBe(3)
    expect(report.step).toBe(3)
    expect(report.lr).toBeCloseTo(0.0075, 10) // third warm-up update: 0.01 x 3 / 4
    expect(report.tokens).toBe(4 + 1 + 1 + 6 + 2)
    expect(report.metrics["train/loss"]).toBe(report.loss)
    expect(report.metrics["actor/ratio_mean"]).toBeGreaterThan(0)
    trainer.dispose()
    model.dispose()
  })

  it("leaks no tensors: numTensors after step 1 equals numTensors after step 50", async () => {
    const model = createTinyModel({ seed: 9 })
    const trainer = createTrainer(model, {
      loss: clippedSurrogate(),
      schedule: constantSchedule(0.01),
      epochs: 2,
      miniBatches: 2,
      microBatchSize: 2,
      reference: true,
      rng: Rng.fromSeed(3),
      ...quiet,
    })
    const before = tf.memory().numTensors
    await trainer.step(mixedBatch())
    const afterFirst = tf.memory().numTensors
    for (let i = 1; i < 50; i++) await trainer.step(mixedBatch())
    expect(tf.memory().numTensors).toBe(afterFirst)
    expect(afterFirst).toBe(before)
    trainer.dispose()
    // The optimizer's two moments and the frozen reference weights are freed with the trainer.
    expect(tf.memory().numTensors).toBe(before - 3 * model.variables.size)
    model.dispose()
  })

  it("computes the same update on wasm as on cpu (no gather gradient needed)", async () => {
    const run = async () => {
      const model = createTinyModel({ seed: 12 })
      const trainer = createTrainer(model, { loss: clippedSurrogate(), schedule: constantSchedule(0.01), microBatchSize: 2, ...quiet })
      for (let i = 0; i < 3; i++) await trainer.step(mixedBatch())
      const w = snapshot(model.variables)
      trainer.dispose()
      model.dispose()
      return w
    }
    const cpu = await run()
    await useBackend("wasm")
    try {
      const wasm = await run()
      expect(maxDiff(cpu, wasm)).toBeLessThan(1e-4)
    } finally {
      await useBackend("cpu")
    }
  })

  it("passes reference logprobs to the loss, so a KL penalty trains and reports its KL", async () => {
    const run = async (klBeta: number) => {
      const model = createTinyModel({ seed: 6 })
      const batch = onPolicy(model, mixedBatch())
      const trainer = createTrainer(model, {
        loss: (inputs) => policyLoss(inputs, { ...defaultPolicyLossOptions, klBeta }),
        schedule: constantSchedule(0.03),
        optimizer: { weightDecay: 0 },
        reference: true,
        ...quiet,
      })
      const reports = []
      for (let i = 0; i < 12; i++) reports.push(await trainer.step(batch))
      trainer.dispose()
      model.dispose()
      return reports
    }
    const penalised = await run(1)
    expect(penalised.every((r) => !r.skipped)).toBe(true)
    const last = penalised.at(-1)!.metrics
    // The loss's KL term (before the last update) and the measured KL after it: finite and non-zero.
    expect(Number.isFinite(last["actor/kl"])).toBe(true)
    expect(last["actor/kl"]).toBeGreaterThan(1e-6)
    expect(last["kl/reference"]).toBeGreaterThan(1e-6)
    // On the first step the policy is the reference: its KL term starts at 0.
    expect(penalised[0]!.metrics["actor/kl"]).toBeCloseTo(0, 6)
    // The penalty holds the policy nearer the reference than the same run without it.
    const free = await run(0)
    expect(free.at(-1)!.metrics["actor/kl"]).toBeUndefined()
    expect(last["kl/reference"]).toBeLessThan(free.at(-1)!.metrics["kl/reference"]!)
  })

  it("refuses a KL penalty without a reference policy, naming refLogprobs", async () => {
    const model = createTinyModel({ seed: 6 })
    const trainer = createTrainer(model, {
      loss: (inputs) => policyLoss(inputs, { ...defaultPolicyLossOptions, klBeta: 0.1 }),
      schedule: constantSchedule(0.01),
      ...quiet,
    })
    await expect(trainer.step(mixedBatch())).rejects.toThrow(/refLogprobs/)
    trainer.dispose()
    model.dispose()
  })

  it("measures KL to the behaviour policy after the update, not before it", async () => {
    const model = createTinyModel({ seed: 7 })
    const batch = onPolicy(model, mixedBatch())
    const trainer = createTrainer(model, { loss: clippedSurrogate(), schedule: constantSchedule(0.05), reference: true, ...quiet })
    const report = await trainer.step(batch)
    // One on-policy update: the loss saw ratio 1 everywhere (nothing clipped) ...
    expect(report.metrics["actor/clip_frac"]).toBe(0)
    // ... but the policy did move, and the post-update measurement sees it.
    expect(report.metrics["kl/behaviour"]).toBeGreaterThan(1e-5)
    expect(report.metrics["kl/reference"]).toBeGreaterThan(1e-5)
    expect(report.metrics["policy/entropy"]).toBeGreaterThan(0)
    expect(report.metrics["policy/entropy"]).toBeLessThanOrEqual(Math.log(16) + 1e-5)
    trainer.dispose()
    model.dispose()
  })

  it("makes epochs x miniBatches updates per step; later updates see a moved policy and clip", async () => {
    const model = createTinyModel({ seed: 8 })
    const batch = onPolicy(model, mixedBatch())
    const trainer = createTrainer(model, {
      loss: clippedSurrogate(0.05),
      schedule: constantSchedule(0.05),
      epochs: 2,
      miniBatches: 2,
      rng: Rng.fromSeed(4),
      ...quiet,
    })
    const report = await trainer.step(batch)
    expect(report.updates).toBe(4)
    expect(trainer.optimizer.step).toBe(4)
    expect(report.metrics["train/tokens_per_update"]).toBeCloseTo(report.tokens / 2, 10)
    expect(report.metrics["actor/clip_frac_last"]).toBeGreaterThan(0)
    expect(report.metrics["actor/clip_frac"]).toBeGreaterThan(0)
    expect(report.metrics["train/grad_norm_max"]).toBeGreaterThanOrEqual(report.gradNorm)
    trainer.dispose()
    model.dispose()
  })

  it("splits a batch into near-equal mini-batches, shuffled reproducibly", () => {
    expect(splitMiniBatches(5, 2)).toEqual([[0, 1, 2], [3, 4]])
    expect(splitMiniBatches(2, 5)).toEqual([[0], [1]])
    const a = splitMiniBatches(9, 3, Rng.fromSeed(5))
    expect(a).toEqual(splitMiniBatches(9, 3, Rng.fromSeed(5)))
    expect(a.map((p) => p.length)).toEqual([3, 3, 3])
    expect(a.flat().sort()).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8])
  })
})

describe("policy runtime from a recipe's optimizer section", () => {
  const newRuntime = (optimizer: typeof defaultOptimizer) =>
    makePolicyRuntime(
      createTransformer({ ...presets.tiny, dModel: 16, nLayers: 1, nHeads: 2, nKvHeads: 1, dFf: 24, maxSeqLen: 32, seed: 3 }),
      byteTokenizer,
      optimizer,
      {
        seed: 1,
        totalSteps: 10,
      },
    )
  const train = (runtime: ReturnType<typeof newRuntime>, sequences: ReadonlyArray<TrainingSequence>) =>
    Effect.runPromise(
      Effect.gen(function*() {
        const policy = yield* Policy
        return yield* policy.train(sequences, { loss: clippedSurrogate(), temperature: 1, accumulation: "tokens" })
      }).pipe(Effect.provide(TfjsPolicy.layer(runtime))),
    )
  const trainOnce = async (optimizer: typeof defaultOptimizer, sequences: ReadonlyArray<TrainingSequence>) => {
    const runtime = newRuntime(optimizer)
    const before = snapshot(runtime.model.variables)
    const report = await train(runtime, sequences)
    const moved = maxDiff(before, snapshot(runtime.model.variables))
    runtime.dispose()
    return { report, moved }
  }
  const batch = () => [sequence([1, 2, 3, 4, 5], 2, 1), sequence([1, 7, 8, 9], 2, -1), sequence([3, 4, 5, 6, 7, 8], 3, 0.5), sequence([9, 9, 9], 1, -0.5)]

  it("applies warm-up, epochs and mini-batches end to end", async () => {
    const { report } = await trainOnce({ ...defaultOptimizer, lr: 1e-3, warmupSteps: 8, epochs: 2, miniBatches: 2 }, batch())
    expect(report.metrics["train/updates"]).toBe(4)
    // Fourth update of an 8-update warm-up.
    expect(report.metrics["train/lr"]).toBeCloseTo(1e-3 * (4 / 8), 12)
    expect(report.metrics["kl/reference"]).toBeGreaterThan(0)
  })

  it("skips an update whose advantages hold a NaN, counts it, and leaves the weights alone", async () => {
    const poisoned = batch()
    poisoned[1] = { ...poisoned[1]!, advantages: poisoned[1]!.advantages.map((a, k) => (k === 3 ? Number.NaN : a)) }
    const { report, moved } = await trainOnce({ ...defaultOptimizer, lr: 1e-2 }, poisoned)
    expect(report.skipped).toBe(true)
    expect(report.metrics["train/skipped_updates"]).toBe(1)
    expect(report.metrics["train/updates"]).toBe(0)
    expect(moved).toBe(0)
    const healthy = await trainOnce({ ...defaultOptimizer, lr: 1e-2 }, batch())
    expect(healthy.moved).toBeGreaterThan(0)
  })

  it("carries optimizer state over from a warm start that saved it, and restarts the schedule", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "turnwise-carry-"))
    const warm = newRuntime({ ...defaultOptimizer, lr: 1e-3 })
    for (let i = 0; i < 3; i++) await train(warm, batch())
    const store = new FileCheckpointStore(dir)
    await store.save({ weights: warm.model.variables, optimizer: warm.engine.optimizer.state(), rngState: warm.rng.state(), step: 3, config: {} })
    const savedMoments = snapshot(warm.engine.optimizer.state().tensors)
    warm.dispose()

    const runtime = newRuntime({ ...defaultOptimizer, lr: 1e-3, warmupSteps: 4, carryOptimizerState: true })
    await SafetensorsCheckpoints.carryOptimizerState(runtime, dir)
    expect(runtime.engine.optimizer.step).toBe(3)
    expect(maxDiff(savedMoments, snapshot(runtime.engine.optimizer.state().tensors))).toBe(0)
    const report = await train(runtime, batch())
    // The run's own schedule starts at its first warm-up update, not at update 4.
    expect(report.metrics["train/lr"]).toBeCloseTo(1e-3 / 4, 12)
    expect(runtime.engine.optimizer.step).toBe(4)
    runtime.dispose()

    const weightsOnly = mkdtempSync(path.join(tmpdir(), "turnwise-carry-"))
    const bare = newRuntime(defaultOptimizer)
    await new FileCheckpointStore(weightsOnly).save({
      weights: bare.model.variables,
      optimizer: { step: 0, tensors: new Map() },
      rngState: bare.rng.state(),
      step: 1,
      config: {},
    })
    await expect(SafetensorsCheckpoints.carryOptimizerState(bare, weightsOnly)).rejects.toThrow(/saved no optimizer moments/)
    bare.dispose()
  })
})
