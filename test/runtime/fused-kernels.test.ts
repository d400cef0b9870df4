/**
 * Every fused WebGPU kernel against the composite tfjs ops it replaces, on the webgpu
 * backend (Mesa's software GPU where there is no hardware adapter): the forward value
 * and the gradient with respect to every differentiable input, under a random upstream
 * gradient; the decode kernels (no gradient) on their values; AdamW against the composite
 * update on wasm; the gradient sum of squares against square-and-sum. Shapes are tiny (the software GPU is slow) but chosen to hit the edges:
 * rows shorter and longer than a workgroup, column counts that are not multiples of it,
 * and rotary tables shared by the batch or given per row.
 *
 * Tolerance: max |fused - composite| / max |composite| <= 1e-4. Both are float32; they
 * differ only in summation order (the fused reductions sum in a tree over 64 threads).
 *
 * webgpu must start here; where it cannot (no GPU and no Mesa EGL), the suite fails with
 * the reason unless TURNWISE_SKIP_WEBGPU=1.
 */
import * as tf from "@tensorflow/tfjs"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { setBackend } from "../../packages/runtime/src/backend.js"
import { compositeCausalAttention, fusedCausalAttention } from "../../packages/runtime/src/model/kernels/attention.js"
import { fusedDecodeAttention } from "../../packages/runtime/src/model/kernels/decode-attention.js"
import { compositeRmsNorm, fusedNormalize, fusedRmsNorm, rmsNorm } from "../../packages/runtime/src/model/kernels/rms-norm.js"
import { compositeRope, fusedRope, fusedRopeCombine } from "../../packages/runtime/src/model/kernels/rope.js"
import { compositeSwiGlu, fusedSwiGlu } from "../../packages/runtime/src/model/kernels/swiglu.js"
import { compositeTokenLogprobs, fusedTokenLogprobs } from "../../packages/runtime/src/model/kernels/token-logprobs.js"
import { MASKED, ropeTables } from "../../packages/runtime/src/model/transformer.js"
import { AdamW, globalNorm } from "../../packages/runtime/src/train/adamw.js"
import { PackedMoments } from "../../packages/runtime/src/train/fused-adamw.js"
import { fusedSumOfSquares } from "../../packages/runtime/src/train/fused-global-norm.js"
import { probeWebgpu, read, relDiff, skipWebgpu } from "./fixtures/webgpu-compare.js"

const tolerance = 1e-4
const skip = skipWebgpu
const started = await probeWebgpu()

/** The value of f and its gradients with respect to `xs`, under the upstream gradient `upstream`. */
const valueAndGrads = async (f: (...xs: Array<tf.Tensor>) => tf.Tensor, xs: Array<tf.Tensor>, upstream: tf.Tensor) => {
  const value = f(...xs)
  const grads = tf.grads((...ys: Array<tf.Tensor>) => tf.sum(tf.mul(f(...ys), upstream)))(xs)
  const out = { value: await read(value), grads: await Promise.all(grads.map(read)) }
  tf.dispose([value, ...grads])
  return out
}

/** Fused and composite agree on the value and every gradient; returns the fused results and the largest difference. */
const compare = async (
  fused: (...xs: Array<tf.Tensor>) => tf.Tensor,
  composite: (...xs: Array<tf.Tensor>) => tf.Tensor,
  xs: Array<tf.Tensor>,
  upstream: tf.Tensor,
) => {
  const got = await valueAndGrads(fused, xs, upstream)
  const want = await valueAndGrads(composite, xs, upstream)
  expect(relDiff(got.value, want.value), "forward").toBeLessThanOrEqual(tolerance)
  want.grads.forEach((g, i) => expect(relDiff(got.grads[i]!, g), `gradient ${i}`).toBeLessThanOrEqual(tolerance))
  // The reference is not degenerate: values and gradients are not all zero.
  expect(Math.max(...want.value.map(Math.abs))).toBeGreaterThan(0)
  for (const g of want.grads) expect(Math.max(...g.map(Math.abs))).toBeGreaterThan(0)
  const worst = Math.max(relDiff(got.value, want.value), ...want.grads.map((g, i) => relDiff(got.grads[i]!, g)))
  return { ...got, worst }
}

const normal = (shape: Array<number>, seed: number) => tf.randomNormal(shape, 0, 1, "float32", seed)

/** Parameter shapes of the AdamW tests: one matrix (decays), vectors (do not), and enough of them that one bucket needs two moment shaders. */
const adamWShapes: Record<string, Array<number>> = {
  "layer.weight": [3, 5],
  "layer.norm": [7],
  ...Object.fromEntries(Array.from({ length: 6 }, (_, i) => [`extra.${i}.bias`, [2 + i]])),
}

/**
 * Three AdamW steps on the active backend from fixed values: the second scales its
 * gradients by 0.5 (as clipping does), the third leaves "layer.norm" without a gradient.
 * Returns each parameter's total change, the moments, and the kernels of the last step.
 * `update` replaces AdamW.apply (to drive packed moments directly).
 */
const adamWChanges = async (
  update?: (variables: Map<string, tf.Variable>, grads: Map<string, tf.Tensor>, step: number, gradScale: number) => void,
) => {
  const start = Object.fromEntries(Object.entries(adamWShapes).map(([name, shape], i) => [name, normal(shape, 21 + i)]))
  const variables = new Map(Object.entries(start).map(([name, t]) => [name, tf.variable(t.clone(), true)]))
  const optimizer = new AdamW(variables, { weightDecay: 0.1 })
  let kernels: Array<string> = []
  for (let step = 0; step < 3; step++) {
    const grads = new Map(
      [...variables].filter(([name]) => step < 2 || name !== "layer.norm").map(([name, v], i) => [name, normal(v.shape, 30 + 10 * step + i)]),
    )
    const gradScale = step === 1 ? 0.5 : 1
    const info = await tf.profile(() => (update === undefined ? optimizer.apply(grads, 0.05, gradScale) : update(variables, grads, step + 1, gradScale)))
    kernels = info.kernels.map((k) => k.name)
    tf.dispose([...grads.values()])
  }
  const changes = await Promise.all([...variables].map(async ([name, v]) => read(tf.sub(v, start[name]!))))
  const moments = new Map(await Promise.all([...optimizer.state().tensors].map(async ([name, t]) => [name, await read(t)] as const)))
  optimizer.dispose()
  tf.dispose([...variables.values(), ...Object.values(start)])
  return { changes, moments, kernels }
}

describe.runIf(started === undefined)("fused webgpu kernels against the composite ops", () => {
  beforeAll(async () => {
    await setBackend("webgpu")
  })
  afterAll(async () => {
    await setBackend("wasm")
  })

  it.each([
    [5, 70],
    [3, 130],
    [2, 16],
  ])("RMSNorm [%i, %i]: value, dx and dw", async (rows, cols) => {
    const x = normal([rows, cols], 1)
    const w = tf.add(normal([cols], 2), 1)
    const { worst } = await compare(
      (a, b) => fusedRmsNorm(a as tf.Tensor2D, b as tf.Tensor1D, 1e-5),
      (a, b) => compositeRmsNorm(a as tf.Tensor2D, b as tf.Tensor1D, 1e-5),
      [x, w],
      normal([rows, cols], 3),
    )
    expect(worst).toBeLessThanOrEqual(tolerance)
  })

  it("RMSNorm: a wrong epsilon is caught (the comparison has teeth)", async () => {
    const x = tf.mul(normal([2, 16], 1), 0.01) // small values, so epsilon matters
    const w = normal([16], 2)
    const got = await read(fusedRmsNorm(x as tf.Tensor2D, w as tf.Tensor1D, 1e-3))
    const want = await read(compositeRmsNorm(x as tf.Tensor2D, w as tf.Tensor1D, 1e-5))
    expect(relDiff(got, want)).toBeGreaterThan(100 * tolerance)
  })

  it("SwiGLU [4, 10]: value, d gate and d up", async () => {
    const { worst } = await compare((g, u) => fusedSwiGlu(g as tf.Tensor2D, u as tf.Tensor2D), (g, u) => compositeSwiGlu(g as tf.Tensor2D, u as tf.Tensor2D), [
      tf.mul(normal([4, 10], 4), 3),
      normal([4, 10], 5),
    ], normal([4, 10], 6))
    expect(worst).toBeLessThanOrEqual(tolerance)
  })

  it.each([
    ["shared by the batch", 1],
    ["per row", 2],
  ])("rotary positions, tables %s: value and dx", async (_name, tableRows) => {
    const [B, T, H, Dh] = [2, 3, 2, 8]
    // Per-row tables use different positions in each row, as the KV-cached decode does.
    const positions = Array.from({ length: tableRows * T }, (_, i) => 3 * i + 1)
    const { cos, sin } = ropeTables(positions, tableRows, T, Dh, 10000)
    const { worst } = await compare(
      (x) => fusedRope(x as tf.Tensor4D, cos, sin),
      (x) => compositeRope(x as tf.Tensor4D, cos, sin),
      [normal([B, T, H, Dh], 7)],
      normal([B, T, H, Dh], 8),
    )
    expect(worst).toBeLessThanOrEqual(tolerance)
  })

  it.each([
    [2, 4, 70, 1],
    [1, 3, 130, 1 / 0.7],
  ])("token log-probs, logits [%i, %i, %i], scale %d: value and dlogits", async (B, T, V, scale) => {
    const tokens = tf.randomUniform([B, T], 0, V, "int32", 9) as tf.Tensor2D
    const got = await compare((l) => fusedTokenLogprobs(l as tf.Tensor3D, tokens, scale), (l) => compositeTokenLogprobs(l as tf.Tensor3D, tokens, scale), [
      tf.mul(normal([B, T, V], 10), 2),
    ], normal([B, T], 11))
    // Position 0 has no previous logits: exactly 0.
    for (let b = 0; b < B; b++) expect(got.value[b * T]).toBe(0)
  })

  it.each([
    ["grouped (H 4 over Hkv 2)", 2, 5, 4, 2, 8],
    ["one kv head per query head", 1, 3, 2, 2, 4],
  ])("causal attention, %s: value, dq, dk and dv", async (_name, B, T, H, Hkv, Dh) => {
    const m = new Float32Array(T * T)
    for (let t = 0; t < T; t++) for (let s = t + 1; s < T; s++) m[t * T + s] = MASKED
    const mask = tf.tensor4d(m, [1, 1, T, T])
    // Scores spread over a few units, so the softmax is neither flat nor one-hot.
    const inputs = [tf.mul(normal([B, T, H, Dh], 12), 1.5), tf.mul(normal([B, T, Hkv, Dh], 13), 1.5), normal([B, T, Hkv, Dh], 14)]
    const { worst } = await compare(
      (q, k, v) => fusedCausalAttention(q as tf.Tensor4D, k as tf.Tensor4D, v as tf.Tensor4D),
      (q, k, v) => compositeCausalAttention(q as tf.Tensor4D, k as tf.Tensor4D, v as tf.Tensor4D, mask),
      inputs,
      normal([B, T, H, Dh], 15),
    )
    expect(worst).toBeLessThanOrEqual(tolerance)
  })

  it("decode kernels (no gradient): normalisation, rotary combination and cached attention against composite ops", async () => {
    const x = normal([3, 70], 50) as tf.Tensor2D
    expect(relDiff(await read(fusedNormalize(x, 1e-5)), await read(compositeRmsNorm(x, tf.ones([70]) as tf.Tensor1D, 1e-5)))).toBeLessThanOrEqual(tolerance)

    const [B, T, H, Hkv, Dh, S] = [2, 2, 4, 2, 8, 5]
    const { cos, sin } = ropeTables([4, 5, 1, 2], B, T, Dh, 10000)
    const qk = normal([B, T, H + Hkv, Dh], 51) as tf.Tensor4D
    const qkRot = normal([B, T, H + Hkv, Dh], 52) as tf.Tensor4D
    const roped = fusedRopeCombine(qk, qkRot, cos, sin)
    expect(relDiff(await read(roped), await read(tf.add(tf.mul(qk, cos), tf.mul(qkRot, sin))))).toBeLessThanOrEqual(tolerance)

    const kAll = normal([B, Hkv, Dh, S], 53) as tf.Tensor4D
    const vAll = normal([B, Hkv, S, Dh], 54) as tf.Tensor4D
    // Row 0 sees every slot; row 1 has its first two slots masked (a shorter, ragged row).
    const m = new Float32Array(B * T * S)
    for (let t = 0; t < T; t++) for (let s = 0; s < 2; s++) m[(T + t) * S + s] = MASKED
    const bias = tf.tensor4d(m, [B, 1, T, S])
    const got = await read(fusedDecodeAttention(roped, kAll, vAll, bias, H))
    // Composite: query head h reads kv head floor(h / G), by gathering the cache per query head.
    const heads = tf.tensor1d(Array.from({ length: H }, (_, h) => Math.floor(h / (H / Hkv))), "int32")
    const q = tf.transpose(tf.slice(roped, [0, 0, 0, 0], [B, T, H, Dh]), [0, 2, 1, 3]) // [B, H, T, Dh]
    const scores = tf.add(
      tf.matMul(tf.reshape(q, [B * H, T, Dh]), tf.reshape(tf.gather(kAll, heads, 1), [B * H, Dh, S])),
      tf.reshape(tf.tile(bias, [1, H, 1, 1]), [B * H, T, S]),
    )
    const y = tf.matMul(tf.softmax(scores), tf.reshape(tf.gather(vAll, heads, 1), [B * H, S, Dh])) // [B*H, T, Dh]
    const want = await read(tf.reshape(tf.transpose(tf.reshape(y, [B, H, T, Dh]), [0, 2, 1, 3]), [B * T, H * Dh]))
    expect(Math.max(...want.map(Math.abs))).toBeGreaterThan(0)
    expect(relDiff(got, want)).toBeLessThanOrEqual(tolerance)
  })

  it("AdamW: three steps on webgpu (packed moments, fused) change the parameters and moments as the composite update on wasm does", async () => {
    const fused = await adamWChanges()
    // Two moment shaders (eight parameters, six per shader) run inside one kernel; one parameter shader each.
    expect(fused.kernels.filter((k) => k === "TurnwiseAdamWMoments")).toHaveLength(1)
    expect(fused.kernels.filter((k) => k === "TurnwiseAdamWParameter")).toHaveLength(Object.keys(adamWShapes).length - 1)
    await setBackend("wasm")
    const composite = await adamWChanges()
    await setBackend("webgpu")
    expect(composite.kernels).not.toContain("TurnwiseAdamWParameter")
    composite.changes.forEach((c, i) => {
      expect(Math.max(...c.map(Math.abs)), `parameter ${i} moves`).toBeGreaterThan(0)
      expect(relDiff(fused.changes[i]!, c), `parameter ${i}`).toBeLessThanOrEqual(tolerance)
    })
    expect([...fused.moments.keys()].sort()).toEqual([...composite.moments.keys()].sort())
    for (const [name, m] of composite.moments) expect(relDiff(fused.moments.get(name)!, m), name).toBeLessThanOrEqual(tolerance)
  })

  it("AdamW: moments split over several buckets, and a state loaded into a fresh optimizer, update as on wasm", async () => {
    // Buckets of 24 floats: 12 elements of moments each, so the 15-element matrix has one of its own.
    let packed: PackedMoments | undefined
    const bucketed = await adamWChanges((variables, grads, t, gradScale) => {
      packed ??= new PackedMoments(variables, 24)
      const decay = (name: string) => (name === "layer.weight" ? 1 - 0.05 * 0.1 : 1)
      packed.update(variables, grads, { lr: 0.05, beta1: 0.9, beta2: 0.999, epsilon: 1e-8, bc1: 1 - 0.9 ** t, bc2: 1 - 0.999 ** t, gradScale }, decay)
    })
    await setBackend("wasm")
    const composite = await adamWChanges()
    await setBackend("webgpu")
    expect(packed?.bucketCount).toBeGreaterThan(3)
    packed?.dispose()
    composite.changes.forEach((c, i) => expect(relDiff(bucketed.changes[i]!, c), `parameter ${i}`).toBeLessThanOrEqual(tolerance))

    // A composite optimizer's state, loaded into a packed one, is read back unchanged.
    const variables = new Map(Object.entries(adamWShapes).map(([name, shape], i) => [name, tf.variable(normal(shape, 60 + i), true)]))
    const optimizer = new AdamW(variables)
    optimizer.loadState({
      step: 3,
      tensors: new Map([...composite.moments].map(([name, m]) => [name, tf.tensor(m, variables.get(name.split("/")[1]!)!.shape)])),
    })
    for (const [name, t] of optimizer.state().tensors) expect(relDiff(await read(t), composite.moments.get(name)!), name).toBe(0)
    expect(optimizer.step).toBe(3)
    optimizer.dispose()
    tf.dispose([...variables.values()])
  })

  it("sum of squares over 9 tensors (two shaders), against the composite square-and-sum; globalNorm uses it", async () => {
    // Sizes below, at and above one workgroup of 256, and one tensor of a single entry.
    const tensors = [[300], [7], [256], [3, 90], [1], [2, 2, 5], [513], [64], [10, 10]].map((shape, i) => normal(shape, 40 + i))
    const fused = (await read(fusedSumOfSquares(tensors)))[0]!
    const composite = (await read(tf.sum(tf.stack(tensors.map((t) => tf.sum(tf.square(t)))))))[0]!
    expect(composite).toBeGreaterThan(0)
    expect(Math.abs(fused - composite) / composite).toBeLessThanOrEqual(tolerance)
    const info = await tf.profile(async () => {
      const norm = await globalNorm(new Map(tensors.map((t, i) => [`t${i}`, t])))
      expect(Math.abs(norm - Math.sqrt(composite)) / Math.sqrt(composite)).toBeLessThanOrEqual(tolerance)
      return tf.scalar(0)
    })
    expect(info.kernels.filter((k) => k.name === "TurnwiseSumOfSquares")).toHaveLength(2)
  })

  it("the model's entry points pick the fused kernel on webgpu", async () => {
    const x = normal([2, 16], 1) as tf.Tensor2D
    const w = normal([16], 2) as tf.Tensor1D
    const info = await tf.profile(() => rmsNorm(x, w, 1e-5))
    // The unnamed entry is the custom-gradient wrapper, which launches nothing itself.
    expect(info.kernels.map((k) => k.name).filter((name) => name !== "")).toEqual(["TurnwiseRmsNorm"])
  })
})

it.runIf(started !== undefined)(
  `webgpu ${skip ? "is skipped (TURNWISE_SKIP_WEBGPU=1)" : "must start here (set TURNWISE_SKIP_WEBGPU=1 to skip)"}: ${started?.message}`,
  () => {
    expect(skip, `webgpu could not be started: ${started?.message}`).toBe(true)
  },
)
