import * as tf from "@tensorflow/tfjs"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { setBackend } from "../../packages/runtime/src/backend.js"
import { decodeModelConfig, ModelConfigError, parameterCount, presets, type ModelConfig } from "../../packages/runtime/src/model/config.js"
import { embedding, linear, matmul } from "../../packages/runtime/src/model/linear.js"
import { createTransformer, ModelInputError, type Transformer } from "../../packages/runtime/src/model/transformer.js"
import { Rng } from "../../packages/core/src/rng.js"

const small: ModelConfig = { ...presets.tiny, dModel: 16, nLayers: 2, nHeads: 4, nKvHeads: 2, dFf: 24, maxSeqLen: 32, seed: 3 }
const qwenLike: ModelConfig = { ...small, qkvBias: true, tieEmbeddings: false, ropeTheta: 1e6 }

const configError = (raw: unknown): string => {
  try {
    decodeModelConfig(raw)
  } catch (e) {
    if (e instanceof ModelConfigError) return e.message
    throw e
  }
  throw new Error("expected a ModelConfigError")
}

const values = (m: Transformer): Record<string, Array<number>> => Object.fromEntries([...m.variables].map(([k, v]) => [k, Array.from(v.dataSync())]))

const int2d = (rows: Array<Array<number>>) => tf.tensor2d(rows, [rows.length, rows[0]?.length ?? 0], "int32")

/** A plain-JS float64 forward pass of one sequence, written independently from HF's Llama definition. */
const referenceLogits = (m: Transformer, tokens: Array<number>): Array<Array<number>> => {
  const c = m.config
  const W = (name: string) => {
    const v = m.variables.get(name)
    if (v === undefined) throw new Error(name)
    const data = Array.from(v.dataSync())
    const cols = v.shape[1] ?? 1
    return { data, at: (i: number, j = 0) => data[i * cols + j] ?? NaN }
  }
  const lin = (x: Array<number>, name: string, out: number, bias: boolean) => {
    const w = W(`${name}.weight`)
    const b = bias ? W(`${name}.bias`) : undefined
    return Array.from({ length: out }, (_, o) => x.reduce((s, xi, i) => s + xi * w.at(o, i), b?.data[o] ?? 0))
  }
  const norm = (x: Array<number>, name: string) => {
    const w = W(name).data
    const r = 1 / Math.sqrt(x.reduce((s, v) => s + v * v, 0) / x.length + c.normEps)
    return x.map((v, i) => v * r * (w[i] ?? NaN))
  }
  const Dh = c.dModel / c.nHeads
  const rope = (vec: Array<number>, pos: number) => {
    const out = [...vec]
    for (let j = 0; j < Dh / 2; j++) {
      const a = pos * Math.pow(c.ropeTheta, (-2 * j) / Dh)
      const x1 = vec[j] ?? NaN
      const x2 = vec[j + Dh / 2] ?? NaN
      out[j] = x1 * Math.cos(a) - x2 * Math.sin(a)
      out[j + Dh / 2] = x2 * Math.cos(a) + x1 * Math.sin(a)
    }
    return out
  }
  const emb = W("model.embed_tokens.weight")
  let xs = tokens.map((t) => Array.from({ length: c.dModel }, (_, d) => emb.at(t, d)))
  const dKv = Dh * c.nKvHeads
  for (let l = 0; l < c.nLayers; l++) {
    const p = `model.layers.${l}`
    const h = xs.map((x) => norm(x, `${p}.input_layernorm.weight`))
    const q = h.map((x, t) => {
      const v = lin(x, `${p}.self_attn.q_proj`, c.dModel, c.qkvBias)
      return Array.from({ length: c.nHeads }, (_, hd) => rope(v.slice(hd * Dh, (hd + 1) * Dh), t))
    })
    const k = h.map((x, t) => {
      const v = lin(x, `${p}.self_attn.k_proj`, dKv, c.qkvBias)
      return Array.from({ length: c.nKvHeads }, (_, hd) => rope(v.slice(hd * Dh, (hd + 1) * Dh), t))
    })
    const v = h.map((x) => {
      const o = lin(x, `${p}.self_attn.v_proj`, dKv, c.qkvBias)
      return Array.from({ length: c.nKvHeads }, (_, hd) => o.slice(hd * Dh, (hd + 1) * Dh))
    })
    const group = c.nHeads / c.nKvHeads
    const attn = q.map((qt, t) =>
      qt.flatMap((qh, hd) => {
        const kv = Math.floor(hd / group)
        const scores = Array.from({ length: t + 1 }, (_, s) => qh.reduce((acc, qi, i) => acc + qi * (k[s]?.[kv]?.[i] ?? NaN), 0) / Math.sqrt(Dh))
        const mx = Math.max(...scores)
        const e = scores.map((s) => Math.exp(s - mx))
        const z = e.reduce((a, b) => a + b, 0)
        return Array.from({ length: Dh }, (_, i) => e.reduce((acc, w, s) => acc + (w / z) * (v[s]?.[kv]?.[i] ?? NaN), 0))
      })
    )
    xs = xs.map((x, t) => {
      const o = lin(attn[t] ?? [], `${p}.self_attn.o_proj`, c.dModel, false)
      const r = x.map((xi, i) => xi + (o[i] ?? NaN))
      const n = norm(r, `${p}.post_attention_layernorm.weight`)
      const g = lin(n, `${p}.mlp.gate_proj`, c.dFf, false)
      const u = lin(n, `${p}.mlp.up_proj`, c.dFf, false)
      const act = g.map((gi, i) => (gi / (1 + Math.exp(-gi))) * (u[i] ?? NaN))
      const d = lin(act, `${p}.mlp.down_proj`, c.dModel, false)
      return r.map((ri, i) => ri + (d[i] ?? NaN))
    })
  }
  const head = c.tieEmbeddings ? "model.embed_tokens" : "lm_head"
  return xs.map((x) => lin(norm(x, "model.norm.weight"), head, c.vocabSize, false))
}

describe("ModelConfig", () => {
  it("accepts the presets, whose sizes are as advertised", () => {
    for (const p of Object.values(presets)) expect(decodeModelConfig(p)).toEqual(p)
    expect(parameterCount(presets.tiny)).toBeGreaterThan(200_000)
    expect(parameterCount(presets.tiny)).toBeLessThan(500_000)
    expect(parameterCount(presets.small)).toBeGreaterThan(800_000)
    expect(parameterCount(presets.small)).toBeLessThan(1_300_000)
    expect(parameterCount(presets.medium)).toBeGreaterThan(8_000_000)
    expect(parameterCount(presets.medium)).toBeLessThan(12_000_000)
  })

  it("names each broken rule", () => {
    expect(configError({ ...presets.tiny, dModel: 66, nHeads: 4 })).toContain("dModel (66) is not a multiple of nHeads (4)")
    expect(configError({ ...presets.tiny, nKvHeads: 3 })).toContain("nHeads (4) is not a multiple of nKvHeads (3)")
    expect(configError({ ...presets.tiny, dModel: 12, nHeads: 4, nKvHeads: 1 })).toContain("must be even")
    expect(configError({ ...presets.tiny, dFf: -1 })).toContain("dFf")
    expect(configError({ ...presets.tiny, nLayers: 1.5 })).toContain("nLayers")
    const { seed: _seed, ...missing } = presets.tiny
    expect(configError(missing)).toContain("seed")
  })
})

describe.each(["cpu", "wasm"] as const)("transformer on %s", (backend) => {
  let model: Transformer
  let qwen: Transformer
  beforeAll(async () => {
    await setBackend(backend)
    model = createTransformer(small)
    qwen = createTransformer(qwenLike)
    // Give biases non-zero values so the reference comparison exercises them.
    for (const [name, v] of qwen.variables) if (name.endsWith(".bias")) v.assign(tf.randomUniform(v.shape, -0.5, 0.5, "float32", 9))
  })
  afterAll(() => {
    model.dispose()
    qwen.dispose()
  })

  it("names weights like Hugging Face Llama/Qwen2, in [out, in] layout", () => {
    const shapes = Object.fromEntries([...qwen.variables].map(([k, v]) => [k, v.shape]))
    expect(Object.keys(shapes)).toHaveLength(2 + 2 * 12 + 1)
    expect(shapes["model.embed_tokens.weight"]).toEqual([259, 16])
    expect(shapes["model.layers.1.self_attn.q_proj.weight"]).toEqual([16, 16])
    expect(shapes["model.layers.1.self_attn.k_proj.weight"]).toEqual([8, 16])
    expect(shapes["model.layers.1.self_attn.v_proj.bias"]).toEqual([8])
    expect(shapes["model.layers.0.mlp.gate_proj.weight"]).toEqual([24, 16])
    expect(shapes["model.layers.0.mlp.down_proj.weight"]).toEqual([16, 24])
    expect(shapes["model.layers.0.post_attention_layernorm.weight"]).toEqual([16])
    expect(shapes["model.norm.weight"]).toEqual([16])
    expect(shapes["lm_head.weight"]).toEqual([259, 16])
    expect(model.variables.has("lm_head.weight")).toBe(false)
    const total = [...qwen.variables.values()].reduce((s, v) => s + v.size, 0)
    expect(total).toBe(parameterCount(qwenLike))
  })

  it("initialises from the seed: same seed same weights, other seed other weights", () => {
    const again = createTransformer(small)
    const other = createTransformer({ ...small, seed: 4 })
    expect(values(again)).toEqual(values(model))
    const a = values(model)["model.layers.0.self_attn.q_proj.weight"] ?? []
    const b = values(other)["model.layers.0.self_attn.q_proj.weight"] ?? []
    expect(a).not.toEqual(b)
    const std = Math.sqrt(a.reduce((s, x) => s + x * x, 0) / a.length)
    expect(std).toBeGreaterThan(0.015)
    expect(std).toBeLessThan(0.025)
    again.dispose()
    other.dispose()
  })

  it("draws the same weights on every backend (values are generated in JS)", async () => {
    // Exact float32 values from the seed; a change of init code or order changes them.
    const first = values(model)["model.embed_tokens.weight"]?.slice(0, 3) ?? []
    const rng = Rng.fromSeed(small.seed)
    const local = rng.fork()
    expect(first).toEqual([0, 1, 2].map(() => Math.fround(local.normal() * small.initStd)))
  })

  it("matches an independent float64 reference forward (RoPE, GQA, SwiGLU, bias, untied head)", () => {
    for (const m of [model, qwen]) {
      const tokens = [256, 72, 101, 108, 108, 111, 33]
      const expected = referenceLogits(m, tokens)
      const got = m.logits(int2d([tokens])).arraySync()[0] ?? []
      for (let t = 0; t < tokens.length; t++) {
        for (let v = 0; v < 259; v += 7) expect(got[t]?.[v]).toBeCloseTo(expected[t]?.[v] ?? NaN, 4)
      }
    }
  })

  it("returns [B, T, V] logits and is causal", () => {
    const a = model.logits(int2d([[256, 1, 2, 3, 4, 5], [256, 9, 8, 7, 6, 5]]))
    expect(a.shape).toEqual([2, 6, 259])
    const b = model.logits(int2d([[256, 1, 2, 3, 200, 201], [256, 9, 8, 7, 6, 5]]))
    const av = a.arraySync()
    const bv = b.arraySync()
    for (let t = 0; t < 4; t++) for (let v = 0; v < 259; v++) expect(bv[0]?.[t]?.[v]).toBeCloseTo(av[0]?.[t]?.[v] ?? NaN, 5)
    expect(Math.abs((bv[0]?.[4]?.[0] ?? 0) - (av[0]?.[4]?.[0] ?? 0))).toBeGreaterThan(1e-6)
    expect(bv[1]).toEqual(av[1])
  })

  it("rejects sequences longer than maxSeqLen and non-int32 tokens", () => {
    expect(() => model.logits(int2d([Array.from({ length: 33 }, () => 1)]))).toThrow(ModelInputError)
    expect(() => model.logits(int2d([Array.from({ length: 33 }, () => 1)]))).toThrow(/sequence length 33 exceeds maxSeqLen 32/)
    expect(() => model.logits(tf.tensor2d([[1, 2]], [1, 2], "float32"))).toThrow(/must be int32/)
  })

  it("gives final-norm hidden states of shape [B, T, D]", () => {
    const h = model.hiddenStates(int2d([[256, 5, 6]]))
    expect(h.shape).toEqual([1, 3, 16])
    // RMSNorm with unit weights: every vector has root-mean-square 1 (up to eps against tiny activations).
    for (const vec of h.arraySync()[0] ?? []) expect(Math.sqrt(vec.reduce((s, x) => s + x * x, 0) / vec.length)).toBeCloseTo(1, 2)
  })

  it("tokenLogprobs equals log_softmax(logits / temperature) gathered by hand", () => {
    const tokens = [
      [256, 10, 20, 30, 40],
      [256, 50, 60, 70, 80],
    ]
    for (const temperature of [1, 0.7]) {
      const logits = model.logits(int2d(tokens)).arraySync()
      const lp = model.tokenLogprobs(int2d(tokens), temperature).arraySync()
      for (let b = 0; b < 2; b++) {
        expect(lp[b]?.[0]).toBe(0)
        for (let k = 1; k < 5; k++) {
          const row = (logits[b]?.[k - 1] ?? []).map((x) => x / temperature)
          const mx = Math.max(...row)
          const lse = mx + Math.log(row.reduce((s, x) => s + Math.exp(x - mx), 0))
          expect(lp[b]?.[k]).toBeCloseTo((row[tokens[b]?.[k] ?? 0] ?? NaN) - lse, 4)
        }
      }
    }
  })

  it("embedding, linear and matmul gradients match finite differences", () => {
    const rng = Rng.fromSeed(1)
    const rand = (shape: Array<number>) => tf.tensor(Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => rng.normal()), shape)
    const ids = tf.tensor1d([2, 0, 2, 4], "int32")
    const cases: Array<{ name: string; inputs: Array<tf.Tensor>; f: (...xs: Array<tf.Tensor>) => tf.Tensor }> = [
      { name: "embedding", inputs: [rand([5, 3])], f: (t) => embedding(t as tf.Tensor2D, ids) },
      { name: "linear", inputs: [rand([4, 3]), rand([2, 3]), rand([2])], f: (x, w, b) => linear(x as tf.Tensor2D, w as tf.Tensor2D, b as tf.Tensor1D) },
      { name: "matmul", inputs: [rand([2, 3, 4]), rand([2, 4, 5])], f: (a, b) => matmul(a as tf.Tensor3D, b as tf.Tensor3D) },
    ]
    for (const { inputs, f } of cases) {
      const probe = tf.tidy(() => rand(f(...inputs).shape)) // loss = sum(f(inputs) * probe)
      const loss = (...xs: Array<tf.Tensor>) => tf.sum(tf.mul(f(...xs), probe)) as tf.Scalar
      const grads = tf.grads(loss)(inputs)
      inputs.forEach((input, which) => {
        const g = grads[which]?.dataSync() ?? new Float32Array()
        const base = input.dataSync()
        for (let i = 0; i < base.length; i++) {
          const bump = (delta: number) => {
            const moved = Float32Array.from(base)
            moved[i] = (moved[i] ?? 0) + delta
            const xs = inputs.map((x, j) => (j === which ? tf.tensor(moved, x.shape) : x))
            return loss(...xs).dataSync()[0] ?? NaN
          }
          const numeric = (bump(0.01) - bump(-0.01)) / 0.02 // exact for these (bi)linear maps up to rounding
          expect(g[i]).toBeCloseTo(numeric, 2)
        }
      })
    }
  })

  it("whole-model gradients match finite differences", () => {
    const tokens = int2d([[256, 3, 1, 4, 1, 5]])
    const loss = () => tf.neg(tf.sum(qwen.tokenLogprobs(tokens, 1))) as tf.Scalar
    const { grads } = tf.variableGrads(loss, [...qwen.variables.values()])
    const probes: Array<[string, number]> = [
      ["model.embed_tokens.weight", 3 * 16 + 2],
      ["model.layers.0.self_attn.q_proj.weight", 17],
      ["model.layers.0.self_attn.v_proj.bias", 5],
      ["model.layers.1.mlp.down_proj.weight", 40],
      ["model.layers.0.input_layernorm.weight", 7],
      ["lm_head.weight", 1 * 16 + 3],
    ]
    for (const [name, index] of probes) {
      const v = qwen.variables.get(name)
      if (v === undefined) throw new Error(name)
      const analytic = grads[v.name]?.dataSync()[index] ?? NaN
      const original = Float32Array.from(v.dataSync())
      const at = (delta: number) => {
        const moved = Float32Array.from(original)
        moved[index] = (moved[index] ?? 0) + delta
        v.assign(tf.tensor(moved, v.shape))
        return loss().dataSync()[0] ?? NaN
      }
      const eps = 3e-3
      const numeric = (at(eps) - at(-eps)) / (2 * eps)
      v.assign(tf.tensor(original, v.shape))
      expect(Math.abs(analytic - numeric)).toBeLessThan(2e-2 * Math.max(1, Math.abs(numeric)))
      expect(Math.abs(analytic)).toBeGreaterThan(1e-4) // the probe actually reaches the loss
    }
  })
})
