/**
 * A Llama/Qwen2-family decoder-only transformer in tfjs, read top to bottom:
 * token embedding -> nLayers x [RMSNorm -> grouped-query attention with rotary
 * positions -> residual -> RMSNorm -> SwiGLU MLP -> residual] -> RMSNorm -> lm head.
 *
 * Weights are tf.Variables named exactly as in Hugging Face Llama/Qwen2 checkpoints
 * (`model.layers.0.self_attn.q_proj.weight`, ...) in HF's [out, in] layout, so
 * checkpoints map by name. Initialisation draws every value in JS from {@link Rng}
 * seeded with `config.seed`, so the same seed gives the same weights on every backend.
 *
 * This file is the reference definition, differentiable, used for training and
 * scoring. The KV-cached sampler runs an equivalent, faster formulation of the same
 * network (./inference.ts); tests hold the two to the same outputs.
 *
 * @category models
 */
import * as tf from "@tensorflow/tfjs"
import { Data } from "effect"
import { Rng } from "@turnwise/core"
import { decodeModelConfig, type ModelConfig, type RopeScaling } from "./config.js"
import { causalAttention } from "./kernels/attention.js"
import { rmsNorm } from "./kernels/rms-norm.js"
import { rope } from "./kernels/rope.js"
import { swiGlu } from "./kernels/swiglu.js"
import { tokenLogprobsFromLogits } from "./kernels/token-logprobs.js"
import { embedding, linear } from "./linear.js"
import type { TrainableModel } from "./types.js"

/**
 * Tokens given to the model do not fit it.
 *
 * @example
 * throw new ModelInputError({ fn: "logits", problem: "sequence length 600 exceeds maxSeqLen 512" })
 */
export class ModelInputError extends Data.TaggedError("ModelInputError")<{
  readonly fn: string
  readonly problem: string
}> {
  override get message(): string {
    return `Transformer.${this.fn}: ${this.problem}`
  }
}

/**
 * Additive mask value for slots a query may not see (finite, so fully masked rows stay NaN-free).
 *
 * @example
 * mask[t * S + s] = s <= t ? 0 : MASKED
 */
export const MASKED = -1e9

/**
 * The rotary frequencies of one head, HF convention: theta^(-2j/Dh) for j < Dh/2,
 * rescaled as `scaling` says (see {@link RopeScaling}).
 *
 * @example
 * ropeFrequencies(4, 10000) // [1, 0.01]
 */
export const ropeFrequencies = (dHead: number, theta: number, scaling?: RopeScaling): Array<number> => {
  const base = Array.from({ length: dHead / 2 }, (_, j) => Math.pow(theta, (-2 * j) / dHead))
  if (scaling === undefined) return base
  if (scaling.kind === "linear") return base.map((f) => f / scaling.factor)
  const { factor, lowFreqFactor, highFreqFactor, originalMaxPositions } = scaling
  const longest = originalMaxPositions / lowFreqFactor // wavelengths above it are interpolated fully
  const shortest = originalMaxPositions / highFreqFactor // wavelengths below it are kept
  return base.map((f) => {
    const wavelength = (2 * Math.PI) / f
    if (wavelength < shortest) return f
    if (wavelength > longest) return f / factor
    const smooth = (originalMaxPositions / wavelength - lowFreqFactor) / (highFreqFactor - lowFreqFactor)
    return (1 - smooth) * (f / factor) + smooth * f
  })
}

/**
 * Rotary cos/sin tables for explicit positions ([rows * steps], row-major), HF
 * convention: each frequency of {@link ropeFrequencies} repeated twice along the head
 * dimension. Shared with the cached inference path (./inference.ts).
 *
 * @example
 * const { cos, sin } = ropeTables([0, 1, 2], 1, 3, 16, 10000) // [1, 3, 1, 16] each
 */
export const ropeTables = (positions: ArrayLike<number>, rows: number, steps: number, dHead: number, theta: number, scaling?: RopeScaling) => {
  const half = dHead / 2
  const freqs = ropeFrequencies(dHead, theta, scaling)
  const cos = new Float32Array(rows * steps * dHead)
  const sin = new Float32Array(rows * steps * dHead)
  for (let i = 0; i < rows * steps; i++) {
    const pos = positions[i] ?? 0
    for (let j = 0; j < half; j++) {
      const angle = pos * (freqs[j] ?? 0)
      const c = Math.cos(angle)
      const s = Math.sin(angle)
      cos[i * dHead + j] = c
      cos[i * dHead + j + half] = c
      sin[i * dHead + j] = s
      sin[i * dHead + j + half] = s
    }
  }
  return {
    cos: tf.tensor4d(cos, [rows, steps, 1, dHead]), // [B, T, 1, Dh]
    sin: tf.tensor4d(sin, [rows, steps, 1, dHead]), // [B, T, 1, Dh]
  }
}

/** Everything one training forward pass needs besides the tokens. */
interface ForwardContext {
  readonly cos: tf.Tensor4D // [1, T, 1, Dh]
  readonly sin: tf.Tensor4D // [1, T, 1, Dh]
  readonly mask: tf.Tensor4D // [1, 1, T, T] additive causal mask (0 visible, MASKED hidden)
}

/**
 * The transformer. Build one with {@link createTransformer}.
 *
 * @example
 * const model = createTransformer({ ...presets.tiny, seed: 1 })
 * const logits = model.logits(tf.tensor2d([[256, 72, 105]], [1, 3], "int32")) // [1, 3, 259]
 */
export class Transformer implements TrainableModel {
  readonly variables: ReadonlyMap<string, tf.Variable>
  readonly vocabSize: number
  readonly maxSeqLen: number
  readonly dHead: number
  private causalMask: tf.Tensor4D | undefined

  /**
   * `weights`, when given, are the model's variables (as {@link parameterShapes} lists
   * them, e.g. loaded from a pretrained checkpoint) instead of fresh ones drawn from
   * `config.seed`; the model owns them from then on.
   */
  constructor(
    readonly config: ModelConfig,
    weights?: ReadonlyMap<string, tf.Variable>,
  ) {
    this.vocabSize = config.vocabSize
    this.maxSeqLen = config.maxSeqLen
    this.dHead = config.dModel / config.nHeads
    this.variables = weights === undefined ? initVariables(config) : checkWeights(config, weights)
  }

  private w(name: string): tf.Variable {
    const v = this.variables.get(name)
    if (v === undefined) throw new Error(`Transformer: no variable named ${name}`)
    return v
  }

  private proj(name: string, x: tf.Tensor2D, bias = false): tf.Tensor2D {
    const w = this.w(`${name}.weight`) as tf.Variable<tf.Rank.R2>
    const b = bias ? (this.w(`${name}.bias`) as tf.Variable<tf.Rank.R1>) : undefined
    return linear(x, w, b)
  }

  // RMSNorm, rotary positions, SwiGLU and the log-prob head run as fused shaders on webgpu
  // and as tfjs's composite ops elsewhere (./kernels/).
  private rmsNorm(x: tf.Tensor2D, weight: string): tf.Tensor2D {
    return rmsNorm(x, this.w(weight) as tf.Variable<tf.Rank.R1>, this.config.normEps) // [N, D]
  }

  /** x * cos + rotate_half(x) * sin, rotate_half(x) = [-x2, x1]. */
  private rope(x: tf.Tensor4D, ctx: ForwardContext): tf.Tensor4D {
    return rope(x, ctx.cos, ctx.sin) // [B, T, H, Dh]
  }

  private attention(x: tf.Tensor2D, B: number, T: number, i: number, ctx: ForwardContext): tf.Tensor2D {
    const { nHeads: H, nKvHeads: Hkv, qkvBias } = this.config
    const Dh = this.dHead
    const p = `model.layers.${i}.self_attn`
    const q = this.rope(tf.reshape(this.proj(`${p}.q_proj`, x, qkvBias), [B, T, H, Dh]), ctx) // [B, T, H, Dh]
    const k = this.rope(tf.reshape(this.proj(`${p}.k_proj`, x, qkvBias), [B, T, Hkv, Dh]), ctx) // [B, T, Hkv, Dh]
    const v = tf.reshape<tf.Rank.R4>(this.proj(`${p}.v_proj`, x, qkvBias), [B, T, Hkv, Dh]) // [B, T, Hkv, Dh]
    // Flash-style fused shaders on webgpu; transposes, batched products and softmax elsewhere (./kernels/attention.ts).
    const y = causalAttention(q, k, v, ctx.mask) // [B, T, H, Dh]
    const merged = tf.reshape<tf.Rank.R2>(y, [B * T, H * Dh]) // [B*T, D]
    return this.proj(`${p}.o_proj`, merged) // [B*T, D]
  }

  private mlp(x: tf.Tensor2D, i: number): tf.Tensor2D {
    const p = `model.layers.${i}.mlp`
    const gate = this.proj(`${p}.gate_proj`, x) // [N, F]
    const up = this.proj(`${p}.up_proj`, x) // [N, F]
    const act = swiGlu(gate, up) // SiLU(gate) * up: [N, F]
    return this.proj(`${p}.down_proj`, act) // [N, D]
  }

  /** Final-norm hidden states. tokens: [B, T] -> hidden [B*T, D]. */
  private forward(tokens: tf.Tensor2D, ctx: ForwardContext): tf.Tensor2D {
    const [B, T] = tokens.shape
    let x = embedding(this.w("model.embed_tokens.weight") as tf.Variable<tf.Rank.R2>, tf.reshape<tf.Rank.R1>(tokens, [B * T])) // [B*T, D]
    for (let i = 0; i < this.config.nLayers; i++) {
      x = tf.add(x, this.attention(this.rmsNorm(x, `model.layers.${i}.input_layernorm.weight`), B, T, i, ctx)) // [B*T, D]
      x = tf.add(x, this.mlp(this.rmsNorm(x, `model.layers.${i}.post_attention_layernorm.weight`), i)) // [B*T, D]
    }
    return this.rmsNorm(x, "model.norm.weight") // [B*T, D]
  }

  private headName(): string {
    return this.config.tieEmbeddings ? "model.embed_tokens.weight" : "lm_head.weight"
  }

  private head(hidden: tf.Tensor2D): tf.Tensor2D {
    return linear(hidden, this.w(this.headName()) as tf.Variable<tf.Rank.R2>) // [N, V]
  }

  private trainingContext(tokens: tf.Tensor2D, fn: string): ForwardContext {
    const T = tokens.shape[1]
    if (tokens.dtype !== "int32") throw new ModelInputError({ fn, problem: `tokens must be int32, got ${tokens.dtype}` })
    if (T > this.maxSeqLen) throw new ModelInputError({ fn, problem: `sequence length ${T} exceeds maxSeqLen ${this.maxSeqLen}` })
    if (this.causalMask === undefined) {
      // One mask at the longest length, built once; shorter sequences use its top-left corner.
      const L = this.maxSeqLen
      const m = new Float32Array(L * L)
      for (let t = 0; t < L; t++) for (let s = t + 1; s < L; s++) m[t * L + s] = MASKED
      this.causalMask = tf.keep(tf.tensor4d(m, [1, 1, L, L])) // [1, 1, L, L]
    }
    const mask = tf.slice(this.causalMask, [0, 0, 0, 0], [1, 1, T, T]) // [1, 1, T, T]
    const positions = Array.from({ length: T }, (_, t) => t)
    return { ...ropeTables(positions, 1, T, this.dHead, this.config.ropeTheta, this.config.ropeScaling), mask }
  }

  /** Next-token logits at every position. tokens int32 [B, T] -> [B, T, V]. Differentiable. */
  logits(tokens: tf.Tensor2D): tf.Tensor3D {
    return tf.tidy(() => {
      const [B, T] = tokens.shape
      const hidden = this.forward(tokens, this.trainingContext(tokens, "logits")) // [B*T, D]
      return tf.reshape(this.head(hidden), [B, T, this.vocabSize]) // [B, T, V]
    })
  }

  /**
   * Final-norm hidden states (the policy's own text embedding). tokens int32 [B, T] -> [B, T, D].
   *
   * @example
   * const h = model.hiddenStates(tokens).mean(1) // [B, D]
   */
  hiddenStates(tokens: tf.Tensor2D): tf.Tensor3D {
    return tf.tidy(() => {
      const [B, T] = tokens.shape
      const hidden = this.forward(tokens, this.trainingContext(tokens, "hiddenStates")) // [B*T, D]
      return tf.reshape(hidden, [B, T, this.config.dModel]) // [B, T, D]
    })
  }

  /**
   * log p(token k | tokens < k) under softmax(logits / temperature), entry 0 = 0.
   * tokens int32 [B, T] -> [B, T]. Differentiable; temperature 0 is read as 1 (the
   * sampler's convention for greedy decoding).
   *
   * @example
   * const lp = model.tokenLogprobs(tokens, 0.8) // matches the sampler's logprobs
   */
  tokenLogprobs(tokens: tf.Tensor2D, temperature: number): tf.Tensor2D {
    return tf.tidy((): tf.Tensor2D => {
      const [B, T] = tokens.shape
      if (T < 2) return tf.zeros<tf.Rank.R2>([B, T])
      const scale = temperature > 0 ? 1 / temperature : 1
      return tokenLogprobsFromLogits(this.logits(tokens), tokens, scale) // [B, T]
    })
  }

  /** Free the weights and the cached mask. */
  dispose(): void {
    for (const v of this.variables.values()) v.dispose()
    this.causalMask?.dispose()
    this.causalMask = undefined
  }
}

/** One weight: checkpoint name, HF shape, and how it starts. */
type VariableSpec = { name: string; shape: Array<number>; init: "normal" | "ones" | "zeros"; std: number }

/** Every weight, in HF checkpoint order (the order initialisation draws in). */
const variableSpecs = (c: ModelConfig): Array<VariableSpec> => {
  const dKv = (c.dModel / c.nHeads) * c.nKvHeads
  // Output projections into the residual stream start smaller (GPT-2's 1/sqrt(2 * layers)) so the
  // residual's variance does not grow with depth.
  const residualStd = c.initStd / Math.sqrt(2 * c.nLayers)
  const specs: Array<VariableSpec> = []
  const add = (name: string, shape: Array<number>, init: VariableSpec["init"], std = c.initStd) => specs.push({ name, shape, init, std })
  add("model.embed_tokens.weight", [c.vocabSize, c.dModel], "normal")
  for (let i = 0; i < c.nLayers; i++) {
    const p = `model.layers.${i}`
    add(`${p}.self_attn.q_proj.weight`, [c.dModel, c.dModel], "normal")
    add(`${p}.self_attn.k_proj.weight`, [dKv, c.dModel], "normal")
    add(`${p}.self_attn.v_proj.weight`, [dKv, c.dModel], "normal")
    if (c.qkvBias) {
      add(`${p}.self_attn.q_proj.bias`, [c.dModel], "zeros")
      add(`${p}.self_attn.k_proj.bias`, [dKv], "zeros")
      add(`${p}.self_attn.v_proj.bias`, [dKv], "zeros")
    }
    add(`${p}.self_attn.o_proj.weight`, [c.dModel, c.dModel], "normal", residualStd)
    add(`${p}.mlp.gate_proj.weight`, [c.dFf, c.dModel], "normal")
    add(`${p}.mlp.up_proj.weight`, [c.dFf, c.dModel], "normal")
    add(`${p}.mlp.down_proj.weight`, [c.dModel, c.dFf], "normal", residualStd)
    add(`${p}.input_layernorm.weight`, [c.dModel], "ones")
    add(`${p}.post_attention_layernorm.weight`, [c.dModel], "ones")
  }
  add("model.norm.weight", [c.dModel], "ones")
  if (!c.tieEmbeddings) add("lm_head.weight", [c.vocabSize, c.dModel], "normal")
  return specs
}

/**
 * Every weight a configuration has, by checkpoint name, with its shape ([out, in] for
 * matrices), in checkpoint order.
 *
 * @example
 * parameterShapes(presets.tiny)[0] // { name: "model.embed_tokens.weight", shape: [259, 64] }
 */
export const parameterShapes = (c: ModelConfig): Array<{ readonly name: string; readonly shape: ReadonlyArray<number> }> =>
  variableSpecs(c).map(({ name, shape }) => ({ name, shape }))

/** Given weights must be exactly the configuration's, shape for shape. */
const checkWeights = (c: ModelConfig, weights: ReadonlyMap<string, tf.Variable>): ReadonlyMap<string, tf.Variable> => {
  const specs = variableSpecs(c)
  for (const spec of specs) {
    const w = weights.get(spec.name)
    if (w === undefined) throw new ModelInputError({ fn: "constructor", problem: `weights lack "${spec.name}"` })
    if (!tf.util.arraysEqual(w.shape, spec.shape)) {
      throw new ModelInputError({
        fn: "constructor",
        problem: `weight "${spec.name}" has shape [${w.shape.join(", ")}], the config needs [${spec.shape.join(", ")}]`,
      })
    }
  }
  if (weights.size !== specs.length) {
    const known = new Set(specs.map((s) => s.name))
    const extra = [...weights.keys()].filter((name) => !known.has(name))
    throw new ModelInputError({ fn: "constructor", problem: `weights ${extra.map((n) => `"${n}"`).join(", ")} are not parameters of this config` })
  }
  return weights
}

const initVariables = (c: ModelConfig): Map<string, tf.Variable> => {
  const rng = Rng.fromSeed(c.seed)
  const variables = new Map<string, tf.Variable>()
  for (const spec of variableSpecs(c)) {
    // One forked generator per tensor, drawn in a fixed order: values never depend on the backend.
    const local = rng.fork()
    const size = spec.shape.reduce((a, b) => a * b, 1)
    const values = new Float32Array(size)
    if (spec.init === "ones") values.fill(1)
    else if (spec.init === "normal") { for (let j = 0; j < size; j++) values[j] = local.normal() * spec.std }
    // tfjs variable names are global; the map key carries the checkpoint name instead.
    variables.set(spec.name, tf.variable(tf.tensor(values, spec.shape), true))
  }
  return variables
}

/**
 * Build a transformer with freshly initialised weights; validates the config first
 * (throws ModelConfigError).
 *
 * @example
 * const model = createTransformer({ ...presets.small, seed: 42 })
 */
export const createTransformer = (config: unknown): Transformer => new Transformer(decodeModelConfig(config))
