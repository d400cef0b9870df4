/**
 * attentionMatMul (packages/runtime/src/model/batched-matmul.ts): its split path (N 2-D
 * products, the fast path on wasm) and its batched path both equal tf.matMul, forward
 * and gradients, with and without transposeB; and a whole model's logits and gradients
 * do not depend on the path.
 */
import * as tf from "@tensorflow/tfjs"
import { afterEach, beforeAll, describe, expect, it } from "vitest"
import { setBackend } from "../../packages/runtime/src/backend.js"
import {
  attentionMatMul,
  attentionMatMulMode,
  batchedProduct,
  setAttentionMatMulMode,
  splitsProduct,
  type AttentionMatMulMode,
} from "../../packages/runtime/src/model/batched-matmul.js"
import { presets, type ModelConfig } from "../../packages/runtime/src/model/config.js"
import { createTransformer } from "../../packages/runtime/src/model/transformer.js"
import { Rng } from "../../packages/core/src/rng.js"

const initialMode = attentionMatMulMode()

const rand = (rng: Rng, shape: Array<number>): tf.Tensor => tf.tensor(Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => rng.normal()), shape)

const maxAbsDiff = (a: tf.Tensor, b: tf.Tensor): number => tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0] ?? NaN)

/** Forward value and gradients (of sum(out * probe)) of `f` at a, b. */
const valueAndGrads = (f: (a: tf.Tensor3D, b: tf.Tensor3D) => tf.Tensor, a: tf.Tensor, b: tf.Tensor, probe: tf.Tensor) => {
  const value = f(a as tf.Tensor3D, b as tf.Tensor3D)
  const [da, db] = tf.grads((x: tf.Tensor, y: tf.Tensor) => tf.sum(tf.mul(f(x as tf.Tensor3D, y as tf.Tensor3D), probe)))([a, b])
  return { value, da: da ?? tf.scalar(NaN), db: db ?? tf.scalar(NaN) }
}

afterEach(() => setAttentionMatMulMode(initialMode))

describe.each(["cpu", "wasm"] as const)("attentionMatMul on %s", (backend) => {
  beforeAll(async () => {
    await setBackend(backend)
  })

  // [N, M, K, P]: a small product, and one large enough that mode "auto" splits it on wasm.
  const shapes: Array<[number, number, number, number]> = [
    [3, 5, 4, 6],
    [4, 64, 32, 48],
  ]
  describe.each([false, true])("transposeB %s", (transposeB) => {
    it.each(["split", "batched", "auto"] as const)("mode %s: forward and gradients equal tf.matMul's to 1e-5", (mode: AttentionMatMulMode) => {
      setAttentionMatMulMode(mode)
      for (const [n, m, k, p] of shapes) {
        tf.tidy(() => {
          const rng = Rng.fromSeed(n * 1000 + m)
          const a = rand(rng, [n, m, k])
          const b = rand(rng, transposeB ? [n, p, k] : [n, k, p])
          const probe = rand(rng, [n, m, p])
          const ours = valueAndGrads((x, y) => attentionMatMul(x, y, transposeB), a, b, probe)
          // tf.matMul's own gradient (transposed-matMul kernels): the reference.
          const ref = valueAndGrads((x, y) => tf.matMul(x, y, false, transposeB), a, b, probe)
          expect(ours.value.shape).toEqual([n, m, p])
          expect(ours.da.shape).toEqual(a.shape)
          expect(ours.db.shape).toEqual(b.shape)
          expect(maxAbsDiff(ours.value, ref.value)).toBeLessThan(1e-5)
          expect(maxAbsDiff(ours.da, ref.da)).toBeLessThan(1e-5)
          expect(maxAbsDiff(ours.db, ref.db)).toBeLessThan(1e-5)
        })
      }
    })
  })

  it("batchedProduct equals tf.matMul in every mode", () => {
    for (const mode of ["split", "batched", "auto"] as const) {
      setAttentionMatMulMode(mode)
      tf.tidy(() => {
        const rng = Rng.fromSeed(5)
        const a = rand(rng, [4, 64, 32]) as tf.Tensor3D
        const b = rand(rng, [4, 32, 48]) as tf.Tensor3D
        expect(maxAbsDiff(batchedProduct(a, b), tf.matMul(a, b))).toBeLessThan(1e-5)
      })
    }
  })

  it("mode auto splits only large products, and only on wasm", () => {
    setAttentionMatMulMode("auto")
    expect(splitsProduct(8, 384, 64, 128)).toBe(backend === "wasm")
    expect(splitsProduct(8, 3, 64, 100)).toBe(false) // a decoding step's scores
    expect(splitsProduct(8, 32, 32, 32)).toBe(false)
    setAttentionMatMulMode("split")
    expect(splitsProduct(8, 3, 64, 100)).toBe(true)
    setAttentionMatMulMode("batched")
    expect(splitsProduct(8, 384, 64, 128)).toBe(false)
  })

  it("a model's logits and weight gradients are the same split and batched", () => {
    // Grouped-query attention with products big enough for mode auto to split on wasm.
    const config: ModelConfig = {
      ...presets.tiny,
      dModel: 64,
      nLayers: 2,
      nHeads: 4,
      nKvHeads: 2,
      dFf: 96,
      maxSeqLen: 64,
      qkvBias: true,
      tieEmbeddings: false,
      seed: 4,
    }
    const model = createTransformer(config)
    try {
      const rng = Rng.fromSeed(8)
      const tokens = tf.tensor2d(
        Array.from({ length: 2 * 48 }, () => rng.int(259)),
        [2, 48],
        "int32",
      )
      const run = (mode: AttentionMatMulMode) => {
        setAttentionMatMulMode(mode)
        const logits = model.logits(tokens)
        const { grads } = tf.variableGrads(() => tf.neg(tf.mean(model.tokenLogprobs(tokens, 1))) as tf.Scalar, [...model.variables.values()])
        return { logits, grads }
      }
      const split = run("split")
      const batched = run("batched")
      expect(maxAbsDiff(split.logits, batched.logits)).toBeLessThan(1e-5)
      for (const [name, g] of Object.entries(batched.grads)) {
        const scale = tf.tidy(() => tf.max(tf.abs(g)).dataSync()[0] ?? 0)
        const other = split.grads[name]
        expect(other, name).toBeDefined()
        expect(maxAbsDiff(other ?? g, g), name).toBeLessThanOrEqual(1e-5 * Math.max(scale, 1e-3))
      }
      tf.dispose([split.logits, batched.logits, tokens, ...Object.values(split.grads), ...Object.values(batched.grads)])
    } finally {
      model.dispose()
    }
  })
})
