// Policy losses: values and gradients against numbers worked out by hand, on every
// tfjs backend that initialises here (cpu always, wasm where it loads).
import * as tf from "@tensorflow/tfjs-core"
// The union package registers tfjs's gradient functions (tfjs-core alone has none).
import "@tensorflow/tfjs"
import "@tensorflow/tfjs-backend-cpu"
import "@tensorflow/tfjs-backend-wasm"
import { Schema } from "effect"
import { beforeAll, describe, expect, it } from "vitest"
import type { LossInputs } from "../../packages/core/src/component.js"
import { AlgorithmInputError } from "../../packages/core/src/errors.js"
import { klEstimate } from "../../packages/core/src/kl.js"
import { aggregate, defaultPolicyLossOptions, PolicyLossOptions, policyLoss, policyLosses, stopGradient } from "../../packages/core/src/loss.js"

const backends: Array<string> = ["cpu"]
if (await tf.setBackend("wasm").catch(() => false)) backends.push("wasm")

const e = Math.exp
const D = defaultPolicyLossOptions

/** Builds inputs from log ratios d = logprobs - oldLogprobs, so ratios are e^d by construction. */
const fromRatios = (
  logprobs: number[][],
  d: number[][],
  advantages: number[][],
  mask: number[][],
  refLogprobs?: number[][],
): LossInputs => ({
  logprobs: tf.tensor2d(logprobs),
  oldLogprobs: tf.tensor2d(logprobs.map((row, i) => row.map((l, t) => l - (d[i]?.[t] ?? 0)))),
  advantages: tf.tensor2d(advantages),
  mask: tf.tensor2d(mask),
  ...(refLogprobs === undefined ? {} : { refLogprobs: tf.tensor2d(refLogprobs) }),
})

const disposeInputs = (x: LossInputs) => tf.dispose([x.logprobs, x.oldLogprobs, x.advantages, x.mask, ...(x.refLogprobs ? [x.refLogprobs] : [])])

/** Runs the loss, reads loss and metrics as numbers, and disposes every output. */
const evaluate = (inputs: LossInputs, options: PolicyLossOptions) => {
  const out = policyLoss(inputs, options)
  const loss = out.loss.dataSync()[0] ?? NaN
  const metrics = Object.fromEntries(Object.entries(out.metrics).map(([k, v]) => [k, v.dataSync()[0] ?? NaN]))
  const ranks = [out.loss.rank, ...Object.values(out.metrics).map((m) => m.rank)]
  tf.dispose([out.loss, ...Object.values(out.metrics)])
  return { loss, metrics, ranks }
}

/** The rows of a [B, T] tensor as plain numbers; disposes the tensor. */
const rowsOf = (t: tf.Tensor): number[][] => {
  const [, length = 0] = t.shape
  const flat = Array.from(t.dataSync())
  t.dispose()
  return Array.from({ length: flat.length / Math.max(length, 1) }, (_, i) => flat.slice(i * length, (i + 1) * length))
}

/** d loss / d logprobs. */
const gradient = (inputs: LossInputs, options: PolicyLossOptions): number[][] => {
  const [batch = 0, length = 0] = inputs.logprobs.shape
  return rowsOf(tf.grad((logprobs) => policyLoss({ ...inputs, logprobs: logprobs.as2D(batch, length) }, options).loss)(inputs.logprobs))
}

const expectRows = (actual: number[][], expected: number[][], digits = 5) => {
  expect(actual.length).toBe(expected.length)
  actual.forEach((row, i) => {
    expect(row.length).toBe(expected[i]?.length)
    row.forEach((v, t) => expect(v, `[${i}][${t}]`).toBeCloseTo(expected[i]?.[t] ?? NaN, digits))
  })
}

const thrown = (f: () => unknown): AlgorithmInputError => {
  try {
    f()
  } catch (error) {
    if (error instanceof AlgorithmInputError) return error
    throw error
  }
  throw new Error("expected an AlgorithmInputError, nothing was thrown")
}

// The main [2, 3] example. Log ratios d give ratios w = e^d; eps 0.2 gives the band [0.8, 1.2].
//   row 0 (mask 1 1 0): t0 w = e^0.1 in band, A = 1           -> -e^0.1
//                       t1 w = e^-0.3 = 0.741 < 0.8, A = -0.5 -> clipped: -(0.8 * -0.5) = 0.4
//                       t2 masked
//   row 1 (mask 1 1 1): t0 w = 1, A = -1                      -> 1
//                       t1 w = e^0.25 = 1.284 > 1.2, A = 0.5  -> clipped: -(1.2 * 0.5) = -0.6
//                       t2 w = e^-0.4 = 0.670 < 0.8, A = 2    -> unclipped (the smaller term): -2e^-0.4
const L = [
  [-1.0, -0.5, -2.0],
  [-0.3, -1.2, -0.7],
]
const d = [
  [0.1, -0.3, 0.5],
  [0.0, 0.25, -0.4],
]
const A = [
  [1, -0.5, 2],
  [-1, 0.5, 2],
]
const M = [
  [1, 1, 0],
  [1, 1, 1],
]
const row0 = [-e(0.1), 0.4]
const row1 = [1, -0.6, -2 * e(-0.4)]
const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0)

describe.each(backends)("policy losses on %s", (backend) => {
  beforeAll(async () => {
    await tf.setBackend(backend)
    await tf.ready()
  })

  describe("aggregation", () => {
    it("token-mean: sum over masked tokens / number of masked tokens", () => {
      const x = fromRatios(L, d, A, M)
      expect(evaluate(x, D).loss).toBeCloseTo((sum(row0) + sum(row1)) / 5, 5)
      disposeInputs(x)
    })

    it("seq-mean-token-mean: mean of per-sequence token means, skipping empty sequences", () => {
      const expected = (sum(row0) / 2 + sum(row1) / 3) / 2
      const x = fromRatios(L, d, A, M)
      expect(evaluate(x, { ...D, aggregation: "seq-mean-token-mean" }).loss).toBeCloseTo(expected, 5)
      // A third, fully masked sequence (with garbage values) changes nothing.
      const y = fromRatios([...L, [-3, -3, -3]], [...d, [4, 4, 4]], [...A, [9, 9, 9]], [...M, [0, 0, 0]])
      expect(evaluate(y, { ...D, aggregation: "seq-mean-token-mean" }).loss).toBeCloseTo(expected, 5)
      disposeInputs(x)
      disposeInputs(y)
    })

    it("seq-mean-token-sum-norm: mean over sequences of token sums / constant (T when null)", () => {
      const x = fromRatios(L, d, A, M)
      const o = { ...D, aggregation: "seq-mean-token-sum-norm" } as const
      expect(evaluate(x, o).loss).toBeCloseTo((sum(row0) / 3 + sum(row1) / 3) / 2, 5)
      expect(evaluate(x, { ...o, normConstant: 4 }).loss).toBeCloseTo((sum(row0) / 4 + sum(row1) / 4) / 2, 5)
      disposeInputs(x)
    })

    it("aggregate on its own, and an all-zero mask gives 0, not NaN", () => {
      const v = tf.tensor2d([[1, 3, 9]])
      const m = tf.tensor2d([[1, 1, 0]])
      const z = tf.tensor2d([[0, 0, 0]])
      const read = (s: tf.Scalar) => {
        const n = s.dataSync()[0]
        s.dispose()
        return n
      }
      expect(read(aggregate(v, m, "token-mean", null))).toBeCloseTo(2, 6)
      expect(read(aggregate(v, m, "seq-mean-token-sum-norm", null))).toBeCloseTo(4 / 3, 6)
      for (const agg of ["token-mean", "seq-mean-token-mean", "seq-mean-token-sum-norm"] as const) expect(read(aggregate(v, z, agg, null))).toBe(0)
      tf.dispose([v, m, z])
    })

    it("an int32 mask gives the same loss as a float mask", () => {
      const x = fromRatios(L, d, A, M)
      const intMask = tf.tensor2d(M, undefined, "int32")
      expect(evaluate({ ...x, mask: intMask }, D).loss).toBeCloseTo((sum(row0) + sum(row1)) / 5, 5)
      disposeInputs(x)
      intMask.dispose()
    })
  })

  describe("gradients", () => {
    it("token-mean gradient is -A * w / N where the unclipped term is taken, 0 where clipped or masked", () => {
      const x = fromRatios(L, d, A, M)
      expectRows(gradient(x, D), [
        [-e(0.1) / 5, 0, 0],
        [1 / 5, 0, (-2 * e(-0.4)) / 5],
      ])
      disposeInputs(x)
    })

    it("is exactly zero at masked positions, even with -Infinity logprobs and NaN advantages there", () => {
      const x: LossInputs = {
        logprobs: tf.tensor2d([[-1, -Infinity, -0.5]]),
        oldLogprobs: tf.tensor2d([[-1.1, -1e30, -0.5]]),
        advantages: tf.tensor2d([[1, NaN, -1]]),
        mask: tf.tensor2d([[1, 0, 1]]),
      }
      for (const options of [D, policyLosses.grpo.defaults, policyLosses.gspo.defaults, { ...D, dualClip: 3 }]) {
        const { loss } = evaluate(x, options)
        expect(Number.isFinite(loss)).toBe(true)
        const g = gradient(x, options)[0] ?? []
        expect(g[1] === 0).toBe(true) // exactly zero (either sign)
        expect(g.every(Number.isFinite)).toBe(true)
      }
      disposeInputs(x)
    })

    it("clipping stops the gradient only when the ratio left its band in the advantage's direction", () => {
      // t0 w = e^0.5 > 1.2, A > 0: clipped, 0     t1 w = e^0.5 > 1.2, A < 0: flows
      // t2 w = e^-0.5 < 0.8, A < 0: clipped, 0    t3 w = e^-0.5 < 0.8, A > 0: flows
      // t4 w = e^0.1 in band: flows
      const x = fromRatios([[-1, -1, -1, -1, -1]], [[0.5, 0.5, -0.5, -0.5, 0.1]], [[1, -1, -1, 1, 1]], [[1, 1, 1, 1, 1]])
      const g = gradient(x, D)
      expectRows(g, [[0, e(0.5) / 5, 0, -e(-0.5) / 5, -e(0.1) / 5]])
      expect(g[0]?.[0] === 0 && g[0]?.[2] === 0).toBe(true) // exactly, not merely small
      expect(evaluate(x, D).metrics["actor/clip_frac"]).toBeCloseTo(2 / 5, 6)
      disposeInputs(x)
    })

    it("dual clip bounds the loss by -c * A for negative advantages and stops its gradient there", () => {
      // t0 w = e^2, A = -1: surrogate e^2 = 7.39, bounded to c = 3, gradient 0
      // t1 w = e^2, A = +1: clipped to -1.2 (dual clip does not apply to A > 0)
      // t2 w = e^-0.1 in band, A = -1: e^-0.1 < 3, unchanged, gradient -A w / 3
      const x = fromRatios([[-1, -1, -1]], [[2, 2, -0.1]], [[-1, 1, -1]], [[1, 1, 1]])
      const dual = { ...D, dualClip: 3 }
      expect(evaluate(x, D).loss).toBeCloseTo((e(2) - 1.2 + e(-0.1)) / 3, 5)
      const out = evaluate(x, dual)
      expect(out.loss).toBeCloseTo((3 - 1.2 + e(-0.1)) / 3, 5)
      expect(out.metrics["actor/dual_clip_frac"]).toBeCloseTo(1 / 3, 6)
      expectRows(gradient(x, dual), [[0, 0, e(-0.1) / 3]])
      disposeInputs(x)
    })

    it("GSPO: value and gradient of the sequence-level ratio, worked by hand", () => {
      // Band [1 - 3e-4, 1 + 4e-4]; loss = mean_i -min(s_i A_i, clip(s_i) A_i), s_i = e^{mean_t d}.
      // seq 0: d = (0.2, -0.2), s = 1 in band, A = 2    -> -2, gradient -A s / |y| / B = -2 / 2 / 3
      // seq 1: d = 0.3 each, s = e^0.3 above, A = 1     -> clipped: -(1 + 4e-4), gradient 0
      // seq 2: d = (0.1, 0.2, 0.3), s = e^0.2, A = -1.5 -> unclipped 1.5 e^0.2, gradient 1.5 e^0.2 / 3 / 3
      const x = fromRatios(
        [
          [-1, -2, -3],
          [-0.5, -0.7, -0.9],
          [-1.5, -0.2, -0.4],
        ],
        [
          [0.2, -0.2, 9],
          [0.3, 0.3, 0.3],
          [0.1, 0.2, 0.3],
        ],
        [
          [2, 2, 2],
          [1, 1, 1],
          [-1.5, -1.5, -1.5],
        ],
        [
          [1, 1, 0],
          [1, 1, 1],
          [1, 1, 1],
        ],
      )
      const gspo = policyLosses.gspo.defaults
      const out = evaluate(x, gspo)
      expect(out.loss).toBeCloseTo((-2 - (1 + 4e-4) + 1.5 * e(0.2)) / 3, 5)
      expect(out.metrics["actor/clip_frac"]).toBeCloseTo(3 / 8, 6)
      expect(out.metrics["actor/ratio_mean"]).toBeCloseTo((2 * 1 + 3 * e(0.3) + 3 * e(0.2)) / 8, 5)
      const g2 = (1.5 * e(0.2)) / 9
      expectRows(gradient(x, gspo), [
        [-1 / 3, -1 / 3, 0],
        [0, 0, 0],
        [g2, g2, g2],
      ])
      disposeInputs(x)
    })

    it("GSPO's per-token gradient equals the gradient of the sequence objective -mean_i s_i A_i", () => {
      const x = fromRatios(
        [
          [-1, -2, -0.3, -0.8],
          [-0.5, -0.7, -0.9, -1.1],
        ],
        [
          [0.3, -0.1, 0.05, 7],
          [-0.2, 0.15, 0.4, -0.3],
        ],
        [
          [0.7, 0.7, 0.7, 0.7],
          [-1.2, -1.2, -1.2, -1.2],
        ],
        [
          [1, 1, 1, 0],
          [1, 1, 1, 1],
        ],
      )
      // Wide band: nothing clipped, so the objective is the plain sequence surrogate.
      const wide = { ...policyLosses.gspo.defaults, epsLow: 0.9, epsHigh: 10 }
      const direct = tf.grad((logprobs) =>
        tf.tidy(() => {
          const dl = tf.mul(tf.sub(logprobs, x.oldLogprobs), x.mask) // [B, T]
          const s = tf.exp(tf.div(tf.sum(dl, 1), tf.sum(x.mask, 1))) // [B]
          const a = tf.gather(x.advantages, 0, 1) // [B]
          return tf.neg(tf.mean(tf.mul(s, a))) // []
        })
      )(x.logprobs)
      expectRows(gradient(x, wide), rowsOf(direct))
      disposeInputs(x)
    })

    it("stopGradient keeps values and cuts the gradient", () => {
      const x = tf.tensor1d([3, -2])
      const sg = stopGradient(x)
      expect(Array.from(sg.dataSync())).toEqual([3, -2])
      const g1 = tf.grad((v) => tf.sum(tf.mul(v, stopGradient(v))))(x)
      expect(Array.from(g1.dataSync())).toEqual([3, -2]) // d/dv (v * const) = const, not 2v
      const g2 = tf.grad((v) => tf.sum(stopGradient(tf.square(v))))(x)
      expect(Array.from(g2.dataSync()).map(Math.abs)).toEqual([0, 0])
      tf.dispose([x, sg, g1, g2])
    })
  })

  describe("KL penalty", () => {
    it("k1, k2, k3 on known numbers (log r = ref - logprobs = -0.5, 1)", () => {
      const logp = tf.tensor2d([[-1, -2]])
      const ref = tf.tensor2d([[-1.5, -1]])
      const read = (k: "k1" | "k2" | "k3") => {
        const t = klEstimate(logp, ref, k)
        const v = Array.from(t.dataSync())
        t.dispose()
        return [v]
      }
      expectRows(read("k1"), [[0.5, -1]], 6)
      expectRows(read("k2"), [[0.125, 0.5]], 6)
      expectRows(read("k3"), [[e(-0.5) - 1 + 0.5, e(1) - 1 - 1]], 6)
      tf.dispose([logp, ref])
    })

    it("adds klBeta times the aggregated estimate, with its gradient", () => {
      // log r = ref - logprobs on the mask: row 0 (-0.5, 1), row 1 (0.2, -0.1, 0); row 0 t2 masked.
      const r = [
        [-0.5, 1, 7],
        [0.2, -0.1, 0],
      ]
      const ref = L.map((row, i) => row.map((l, t) => l + (r[i]?.[t] ?? 0)))
      const x = fromRatios(L, d, A, M, ref)
      const k3 = (v: number) => e(v) - 1 - v
      const kl = (k3(-0.5) + k3(1) + k3(0.2) + k3(-0.1) + k3(0)) / 5
      const options = { ...D, klBeta: 0.1, klEstimator: "k3" } as const
      const out = evaluate(x, options)
      const pg = (sum(row0) + sum(row1)) / 5
      expect(out.metrics["actor/kl"]).toBeCloseTo(kl, 5)
      expect(out.metrics["actor/pg_loss"]).toBeCloseTo(pg, 5)
      expect(out.loss).toBeCloseTo(pg + 0.1 * kl, 5)
      // d k3 / d logprobs = 1 - e^{log r}
      const dk = (v: number) => (0.1 * (1 - e(v))) / 5
      expectRows(gradient(x, options), [
        [-e(0.1) / 5 + dk(-0.5), dk(1), 0],
        [1 / 5 + dk(0.2), dk(-0.1), (-2 * e(-0.4)) / 5 + dk(0)],
      ])
      // k1 and k2 through the same path.
      expect(evaluate(x, { ...options, klEstimator: "k1" }).metrics["actor/kl"]).toBeCloseTo(-(-0.5 + 1 + 0.2 - 0.1 + 0) / 5, 5)
      expect(evaluate(x, { ...options, klEstimator: "k2" }).metrics["actor/kl"]).toBeCloseTo((0.125 + 0.5 + 0.02 + 0.005) / 5, 5)
      disposeInputs(x)
    })
  })

  describe("metrics", () => {
    it("have stable names, are scalars and match hand-computed values", () => {
      const x = fromRatios(L, d, A, M)
      const out = evaluate(x, D)
      expect(Object.keys(out.metrics).sort()).toEqual(["actor/approx_kl", "actor/clip_frac", "actor/pg_loss", "actor/ratio_mean"])
      expect(out.ranks.every((r) => r === 0)).toBe(true)
      expect(out.metrics["actor/pg_loss"]).toBeCloseTo(out.loss, 6)
      // Clipped: row 0 t1 (w < 0.8, A < 0) and row 1 t1 (w > 1.2, A > 0); row 1 t2 is outside the
      // band in the other direction and does not count.
      expect(out.metrics["actor/clip_frac"]).toBeCloseTo(2 / 5, 6)
      const ds = [0.1, -0.3, 0, 0.25, -0.4]
      expect(out.metrics["actor/ratio_mean"]).toBeCloseTo(sum(ds.map(e)) / 5, 5)
      expect(out.metrics["actor/approx_kl"]).toBeCloseTo(sum(ds.map((v) => e(v) - 1 - v)) / 5, 5)
      const withAll = evaluate({ ...x, refLogprobs: x.logprobs }, { ...D, klBeta: 0.5, dualClip: 2 })
      expect(Object.keys(withAll.metrics).sort()).toEqual([
        "actor/approx_kl",
        "actor/clip_frac",
        "actor/dual_clip_frac",
        "actor/kl",
        "actor/pg_loss",
        "actor/ratio_mean",
      ])
      disposeInputs(x)
    })

    it("carry no gradient back to the logprobs", () => {
      const x = fromRatios(L, d, A, M, L)
      const options = { ...D, klBeta: 0.5, klEstimator: "k2", dualClip: 2 } as const
      for (const name of ["actor/pg_loss", "actor/kl", "actor/ratio_mean", "actor/approx_kl"]) {
        const g = tf.grad((logprobs) => {
          const m = policyLoss({ ...x, logprobs: logprobs.as2D(2, 3) }, options).metrics[name]
          if (m === undefined) throw new Error(`no metric ${name}`)
          return m
        })(x.logprobs)
        expect(Array.from(g.dataSync()).map(Math.abs), name).toEqual([0, 0, 0, 0, 0, 0])
        g.dispose()
      }
      disposeInputs(x)
    })
  })

  describe("catalogue", () => {
    it("entries are named as their keys and their defaults decode with their Schema", () => {
      for (const [key, entry] of Object.entries(policyLosses)) {
        expect(entry.name).toBe(key)
        expect(entry.summary.length).toBeGreaterThan(10)
        expect(Schema.decodeUnknownSync(entry.options)(entry.defaults)).toEqual(entry.defaults)
      }
      expect(policyLosses["clipped-surrogate"].defaults).toEqual(D)
      expect(policyLosses.grpo.defaults.aggregation).toBe("seq-mean-token-mean")
      expect(policyLosses["dr-grpo"].defaults.aggregation).toBe("seq-mean-token-sum-norm")
      expect([policyLosses.dapo.defaults.epsLow, policyLosses.dapo.defaults.epsHigh]).toEqual([0.2, 0.28])
      expect(policyLosses.gspo.defaults).toMatchObject({ ratio: "sequence", epsLow: 3e-4, epsHigh: 4e-4, aggregation: "seq-mean-token-mean" })
    })

    it("the options Schema rejects out-of-range and unknown values, and fills a left-out key with its default", () => {
      const decode = Schema.decodeUnknownSync(PolicyLossOptions)
      for (
        const bad of [{ epsLow: 1 }, { epsHigh: -0.1 }, { dualClip: 1 }, { normConstant: 0 }, { klBeta: -1 }, { aggregation: "sum" }, { ratio: "turn" }, {
          klEstimator: "k4",
        }]
      ) {
        expect(() => decode({ ...D, ...bad }), JSON.stringify(bad)).toThrow()
      }
      // A key left out takes its declared default (settings are declared with their defaults).
      const { klBeta: _, ...missing } = { ...D, klBeta: 0.5 }
      expect(decode(missing).klBeta).toBe(defaultPolicyLossOptions.klBeta)
    })

    it("presets run through their catalogue entry with the hand-computed values", () => {
      const x = fromRatios(L, d, A, M)
      const run = (name: keyof typeof policyLosses) => {
        const p = policyLosses[name]
        const out = p.run(x, p.defaults)
        const v = out.loss.dataSync()[0]
        tf.dispose([out.loss, ...Object.values(out.metrics)])
        return v
      }
      expect(run("clipped-surrogate")).toBeCloseTo((sum(row0) + sum(row1)) / 5, 5)
      expect(run("grpo")).toBeCloseTo((sum(row0) / 2 + sum(row1) / 3) / 2, 5)
      expect(run("dr-grpo")).toBeCloseTo((sum(row0) + sum(row1)) / 6, 5)
      // DAPO clips row 1 t1 (w = e^0.25 = 1.284) at 1.28 instead of 1.2.
      expect(run("dapo")).toBeCloseTo((sum(row0) + 1 - 1.28 * 0.5 - 2 * e(-0.4)) / 5, 5)
      disposeInputs(x)
    })

    it("clip-higher lets a positive-advantage token with w = 1.25 keep its gradient", () => {
      const x = fromRatios([[-1]], [[Math.log(1.25)]], [[1]], [[1]])
      expectRows(gradient(x, policyLosses["clipped-surrogate"].defaults), [[0]])
      expectRows(gradient(x, policyLosses.dapo.defaults), [[-1.25]])
      disposeInputs(x)
    })
  })

  describe("validation and memory", () => {
    it("rejects mismatched shapes, wrong ranks and dtypes with a readable AlgorithmInputError", () => {
      const x = fromRatios(L, d, A, M)
      const wide = tf.zeros([2, 4]).as2D(2, 4)
      const flat = tf.zeros([6]).as1D()
      const ints = tf.zeros([2, 3], "int32").as2D(2, 3)
      const start = tf.memory().numTensors
      const e1 = thrown(() => policyLoss({ ...x, oldLogprobs: wide }, D))
      expect([e1._tag, e1.fn, e1.where]).toEqual(["AlgorithmInputError", "policyLoss", "inputs.oldLogprobs"])
      expect(e1.message).toContain("[2, 4]")
      expect(e1.message).toContain("[2, 3]")
      expect(thrown(() => policyLoss({ ...x, mask: wide }, D)).where).toBe("inputs.mask")
      expect(thrown(() => policyLoss({ ...x, refLogprobs: wide }, D)).where).toBe("inputs.refLogprobs")
      // A JavaScript caller can pass a rank-1 tensor where the types ask for [B, T].
      const e3 = thrown(() => policyLoss(Object.assign({}, x, { advantages: flat }), D))
      expect(e3.where).toBe("inputs.advantages")
      expect(e3.message).toContain("rank 2")
      const e4 = thrown(() => policyLoss({ ...x, logprobs: ints }, D))
      expect(e4.message).toContain("float32")
      expect(tf.memory().numTensors).toBe(start)
      tf.dispose([wide, flat, ints])
      disposeInputs(x)
    })

    it("rejects a KL penalty without refLogprobs and out-of-range options", () => {
      const x = fromRatios(L, d, A, M)
      const start = tf.memory().numTensors
      const e1 = thrown(() => policyLoss(x, { ...D, klBeta: 0.1 }))
      expect(e1.where).toBe("inputs.refLogprobs")
      expect(e1.message).toContain("klBeta")
      // Option ranges are the Schema's, checked once where a recipe is decoded.
      const cases: Array<[Partial<PolicyLossOptions>, RegExp]> = [
        [{ epsLow: 1 }, /epsLow/],
        [{ epsLow: -0.1 }, /epsLow/],
        [{ epsHigh: -0.1 }, /epsHigh/],
        [{ dualClip: 1 }, /dualClip/],
        [{ normConstant: 0 }, /normConstant/],
        [{ klBeta: Number.NaN }, /klBeta/],
      ]
      for (const [bad, where] of cases) expect(() => Schema.decodeUnknownSync(PolicyLossOptions)({ ...D, ...bad })).toThrow(where)
      expect(tf.memory().numTensors).toBe(start) // validation runs before any tensor is made
      disposeInputs(x)
    })

    it("leaves no tensors behind once the loss and metrics are disposed", () => {
      const x = fromRatios(L, d, A, M, L)
      const start = tf.memory().numTensors
      const variants = [
        ...Object.values(policyLosses).map((p) => p.defaults),
        { ...D, klBeta: 0.2, dualClip: 3, aggregation: "seq-mean-token-sum-norm" as const, normConstant: 7 },
        { ...policyLosses.gspo.defaults, klBeta: 0.2, klEstimator: "k1" as const },
      ]
      for (const options of variants) {
        const out = policyLoss(x, options)
        expect(tf.memory().numTensors).toBe(start + 1 + Object.keys(out.metrics).length)
        tf.dispose([out.loss, ...Object.values(out.metrics)])
        expect(tf.memory().numTensors).toBe(start)
        gradient(x, options)
        expect(tf.memory().numTensors).toBe(start)
      }
      disposeInputs(x)
    })
  })
})
