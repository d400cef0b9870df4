/**
 * The webgpu KV-cached decode (packages/runtime/src/model/inference.ts with
 * ./kernels/decode-*.ts): each of its shaders against tfjs's composite ops on small
 * random inputs, and whole greedy decodes of a tiny random model on webgpu against the
 * same decodes on wasm (the composite path), token for token; and the wasm decodes
 * against the uncached forward pass, through a compaction of the cache.
 *
 * Shapes are tiny (the software GPU is slow) but chosen to hit the shaders' edges: rows
 * fewer and more than a workgroup's 16, reduction lengths and output widths that are
 * not multiples of 64, a cache written after `past` slots with ragged masks.
 *
 * Tolerance of the shaders: max |fused - composite| / max |composite| <= 1e-4 (float32,
 * different summation orders). webgpu must start here; where it cannot (no GPU and no
 * Mesa EGL), the suite fails with the reason unless TURNWISE_SKIP_WEBGPU=1.
 */
import * as tf from "@tensorflow/tfjs"
import { afterAll, describe, expect, it } from "vitest"
import { setBackend } from "../../packages/runtime/src/backend.js"
import { decodeStep, prepareInference } from "../../packages/runtime/src/model/inference.js"
import { fusedPackedDecodeAttention } from "../../packages/runtime/src/model/kernels/decode-attention.js"
import { fusedCacheWrite } from "../../packages/runtime/src/model/kernels/decode-cache.js"
import { fusedDecodeLinear } from "../../packages/runtime/src/model/kernels/decode-linear.js"
import { createTransformer, MASKED, ropeTables } from "../../packages/runtime/src/model/transformer.js"
import { createSamplingSession } from "../../packages/runtime/src/sampler.js"
import { probeWebgpu, qwenLikeConfig, read, relDiff, skipWebgpu } from "./fixtures/webgpu-compare.js"

const tolerance = 1e-4
const skip = skipWebgpu
const started = await probeWebgpu()

const normal = <R extends tf.Rank>(shape: Array<number>, seed: number) => tf.randomNormal(shape, 0, 1, "float32", seed) as unknown as tf.Tensor<R>

/** Fused and composite agree and the reference is not all zeros. */
const expectClose = async (fused: tf.Tensor, composite: tf.Tensor, what: string) => {
  const want = await read(composite)
  expect(Math.max(...want.map(Math.abs)), `${what}: reference`).toBeGreaterThan(0)
  expect(relDiff(await read(fused), want), what).toBeLessThanOrEqual(tolerance)
}

const config = qwenLikeConfig(5)

interface Decoded {
  readonly greedy: ReadonlyArray<{ readonly tokens: ReadonlyArray<number>; readonly logprobs: ReadonlyArray<number> }>
  readonly kernels: ReadonlyArray<string>
  /** Each row's whole history, and the positions in it that were generated. */
  readonly histories: ReadonlyArray<ReadonlyArray<number>>
  readonly generated: ReadonlyArray<ReadonlyArray<number>>
  /** Tensors and data buffers alive after the session was disposed, less those alive before it was created. */
  readonly leaked: { readonly tensors: number; readonly buffers: number }
}

/**
 * Greedy, KV-cached decodes of three ragged rows on `backend`: all rows, then a tool
 * feedback on one row and two rows, then each row alone for 20 tokens, so the slots
 * pass 16, 32 and 64 (the webgpu cache doubles its capacity each time) and, near 80
 * slots, the sampler compacts the cache (by then most slots are invalid for every row).
 */
const greedyDecodes = async (backend: "wasm" | "webgpu"): Promise<Decoded> => {
  await setBackend(backend)
  const model = createTransformer(config)
  const before = tf.memory()
  const session = createSamplingSession(model, { rows: 3, seed: 1 })
  const generated: Array<Array<number>> = [[], [], []]
  const greedy = async (rows: Array<number>, maxNewTokens: number) => {
    const from = rows.map((r) => session.length(r))
    const out = await session.generateAsync(rows, { maxNewTokens, temperature: 0, eos: null })
    rows.forEach((r, i) => generated[r]!.push(...Array.from({ length: session.length(r) - from[i]! }, (_, j) => from[i]! + j)))
    return out
  }
  const kernels: Array<string> = []
  try {
    session.append(0, [256, 81, 58, 32])
    session.append(1, [256, 50, 43, 50, 61, 63, 10])
    session.append(2, [256, 7])
    const results = [...(await greedy([0, 1, 2], 6))]
    session.append(0, [60, 111, 62])
    results.push(...(await greedy([0, 2], 8)))
    const info = await tf.profile(async () => {
      for (const row of [0, 1, 2]) results.push(...(await greedy([row], 20)))
      return tf.scalar(0)
    })
    kernels.push(...info.kernels.map((k) => k.name))
    const histories = [0, 1, 2].map((r) => session.history(r))
    session.dispose()
    const after = tf.memory()
    // Less the profile's own result.
    const leaked = { tensors: after.numTensors - before.numTensors - 1, buffers: after.numDataBuffers - before.numDataBuffers - 1 }
    return { greedy: results.map((r) => ({ tokens: r.tokens, logprobs: r.logprobs })), kernels, histories, generated, leaked }
  } finally {
    session.dispose()
    model.dispose()
  }
}

it("the composite decode on wasm: greedy tokens through cache compaction are the uncached model's argmax", async () => {
  const decoded = await greedyDecodes("wasm")
  const model = createTransformer(config)
  decoded.histories.forEach((history, r) => {
    const argmax = tf.tidy(() => Array.from(tf.argMax(model.logits(tf.tensor2d([[...history]], [1, history.length], "int32")), -1).dataSync()))
    expect(decoded.generated[r]!.length, `row ${r}`).toBeGreaterThan(20)
    expect(decoded.generated[r]!.map((p) => history[p]), `row ${r}`).toEqual(decoded.generated[r]!.map((p) => argmax[p - 1]))
  })
  model.dispose()
})

describe.runIf(started === undefined)("the webgpu KV-cached decode", () => {
  afterAll(async () => {
    await setBackend("wasm")
  })

  it("decode linear: normalize + bias, plain + residual and SwiGLU + residual prologues against composite ops", async () => {
    await setBackend("webgpu")
    // 5 rows (part of one 16-row tile) and 19 (two tiles); K = 70 and out = 130 are not multiples of 64.
    for (const rows of [5, 19]) {
      const [K, out, eps] = [70, 130, 1e-5]
      const x = normal<tf.Rank.R2>([rows, K], 60 + rows)
      const w = normal<tf.Rank.R2>([K, out], 61)
      const b = normal<tf.Rank.R1>([out], 62)
      const residual = normal<tf.Rank.R2>([rows, out], 63)
      const normalized = tf.mul(x, tf.rsqrt(tf.add(tf.mean(tf.square(x), -1, true), eps)))
      await expectClose(fusedDecodeLinear(x, w, { prologue: "normalize", eps, bias: b }), tf.add(tf.matMul(normalized, w), b), `normalize, ${rows} rows`)
      await expectClose(fusedDecodeLinear(x, w, { prologue: "none", residual }), tf.add(tf.matMul(x, w), residual), `plain, ${rows} rows`)
      const gateUp = normal<tf.Rank.R2>([rows, 2 * K], 64)
      const [gate, up] = tf.split(gateUp, 2, 1) as [tf.Tensor2D, tf.Tensor2D]
      const act = tf.mul(tf.mul(gate, tf.sigmoid(gate)), up)
      await expectClose(fusedDecodeLinear(gateUp, w, { prologue: "swiglu", residual }), tf.add(tf.matMul(act, w), residual), `swiglu, ${rows} rows`)
    }
  })

  it("cache write: rotary keys and values land in slots past..past+T-1 in place, the other slots keep their values", async () => {
    await setBackend("webgpu")
    const [B, T, H, Hkv, Dh, C, past] = [2, 2, 4, 2, 8, 8, 3]
    const QK = (H + Hkv) * Dh
    const P = 2 * QK + Hkv * Dh
    const { cos, sin } = ropeTables([4, 5, 1, 2], B, T, Dh, 10000)
    const qkv = normal<tf.Rank.R2>([B * T, P], 70)
    const before = normal<tf.Rank.R4>([B, Hkv, C, 2 * Dh], 71)
    const old = await read(before)
    const after = fusedCacheWrite(before, qkv, cos, sin, H, past)
    // The returned tensor shares the given one's buffer and outlives it.
    before.dispose()
    const got = await read(after)
    const q = await read(qkv)
    const [c, s] = [await read(cos), await read(sin)]
    const want = Float32Array.from(old)
    for (let b = 0; b < B; b++) {
      for (let t = 0; t < T; t++) {
        const row = (b * T + t) * P
        for (let j = 0; j < Hkv; j++) {
          const slot = ((b * Hkv + j) * C + past + t) * 2 * Dh
          for (let d = 0; d < Dh; d++) {
            const col = (H + j) * Dh + d
            const table = (b * T + t) * Dh + d
            want[slot + d] = q[row + col]! * c[table]! + q[row + QK + col]! * s[table]!
            want[slot + Dh + d] = q[row + 2 * QK + j * Dh + d]!
          }
        }
      }
    }
    expect(relDiff(got, want)).toBeLessThanOrEqual(tolerance)
    expect(relDiff(want, old), "the write changes something").toBeGreaterThan(0.01)
    after.dispose()
  })

  it("packed attention with rotary on the queries: ragged masks, slots fewer than the capacity, one and two chunks of 64 slots, against composite ops", async () => {
    await setBackend("webgpu")
    // Dh = 80: threads own two head dimensions each; S = 70: two chunks of slots.
    for (const [Dh, C, S] of [[8, 8, 5], [80, 80, 70]] as const) {
      const [B, T, H, Hkv] = [2, 2, 4, 2]
      const QK = (H + Hkv) * Dh
      const { cos, sin } = ropeTables([S - 2, S - 1, 1, 2], B, T, Dh, 10000)
      const qkv = normal<tf.Rank.R2>([B * T, 2 * QK + Hkv * Dh], 80 + S)
      const cache = normal<tf.Rank.R4>([B, Hkv, C, 2 * Dh], 81 + S)
      // Row 0 sees every slot but the future one; row 1 has its first two slots masked (a shorter, ragged row).
      const m = new Float32Array(B * T * S)
      m[S - 1] = MASKED
      for (let t = 0; t < T; t++) for (let s = 0; s < 2; s++) m[(T + t) * S + s] = MASKED
      const bias = tf.tensor3d(m, [B, T, S])
      const got = fusedPackedDecodeAttention(qkv, cos, sin, cache, bias, H)
      // Composite: rotary on the query columns, then query head h reads kv head floor(h / G).
      const qRaw = tf.reshape(tf.slice(qkv, [0, 0], [B * T, H * Dh]), [B, T, H, Dh])
      const qRot = tf.reshape(tf.slice(qkv, [0, QK], [B * T, H * Dh]), [B, T, H, Dh])
      const q = tf.transpose(tf.add(tf.mul(qRaw, cos), tf.mul(qRot, sin)), [0, 2, 1, 3]) // [B, H, T, Dh]
      const heads = tf.tensor1d(Array.from({ length: H }, (_, h) => Math.floor(h / (H / Hkv))), "int32")
      const used = tf.gather(tf.slice(cache, [0, 0, 0, 0], [B, Hkv, S, 2 * Dh]), heads, 1) // [B, H, S, 2*Dh]
      const k = tf.slice(used, [0, 0, 0, 0], [B, H, S, Dh])
      const v = tf.slice(used, [0, 0, 0, Dh], [B, H, S, Dh])
      const scores = tf.add(tf.matMul(q, k, false, true), tf.reshape(bias, [B, 1, T, S])) // [B, H, T, S]
      const y = tf.matMul(tf.softmax(scores), v) // [B, H, T, Dh]
      await expectClose(got, tf.reshape(tf.transpose(y, [0, 2, 1, 3]), [B * T, H * Dh]), `attention, Dh ${Dh}, ${S} slots`)
    }
  })

  it("one decoded token runs 6 kernels per layer plus the embedding and the head", async () => {
    await setBackend("webgpu")
    const model = createTransformer(config)
    const weights = prepareInference(model)
    const prompt = tf.tensor2d([[256, 10, 20], [256, 30, 40]], [2, 3], "int32")
    const causal = Float32Array.from({ length: 2 * 9 }, (_, i) => (i % 3 <= Math.floor(i / 3) % 3 ? 0 : MASKED))
    const prefill = decodeStep(model, weights, prompt, [0, 1, 2, 0, 1, 2], causal, [2, 2], undefined)
    const next = tf.tensor2d([[50], [60]], [2, 1], "int32")
    const info = await tf.profile(() => {
      const step = decodeStep(model, weights, next, [3, 3], new Float32Array(2 * 4), [0, 0], prefill.cache)
      step.cache.dispose()
      return step.logits
    })
    const kernels = info.kernels.map((k) => k.name).filter((name) => name !== "Reshape")
    expect(kernels).toHaveLength(6 * config.nLayers + 2)
    expect(kernels.filter((name) => name === "TurnwiseDecodeLinear")).toHaveLength(4 * config.nLayers + 1)
    tf.dispose([prompt, next, prefill.logits])
    prefill.cache.dispose()
    weights.dispose()
    model.dispose()
  })

  it("greedy decodes of ragged rows give wasm's tokens and logprobs, through cache growth and compaction", async () => {
    const reference = await greedyDecodes("wasm")
    const got = await greedyDecodes("webgpu")
    expect(reference.greedy.map((g) => g.tokens.length)).toEqual([6, 6, 6, 8, 8, 20, 20, 20])
    expect(got.greedy.map((g) => g.tokens)).toEqual(reference.greedy.map((g) => g.tokens))
    got.greedy.forEach((g, i) => expect(relDiff(g.logprobs, reference.greedy[i]!.logprobs), `call ${i}`).toBeLessThanOrEqual(1e-3))
    // In the profiled part the webgpu cache doubled twice (32 -> 64 -> 128 slots) and was
    // compacted once (a gather over slots, padded back to the capacity): a pad per layer each time.
    expect(got.kernels.filter((name) => name === "PadV2")).toHaveLength(3 * config.nLayers)
    expect(got.kernels).toContain("TurnwiseDecodeCacheWrite")
    // The composite path on wasm is untouched by the packed form.
    expect(reference.kernels).not.toContain("TurnwiseDecodeCacheWrite")
    expect(reference.kernels).toContain("Concat")
    // The in-place cache writes share buffers by reference count: all are freed with the session.
    expect(got.leaked).toEqual({ tensors: 0, buffers: 0 })
    expect(reference.leaked).toEqual({ tensors: 0, buffers: 0 })
  }, 120_000)
})

it.runIf(started !== undefined)(
  `webgpu ${skip ? "is skipped (TURNWISE_SKIP_WEBGPU=1)" : "must start here (set TURNWISE_SKIP_WEBGPU=1 to skip)"}: ${started?.message}`,
  () => {
    expect(skip, `webgpu could not be started: ${started?.message}`).toBe(true)
  },
)
