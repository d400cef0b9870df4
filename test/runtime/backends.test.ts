/**
 * The model on every tfjs backend present, each compared with wasm (the default):
 *
 * - forward: logits of a batch;
 * - backward: the gradient of a GSPO-style policy loss with respect to every weight,
 *   through the update engine (micro-batching, padding, accumulation), and one trainer
 *   step's parameter change (clipping by global norm, AdamW);
 * - sampling: a greedy, KV-cached decode of two ragged rows over two turns, and the
 *   policy's embedding of code strings (code-similarity shaping with `embedding: "policy"`).
 *
 * Off webgpu, Turnwise runs only tfjs's kernels. It has four custom gradients, all
 * written with standard ops (MatMul, Transpose, OneHot, Cast, ZerosLike), and every one
 * is on the paths compared here: `attentionMatMul` (attention off webgpu,
 * packages/runtime/src/model/batched-matmul.ts; its split path is checked in
 * batched-matmul.test.ts), `linear` (every projection), `embedding` (the input table; the
 * head is untied so its gradient comes through `embedding` alone) in
 * packages/runtime/src/model/linear.ts, and core's `stopGradient` (GSPO's sequence ratio,
 * and a direct check below). On webgpu the same paths run Turnwise's fused shaders
 * (RMSNorm, rotary, SwiGLU, attention, the log-prob head, AdamW, the gradient norm, the
 * cached decode), so this comparison checks them end to end; test/runtime/fused-kernels.test.ts
 * checks each against its composite form.
 *
 * wasm and cpu are always here. tensorflow and tensorflow-gpu are optional packages; an
 * absent one gets a test named after the reason it is absent, which checks that it fails
 * with BackendUnavailableError (and prints the reason), instead of a silent skip.
 *
 * webgpu is a devDependency and is always compared: on the GPU when Dawn finds a hardware
 * adapter, otherwise on Mesa's software OpenGL (packages/runtime/src/webgpu/software-gpu.ts).
 * Where neither works (Mesa's EGL missing) its test fails with the reason, unless
 * TURNWISE_SKIP_WEBGPU=1 says to skip it (then the test is named after the reason, as above).
 */
import * as tf from "@tensorflow/tfjs"
import type { TrainingSequence } from "@turnwise/core"
import { defaultPolicyLossOptions, policyLoss, stopGradient } from "@turnwise/core"
import type { LossInputs } from "@turnwise/core"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { recipes } from "@turnwise/recipes"
import { BackendUnavailableError, setBackend } from "../../packages/runtime/src/backend.js"
import type { BackendName } from "../../packages/runtime/src/backend.js"
import { embedCodes, makePolicyRuntime } from "../../packages/runtime/src/PolicyRuntime.js"
import { createTransformer, parameterShapes } from "../../packages/runtime/src/model/transformer.js"
import type { Transformer } from "../../packages/runtime/src/model/transformer.js"
import { Rng } from "../../packages/core/src/rng.js"
import { createSamplingSession } from "../../packages/runtime/src/sampler.js"
import { constantSchedule } from "../../packages/runtime/src/train/schedule.js"
import { byteTokenizer } from "../../packages/runtime/src/tokenizer.js"
import { createTrainer, createUpdateEngine, policyObjective } from "../../packages/runtime/src/train/trainer.js"
import { qwenLikeConfig } from "./fixtures/webgpu-compare.js"

const config = qwenLikeConfig(7)

/**
 * Relative tolerance of each backend against wasm (max |difference| over max |value|).
 * Float32 everywhere; differences come from summation order. tensorflow-gpu runs
 * matmuls in TF32 on Ampere and newer GPUs (10-bit mantissa), hence its wider bound.
 */
const tolerance: Record<BackendName, number> = { wasm: 0, cpu: 1e-4, tensorflow: 1e-4, "tensorflow-gpu": 2e-2, webgpu: 1e-3 }

const optionalBackends: ReadonlyArray<BackendName> = ["tensorflow", "tensorflow-gpu", "webgpu"]

/** webgpu may be skipped only when asked to; otherwise its absence is a failure. */
const skipWebGpu = process.env["TURNWISE_SKIP_WEBGPU"] === "1"

// Probed before collection, so an absent backend's reason can be its test's name.
const probes = new Map<BackendName, BackendUnavailableError | undefined>()
for (const name of optionalBackends) {
  probes.set(
    name,
    await setBackend(name, { softwareGpu: "fallback" }).then(
      () => undefined,
      (error: unknown) => {
        if (error instanceof BackendUnavailableError) return error
        throw error
      },
    ),
  )
}
await setBackend("wasm")
const present: Array<BackendName> = ["cpu", ...optionalBackends.filter((name) => probes.get(name) === undefined)]

/** Random token sequences of different lengths, with policy tokens after a 3-token prompt. */
const sequences = (logprobsOf: (tokens: ReadonlyArray<number>) => ReadonlyArray<number>): Array<TrainingSequence> => {
  const rng = Rng.fromSeed(11)
  return [12, 9, 16, 7].map((length, i) => {
    const tokens = [256, ...Array.from({ length: length - 1 }, () => rng.int(256))]
    const mask = tokens.map((_, k) => (k >= 3 ? 1 : 0))
    const current = logprobsOf(tokens)
    // Old logprobs a little off the current ones, so ratios sit inside the clip band but are not 1.
    const oldLogprobs = current.map((lp, k) => (mask[k] === 1 ? lp + 0.05 * (rng.next() - 0.5) : 0))
    const advantages = mask.map((m) => (m === 1 ? (i % 2 === 0 ? 1 : -0.5) : 0))
    return { tokens, mask, oldLogprobs, advantages, turnIndex: mask.map((m) => (m === 1 ? 0 : -1)) }
  })
}

/** GSPO's sequence-level ratio: its gradient path goes through stopGradient. */
const loss = (inputs: LossInputs) => policyLoss(inputs, { ...defaultPolicyLossOptions, ratio: "sequence" })

interface Measured {
  readonly logits: Float32Array
  readonly grads: ReadonlyMap<string, Float32Array>
  readonly lossValue: number
  readonly step: { readonly loss: number; readonly gradNorm: number; readonly delta: ReadonlyMap<string, Float32Array> }
  readonly greedy: ReadonlyArray<{ readonly tokens: ReadonlyArray<number>; readonly logprobs: ReadonlyArray<number> }>
  readonly codeEmbedding: Float32Array
  readonly stopGradient: Float32Array
}

const values = async (t: tf.Tensor): Promise<Float32Array> => {
  try {
    return Float32Array.from(await t.data())
  } finally {
    t.dispose()
  }
}

const snapshot = async (model: Transformer): Promise<Map<string, Float32Array>> => {
  const out = new Map<string, Float32Array>()
  // Asynchronous reads only: webgpu cannot read synchronously in Node.
  for (const [name, v] of model.variables) out.set(name, Float32Array.from(await v.data()))
  return out
}

/** Everything compared, computed on `backend` from the same seed and inputs. */
const measure = async (backend: BackendName, batch: ReadonlyArray<TrainingSequence>, seed = config.seed): Promise<Measured> => {
  await setBackend(backend)
  const model = createTransformer({ ...config, seed })
  try {
    const input = tf.tensor2d([[...batch[0]!.tokens], [...batch[2]!.tokens.slice(0, 12)]], [2, 12], "int32")
    const logits = await values(model.logits(input))
    input.dispose()

    const engine = createUpdateEngine(model, { schedule: constantSchedule(0), microBatchSize: 2, rng: Rng.fromSeed(3) })
    const { grads, loss: lossValue } = await engine.gradients(batch, policyObjective(loss), 1)
    const gradValues = new Map<string, Float32Array>()
    for (const [name, g] of grads) gradValues.set(name, await values(g))
    engine.optimizer.dispose()

    // Before the trainer step, so a sampling result never depends on whether training worked.
    const session = createSamplingSession(model, { rows: 2, seed: 1 })
    session.append(0, [256, 81, 58, 32])
    session.append(1, [256, 50, 43, 50, 61, 63, 10])
    const first = await session.generateAsync([0, 1], { maxNewTokens: 5, temperature: 0, eos: null })
    session.append(0, [60, 111, 62]) // tool feedback: the cache extends one row
    const second = await session.generateAsync([0, 1], { maxNewTokens: 4, temperature: 0, eos: null })
    session.dispose()
    const runtime = makePolicyRuntime(model, byteTokenizer, recipes.gtpo!.optimizer, { seed: 1, totalSteps: 1 })
    const codeEmbedding = Float32Array.from((await embedCodes(runtime, ["console.log(12*34)", "x=1"])).flat())
    runtime.engine.optimizer.dispose() // the model is disposed below

    // AdamW's first step is lr * g / (|g| + eps); a large eps makes it smooth in g (the
    // default 1e-8 turns it into lr * sign(g), which float noise can flip).
    const before = await snapshot(model)
    const trainer = createTrainer(model, {
      loss,
      schedule: constantSchedule(1),
      optimizer: { epsilon: 1, weightDecay: 0 },
      microBatchSize: 2,
      maxGradNorm: 0.5,
      rng: Rng.fromSeed(3),
    })
    const report = await trainer.step(batch)
    trainer.dispose()
    const after = await snapshot(model)
    const delta = new Map([...after].map(([name, v]) => [name, v.map((x, i) => x - (before.get(name)?.[i] ?? NaN))]))

    const x = tf.tensor1d([3, -2, 0.5])
    const stop = await values(tf.grad((v: tf.Tensor) => tf.sum(tf.mul(v, stopGradient(v))))(x))
    x.dispose()

    return {
      logits,
      grads: gradValues,
      lossValue,
      step: { loss: report.loss, gradNorm: report.gradNorm, delta },
      greedy: [...first, ...second].map((g) => ({ tokens: g.tokens, logprobs: g.logprobs })),
      codeEmbedding,
      stopGradient: stop,
    }
  } finally {
    model.dispose()
  }
}

const maxAbs = (a: ArrayLike<number>): number => {
  let m = 0
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] ?? NaN))
  return Number.isNaN(m) ? Infinity : m
}

/** max |a - b| / max |b| (Infinity on a length mismatch or NaN). */
const relDiff = (a: ArrayLike<number>, b: ArrayLike<number>): number => {
  if (a.length !== b.length) return Infinity
  let m = 0
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs((a[i] ?? NaN) - (b[i] ?? NaN)))
  const r = m / Math.max(maxAbs(b), 1e-12)
  return Number.isNaN(r) ? Infinity : r
}

let batch: Array<TrainingSequence>
let reference: Measured

beforeAll(async () => {
  await setBackend("wasm")
  const scorer = createTransformer(config)
  batch = sequences((tokens) => {
    const t = tf.tensor2d([[...tokens]], [1, tokens.length], "int32")
    const lp = scorer.tokenLogprobs(t, 1)
    const out = Array.from(lp.dataSync())
    tf.dispose([t, lp])
    return out
  })
  scorer.dispose()
  reference = await measure("wasm", batch)
})

afterAll(async () => {
  await setBackend("wasm")
})

describe("the wasm reference", () => {
  it("is a meaningful reference: every weight gets a gradient and moves, and stopGradient blocks its path", () => {
    expect(reference.grads.size).toBe(parameterShapes(config).length)
    for (const [name, g] of reference.grads) expect(maxAbs(g), name).toBeGreaterThan(0)
    for (const [name, d] of reference.step.delta) expect(maxAbs(d), name).toBeGreaterThan(0)
    expect(reference.greedy.map((g) => g.tokens.length)).toEqual([5, 5, 4, 4])
    expect(reference.codeEmbedding).toHaveLength(2 * config.dModel)
    expect(maxAbs(reference.codeEmbedding)).toBeGreaterThan(0)
    // d/dx sum(x * stop(x)) = stop(x) = x, where a plain product would give 2x.
    expect(Array.from(reference.stopGradient)).toEqual([3, -2, 0.5])
  })

  it("has teeth: another seed's model is further from it than any tolerance", async () => {
    const other = await measure("wasm", batch, config.seed + 1)
    const loosest = Math.max(...Object.values(tolerance))
    expect(relDiff(other.logits, reference.logits)).toBeGreaterThan(10 * loosest)
    expect(relDiff(other.grads.get("model.embed_tokens.weight")!, reference.grads.get("model.embed_tokens.weight")!)).toBeGreaterThan(10 * loosest)
    expect(other.greedy.map((g) => g.tokens)).not.toEqual(reference.greedy.map((g) => g.tokens))
  })
})

// Not started and not allowed to be skipped: a failing test that says why.
const webGpuFailure = skipWebGpu ? undefined : probes.get("webgpu")
it.runIf(webGpuFailure !== undefined)("webgpu: runs here, on a GPU or on the software GPU (set TURNWISE_SKIP_WEBGPU=1 to skip)", () => {
  expect(webGpuFailure?.message, "webgpu could not be started, so it was not compared with wasm").toBeUndefined()
})

for (const name of optionalBackends) {
  const error = probes.get(name)
  if (error === undefined || (name === "webgpu" && !skipWebGpu)) continue
  it(`${name}: not present here, so not compared (${error.message})`, () => {
    console.info(`backends.test: ${error.message}`)
    expect(error).toBeInstanceOf(BackendUnavailableError)
    expect(error.backend).toBe(name)
  })
}

describe.each(present)("%s against wasm", (name) => {
  let got: Measured
  beforeAll(async () => {
    got = await measure(name, batch)
  }, 120_000)

  it("forward: logits", () => {
    expect(relDiff(got.logits, reference.logits)).toBeLessThanOrEqual(tolerance[name])
  })

  it("backward: the policy loss and its gradient for every weight (matmul, linear, embedding, stopGradient)", () => {
    expect(Math.abs(got.lossValue - reference.lossValue)).toBeLessThanOrEqual(tolerance[name] * Math.max(1, Math.abs(reference.lossValue)))
    expect([...got.grads.keys()].sort()).toEqual([...reference.grads.keys()].sort())
    for (const [weight, g] of reference.grads) expect(relDiff(got.grads.get(weight) ?? new Float32Array(), g), weight).toBeLessThanOrEqual(tolerance[name])
    expect(Array.from(got.stopGradient)).toEqual([3, -2, 0.5])
  })

  it("one trainer step: loss, gradient norm and every parameter's change", () => {
    expect(Math.abs(got.step.gradNorm - reference.step.gradNorm)).toBeLessThanOrEqual(tolerance[name] * reference.step.gradNorm)
    expect(Math.abs(got.step.loss - reference.step.loss)).toBeLessThanOrEqual(tolerance[name] * Math.max(1, Math.abs(reference.step.loss)))
    for (const [weight, d] of reference.step.delta) {
      expect(relDiff(got.step.delta.get(weight) ?? new Float32Array(), d), weight).toBeLessThanOrEqual(tolerance[name])
    }
  })

  it("sampling: greedy KV-cached decode gives the same tokens and logprobs; code embeddings agree", () => {
    expect(got.greedy.map((g) => g.tokens)).toEqual(reference.greedy.map((g) => g.tokens))
    got.greedy.forEach((g, i) => expect(relDiff(g.logprobs, reference.greedy[i]!.logprobs), `row ${i}`).toBeLessThanOrEqual(tolerance[name]))
    expect(relDiff(got.codeEmbedding, reference.codeEmbedding)).toBeLessThanOrEqual(tolerance[name])
  })
})
