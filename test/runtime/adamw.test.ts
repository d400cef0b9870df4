import * as tf from "@tensorflow/tfjs"
import { beforeAll, describe, expect, it } from "vitest"
import { AdamW, clipByGlobalNorm, globalNorm, OptimizerStateError } from "../../packages/runtime/src/train/adamw.js"
import { constantSchedule, learningRate } from "../../packages/runtime/src/train/schedule.js"
import { useBackend } from "./fixtures/tiny-model.js"

beforeAll(async () => {
  await useBackend("cpu")
})

let ids = 0
const variable = (values: ReadonlyArray<number>, shape?: Array<number>): tf.Variable =>
  tf.variable(tf.tensor(values, shape ?? [values.length]), true, `adamw-test-${ids++}`)

describe("AdamW", () => {
  it("matches two hand-computed steps on a 2-element vector with weight decay", () => {
    const p = variable([1, -2])
    const opt = new AdamW(new Map([["p", p]]), { beta1: 0.9, beta2: 0.999, epsilon: 1e-8, weightDecay: 0.1, decay: () => true })
    // Step 1, g = [0.5, -1]: decay p *= 1 - 0.1*0.1 -> [0.99, -1.98]; m_hat = g, sqrt(v_hat) = |g|,
    // so the Adam step is lr * sign(g) = [0.1, -0.1] -> [0.89, -1.88].
    opt.apply(new Map([["p", tf.tensor1d([0.5, -1])]]), 0.1)
    const [a1, b1] = p.dataSync()
    expect(a1).toBeCloseTo(0.89, 6)
    expect(b1).toBeCloseTo(-1.88, 6)
    // Step 2, g = [0.1, 0.3]: m = [0.055, -0.06], v = [0.00025975, 0.001089];
    // m_hat = m / 0.19, v_hat = v / 0.001999; p = 0.99 p - 0.1 m_hat / (sqrt(v_hat) + eps).
    opt.apply(new Map([["p", tf.tensor1d([0.1, 0.3])]]), 0.1)
    const [a2, b2] = p.dataSync()
    expect(a2).toBeCloseTo(0.8007959, 5)
    expect(b2).toBeCloseTo(-1.8184151, 5)
    expect(opt.step).toBe(2)
    const state = opt.state()
    expect(Array.from(state.tensors.get("exp_avg/p")?.dataSync() ?? [])).toEqual([expect.closeTo(0.055, 6), expect.closeTo(-0.06, 6)])
    expect(Array.from(state.tensors.get("exp_avg_sq/p")?.dataSync() ?? [])).toEqual([
      expect.closeTo(0.00025975, 8),
      expect.closeTo(0.001089, 8),
    ])
  })

  it("decays matrices but not norms or biases by default", () => {
    const w = variable([1, 2, 3, 4], [2, 2])
    const bias = variable([1, 2])
    const norm = variable([1, 1, 1, 1], [2, 2])
    const opt = new AdamW(
      new Map([
        ["proj.weight", w],
        ["proj.bias", bias],
        ["input_layernorm.weight", norm],
      ]),
      { weightDecay: 0.5 },
    )
    // Zero gradients: the Adam step is 0, so only decoupled decay moves the weights.
    opt.apply(
      new Map([
        ["proj.weight", tf.zeros([2, 2])],
        ["proj.bias", tf.zeros([2])],
        ["input_layernorm.weight", tf.zeros([2, 2])],
      ]),
      0.1,
    )
    expect(Array.from(w.dataSync())).toEqual([0.95, 1.9, 2.85, 3.8].map((x) => expect.closeTo(x, 6)))
    expect(Array.from(bias.dataSync())).toEqual([1, 2])
    expect(Array.from(norm.dataSync())).toEqual([1, 1, 1, 1])
  })

  it("round-trips its state: a restored optimizer continues identically", () => {
    const grads = [
      [0.3, -0.2, 0.5],
      [0.1, 0.4, -0.6],
      [-0.2, 0.2, 0.2],
      [0.7, -0.1, 0.05],
    ]
    const a = variable([0.5, 0.5, 0.5])
    const optA = new AdamW(new Map([["w", a]]), { weightDecay: 0 })
    for (const g of grads.slice(0, 2)) optA.apply(new Map([["w", tf.tensor1d(g)]]), 0.05)
    // Copy the state out (as a checkpoint would) into a fresh optimizer on a copy of the weights.
    const saved = optA.state()
    const copied = new Map([...saved.tensors].map(([k, t]) => [k, t.clone()]))
    const b = variable(Array.from(a.dataSync()))
    const c = variable(Array.from(a.dataSync()))
    const optB = new AdamW(new Map([["w", b]]), { weightDecay: 0 })
    const optC = new AdamW(new Map([["w", c]]), { weightDecay: 0 })
    optB.loadState({ step: saved.step, tensors: copied })
    expect(optB.step).toBe(2)
    for (const g of grads.slice(2)) {
      for (const opt of [optA, optB, optC]) opt.apply(new Map([["w", tf.tensor1d(g)]]), 0.05)
    }
    expect(Array.from(b.dataSync())).toEqual(Array.from(a.dataSync()))
    // Without the state (moments and bias correction restart) the weights differ.
    const gap = Math.max(...Array.from(c.dataSync()).map((x, i) => Math.abs(x - (a.dataSync()[i] ?? 0))))
    expect(gap).toBeGreaterThan(1e-3)
  })

  it("rejects state that does not fit its parameters, naming the tensor", () => {
    const opt = new AdamW(new Map([["w", variable([1, 2])]]))
    const bad = new Map([
      ["exp_avg/w", tf.zeros([3])],
      ["exp_avg_sq/w", tf.zeros([2])],
    ])
    expect(() => opt.loadState({ step: 1, tensors: bad })).toThrow(OptimizerStateError)
    expect(() => opt.loadState({ step: 1, tensors: bad })).toThrow(/exp_avg\/w has shape \[3\]/)
    expect(() => opt.loadState({ step: 1, tensors: new Map([["exp_avg/w", tf.zeros([2])]]) })).toThrow(/missing tensor exp_avg_sq\/w/)
    expect(opt.step).toBe(0)
  })
})

describe("clipByGlobalNorm", () => {
  it("scales to the max norm and returns the norm before clipping", async () => {
    const grads = new Map<string, tf.Tensor>([
      ["a", tf.tensor1d([3, 4])],
      ["b", tf.tensor2d([[12]])],
    ])
    expect(await globalNorm(grads)).toBeCloseTo(13, 5)
    const { grads: clipped, norm } = await clipByGlobalNorm(grads, 6.5)
    expect(norm).toBeCloseTo(13, 5)
    expect(Array.from(clipped.get("a")?.dataSync() ?? [])).toEqual([expect.closeTo(1.5, 5), expect.closeTo(2, 5)])
    expect(clipped.get("b")?.dataSync()[0]).toBeCloseTo(6, 5)
    expect(await globalNorm(clipped)).toBeCloseTo(6.5, 4)
  })

  it("leaves gradients below the limit (or with clipping off) unchanged", async () => {
    const grads = new Map<string, tf.Tensor>([["a", tf.tensor1d([0.3, 0.4])]])
    expect(Array.from((await clipByGlobalNorm(grads, 1)).grads.get("a")?.dataSync() ?? [])).toEqual([expect.closeTo(0.3, 6), expect.closeTo(0.4, 6)])
    const big = new Map<string, tf.Tensor>([["a", tf.tensor1d([30, 40])]])
    const off = await clipByGlobalNorm(big, null)
    expect(off.norm).toBeCloseTo(50, 4)
    expect(Array.from(off.grads.get("a")?.dataSync() ?? [])).toEqual([30, 40])
  })

  it("reports a non-finite norm when a gradient holds NaN", async () => {
    const grads = new Map<string, tf.Tensor>([["a", tf.tensor1d([1, Number.NaN])]])
    expect(Number.isNaN((await clipByGlobalNorm(grads, 1)).norm)).toBe(true)
  })
})

describe("learningRate", () => {
  const cosine = { peakLr: 1e-3, warmupSteps: 10, totalSteps: 110, decay: "cosine", minLr: 1e-5 } as const

  it("warms up linearly from peak / warmup to peak", () => {
    expect(learningRate(cosine, 0)).toBeCloseTo(1e-4, 12)
    expect(learningRate(cosine, 4)).toBeCloseTo(5e-4, 12)
    expect(learningRate(cosine, 9)).toBeCloseTo(1e-3, 12)
  })

  it("decays by a half cosine to the floor and stays there", () => {
    expect(learningRate(cosine, 10)).toBeCloseTo(1e-3, 12)
    expect(learningRate(cosine, 60)).toBeCloseTo((1e-3 + 1e-5) / 2, 12)
    // A quarter of the way: (1 + cos(pi/4)) / 2 = 0.853553...
    expect(learningRate(cosine, 35)).toBeCloseTo(1e-5 + (1e-3 - 1e-5) * 0.8535534, 9)
    expect(learningRate(cosine, 110)).toBeCloseTo(1e-5, 12)
    expect(learningRate(cosine, 10_000)).toBeCloseTo(1e-5, 12)
  })

  it("decays linearly when asked and is constant when asked", () => {
    const linear = { ...cosine, decay: "linear" } as const
    expect(learningRate(linear, 35)).toBeCloseTo(1e-5 + (1e-3 - 1e-5) * 0.75, 12)
    expect(learningRate(linear, 60)).toBeCloseTo((1e-3 + 1e-5) / 2, 12)
    expect(learningRate(constantSchedule(3e-4), 0)).toBe(3e-4)
    expect(learningRate(constantSchedule(3e-4), 999)).toBe(3e-4)
  })
})
