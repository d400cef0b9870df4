/**
 * Fast, KV-cached inference for the {@link Transformer}: the same network as
 * ./transformer.ts, rearranged for sampling, where per-op overhead (tens of
 * microseconds per tfjs op on wasm) rather than arithmetic dominates a decode step.
 *
 * {@link prepareInference} snapshots the weights once per sampling session, in forms
 * that save ops at every step:
 * - every projection pre-transposed to [in, out] (no per-call transpose);
 * - RMSNorm gains folded into the projections that read the normalised vector
 *   (W' = W diag(g)), so a norm is x * rsqrt(mean(x^2) + eps) with no final product;
 * - query and key projections stacked, plus a second stacked copy with rotate_half
 *   applied to its output rows, so rotary positions cost q*cos + q_rot*sin and no
 *   slice/negate/concat; the attention scale 1/sqrt(Dh) folded into the query rows;
 * - when one token per row is fed (decoding), head transposes are reshapes.
 *
 * On webgpu the weights are packed further and a decoded token costs six shader
 * dispatches per layer (./kernels/decode-*.ts): [RMSNorm + q|k|v projection], [rotary
 * on the new keys + cache write], [attention, rotary on the queries], [o projection +
 * residual], [RMSNorm + gate|up projection], [SwiGLU + down projection + residual]. Its
 * cache is one packed tensor per layer of fixed capacity, written in place each step
 * and doubled when full (./kernels/decode-cache.ts). Other backends run tfjs's
 * composite ops on the unpacked weights, unchanged by the webgpu path.
 *
 * {@link decodeStep} feeds new tokens after `past` cached slots, with explicit
 * per-row positions and an additive mask over all slots (see ../sampler.ts for how
 * ragged rows share a cache).
 *
 * @category models
 */
import * as tf from "@tensorflow/tfjs"
import { fusedKernelsActive } from "../webgpu/program.js"
import { batchedProduct } from "./batched-matmul.js"
import { fusedDecodeAttention, fusedPackedDecodeAttention } from "./kernels/decode-attention.js"
import { fusedCacheWrite } from "./kernels/decode-cache.js"
import { fusedDecodeLinear } from "./kernels/decode-linear.js"
import { fusedNormalize } from "./kernels/rms-norm.js"
import { fusedRopeCombine } from "./kernels/rope.js"
import { fusedSwiGlu } from "./kernels/swiglu.js"
import { ropeTables, type Transformer } from "./transformer.js"

/** Keys and values of one layer for every cached slot (composite path). k: [B, Hkv, Dh, S] (pre-transposed), v: [B, Hkv, S, Dh]. */
export type LayerCache = {
  readonly k: tf.Tensor4D
  readonly v: tf.Tensor4D
}

/**
 * The key/value cache of a batch of rows, as {@link decodeStep} returns it and takes it
 * back. Its owner disposes it once it has the next step's cache.
 */
export interface DecodeCache {
  /** Cached slots per row (all rows have the same number; a mask says which are real). */
  readonly slots: number
  /**
   * A new cache holding, for each row b, the slots `index[b * width + j]` for j < width,
   * in that order; this cache is left as it is.
   */
  compact(index: Int32Array, width: number): DecodeCache
  dispose(): void
}

/** The composite path's cache: keys and values grown by concatenation every step. */
class ConcatCache implements DecodeCache {
  constructor(readonly layers: ReadonlyArray<LayerCache>) {}

  get slots(): number {
    return this.layers[0]?.k.shape[3] ?? 0
  }

  // tfjs-wasm's gather with batchDims reads the wrong elements (even past the input) when
  // a row keeps a number of slots other than B, so rows are folded into the gathered axis.
  compact(index: Int32Array, width: number): DecodeCache {
    const [B, Hkv, Dh, S] = this.layers[0]?.k.shape ?? [0, 0, 0, 0]
    const flat = tf.tensor1d(Int32Array.from(index, (s, i) => Math.floor(i / width) * S + s), "int32") // [B*S']
    const slotsFirst = (x: tf.Tensor4D, perm: Array<number>) => tf.gather(tf.reshape(tf.transpose(x, perm), [B * S, Hkv * Dh]), flat) // [B*S', Hkv*Dh]
    const layers = this.layers.map((layer) =>
      tf.tidy((): LayerCache => ({
        k: tf.transpose<tf.Tensor4D>(tf.reshape(slotsFirst(layer.k, [0, 3, 1, 2]), [B, width, Hkv, Dh]), [0, 2, 3, 1]), // [B, Hkv, Dh, S']
        v: tf.transpose<tf.Tensor4D>(tf.reshape(slotsFirst(layer.v, [0, 2, 1, 3]), [B, width, Hkv, Dh]), [0, 2, 1, 3]), // [B, Hkv, S', Dh]
      }))
    )
    flat.dispose()
    return new ConcatCache(layers)
  }

  dispose(): void {
    for (const layer of this.layers) tf.dispose([layer.k, layer.v])
  }
}

/** The webgpu path's cache: one packed [B, Hkv, C, 2*Dh] tensor per layer (./kernels/decode-cache.ts), `slots` of C in use. */
class PackedCache implements DecodeCache {
  constructor(
    readonly layers: ReadonlyArray<tf.Tensor4D>,
    readonly slots: number,
  ) {}

  get capacity(): number {
    return this.layers[0]?.shape[2] ?? 0
  }

  compact(index: Int32Array, width: number): DecodeCache {
    const B = this.layers[0]?.shape[0] ?? 0
    const layers = tf.tidy(() => {
      const slots = tf.tensor2d(index, [B, width], "int32") // [B, S']
      return this.layers.map((layer) => tf.pad(tf.gather(layer, slots, 2, 1), [[0, 0], [0, 0], [0, this.capacity - width], [0, 0]])) // [B, Hkv, C, 2*Dh]
    })
    return new PackedCache(layers, width)
  }

  dispose(): void {
    tf.dispose([...this.layers])
  }
}

/** Capacity of a fresh packed cache (slots); it doubles whenever a step would overflow it. */
const initialCapacity = 16

/** One layer's weights in inference form (all matrices [in, out]). */
type InferenceLayer = {
  readonly qk: tf.Tensor2D // [D, (H + Hkv) * Dh]
  readonly qkRot: tf.Tensor2D // [D, (H + Hkv) * Dh]
  readonly qkBias: tf.Tensor1D | undefined // [(H + Hkv) * Dh]
  readonly qkRotBias: tf.Tensor1D | undefined // [(H + Hkv) * Dh]
  readonly v: tf.Tensor2D // [D, Hkv * Dh]
  readonly vBias: tf.Tensor1D | undefined // [Hkv * Dh]
  readonly o: tf.Tensor2D // [D, D]
  readonly gate: tf.Tensor2D // [D, F]
  readonly up: tf.Tensor2D // [D, F]
  readonly down: tf.Tensor2D // [F, D]
}

/**
 * One layer's weights packed for the webgpu decode: the projections that read the same
 * input side by side, so each is one shader ([in, out], gains folded as above).
 */
type PackedLayer = {
  readonly qkv: tf.Tensor2D // [D, 2(H + Hkv) * Dh + Hkv * Dh]: qk | qkRot | v
  readonly qkvBias: tf.Tensor1D | undefined // [2(H + Hkv) * Dh + Hkv * Dh]
  readonly o: tf.Tensor2D // [D, D]
  readonly gateUp: tf.Tensor2D // [D, 2F]: gate | up
  readonly down: tf.Tensor2D // [F, D]
}

/** Which form the layers were prepared in: packed on webgpu, unpacked (composite ops) elsewhere. */
type LayerForm =
  | { readonly kind: "composite"; readonly layers: ReadonlyArray<InferenceLayer> }
  | { readonly kind: "packed"; readonly layers: ReadonlyArray<PackedLayer> }

/**
 * A snapshot of a model's weights in inference form. Dispose it when done; it does
 * not follow later training updates.
 *
 * @example
 * const weights = prepareInference(model)
 * try { ... decodeStep(model, weights, ...) ... } finally { weights.dispose() }
 */
export interface InferenceWeights {
  readonly embed: tf.Tensor2D // [V, D]
  readonly form: LayerForm
  readonly head: tf.Tensor2D // [D, V]
  dispose(): void
}

/** rotate_half applied to the output rows of a projection, head by head: rows [a, b] -> [-b, a]. */
const rotateRows = <R extends tf.Rank>(w: tf.Tensor<R>, heads: number, dHead: number): tf.Tensor<R> => {
  const cols = w.size / (heads * dHead)
  const r = tf.reshape(w, [heads, 2, dHead / 2, cols]) // [heads, 2, Dh/2, in]
  const [a, b] = tf.split(r, 2, 1) // [heads, 1, Dh/2, in] each
  return tf.reshape(tf.concat([tf.neg(b ?? r), a ?? r], 1), w.shape) // [heads * Dh, in]
}

/**
 * Snapshot the model's current weights in inference form (packed when the active
 * backend is webgpu, see {@link PackedLayer}).
 *
 * @example
 * const weights = prepareInference(model)
 */
export const prepareInference = (model: Transformer): InferenceWeights => {
  const c = model.config
  const Dh = model.dHead
  const get = (name: string): tf.Tensor => {
    const v = model.variables.get(name)
    if (v === undefined) throw new Error(`prepareInference: no variable named ${name}`)
    return v
  }
  const get2 = (name: string): tf.Tensor2D => {
    const t = get(name)
    return tf.reshape(t, [t.shape[0] ?? 0, t.shape[1] ?? 0])
  }
  const get1 = (name: string): tf.Tensor1D => tf.reshape(get(name), [-1])
  // [out, in] -> [in, out], with an RMSNorm gain folded into the input columns.
  const inOut = (w: tf.Tensor2D, gain?: tf.Tensor1D): tf.Tensor2D => tf.transpose(gain === undefined ? w : tf.mul<tf.Tensor2D>(w, gain))
  // tidy keeps the tensors it finds in the returned object, nested records included (its
  // TensorContainer type does not admit the form's readonly arrays, hence the casts).
  const weights = tf.tidy((): tf.TensorContainer => {
    const layers = Array.from({ length: c.nLayers }, (_, i): InferenceLayer => {
      const p = `model.layers.${i}`
      const g1 = get1(`${p}.input_layernorm.weight`) // [D]
      const g2 = get1(`${p}.post_attention_layernorm.weight`) // [D]
      const scale = 1 / Math.sqrt(Dh)
      const q = tf.mul<tf.Tensor2D>(get2(`${p}.self_attn.q_proj.weight`), scale) // [H*Dh, D]
      const k = get2(`${p}.self_attn.k_proj.weight`) // [Hkv*Dh, D]
      const qk = tf.concat([q, k], 0) // [(H+Hkv)*Dh, D]
      const qkRot = tf.concat([rotateRows(q, c.nHeads, Dh), rotateRows(k, c.nKvHeads, Dh)], 0) // [(H+Hkv)*Dh, D]
      let qkBias: tf.Tensor1D | undefined
      let qkRotBias: tf.Tensor1D | undefined
      let vBias: tf.Tensor1D | undefined
      if (c.qkvBias) {
        const qb = tf.mul<tf.Tensor1D>(get1(`${p}.self_attn.q_proj.bias`), scale) // [H*Dh]
        const kb = get1(`${p}.self_attn.k_proj.bias`) // [Hkv*Dh]
        qkBias = tf.concat([qb, kb]) // [(H+Hkv)*Dh]
        qkRotBias = tf.concat([rotateRows(qb, c.nHeads, Dh), rotateRows(kb, c.nKvHeads, Dh)]) // [(H+Hkv)*Dh]
        vBias = get1(`${p}.self_attn.v_proj.bias`) // [Hkv*Dh]
      }
      return {
        qk: inOut(qk, g1),
        qkRot: inOut(qkRot, g1),
        qkBias,
        qkRotBias,
        v: inOut(get2(`${p}.self_attn.v_proj.weight`), g1),
        vBias,
        o: inOut(get2(`${p}.self_attn.o_proj.weight`)),
        gate: inOut(get2(`${p}.mlp.gate_proj.weight`), g2),
        up: inOut(get2(`${p}.mlp.up_proj.weight`), g2),
        down: inOut(get2(`${p}.mlp.down_proj.weight`)),
      }
    })
    const headName = c.tieEmbeddings ? "model.embed_tokens.weight" : "lm_head.weight"
    const form: LayerForm = fusedKernelsActive()
      ? { kind: "packed", layers: layers.map(pack) }
      : { kind: "composite", layers }
    const snapshot: Omit<InferenceWeights, "dispose"> = {
      embed: tf.clone(get2("model.embed_tokens.weight")), // [V, D]
      form,
      head: inOut(get2(headName), get1("model.norm.weight")), // [D, V]
    }
    return snapshot as unknown as tf.TensorContainer
  }) as unknown as Omit<InferenceWeights, "dispose">
  const layerTensors: ReadonlyArray<object> = weights.form.layers
  const owned = [weights.embed, weights.head, ...layerTensors.flatMap((l) => Object.values(l).filter((t): t is tf.Tensor => t instanceof tf.Tensor))]
  return { ...weights, dispose: () => tf.dispose(owned) }
}

/** The webgpu form of a layer: q|k (and their rotate_half copies) with v side by side, gate with up. */
const pack = (L: InferenceLayer): PackedLayer => {
  const { qkBias, qkRotBias, vBias } = L
  return {
    qkv: tf.concat([L.qk, L.qkRot, L.v], 1), // [D, 2(H+Hkv)*Dh + Hkv*Dh]
    qkvBias: qkBias === undefined || qkRotBias === undefined || vBias === undefined ? undefined : tf.concat([qkBias, qkRotBias, vBias]),
    o: L.o,
    gateUp: tf.concat([L.gate, L.up], 1), // [D, 2F]
    down: L.down,
  }
}

/** x * rsqrt(mean(x^2) + eps); the gain lives in the next projection. */
const normalize = (x: tf.Tensor2D, eps: number): tf.Tensor2D => tf.mul<tf.Tensor2D>(x, tf.rsqrt(tf.add(tf.mean(tf.square(x), -1, true), eps))) // [N, D]

/** transpose(x, perm), or a free reshape when the moved axis T has size 1. */
const permute = <R extends tf.Rank>(x: tf.Tensor, perm: Array<number>, shape: tf.ShapeMap[R], T: number): tf.Tensor<R> =>
  T === 1 ? tf.reshape(x, shape) : tf.reshape(tf.transpose(x, perm), shape)

const affine = (x: tf.Tensor2D, w: tf.Tensor2D, b: tf.Tensor1D | undefined): tf.Tensor2D => {
  const y = tf.matMul<tf.Tensor2D>(x, w) // [N, out]
  return b === undefined ? y : tf.add<tf.Tensor2D>(y, b) // [N, out]
}

/**
 * Feed `tokens` ([B, T]) after the `past` cached slots, at rotary `positions` ([B*T],
 * row-major), under an additive `mask` ([B, T, S], S = cached slots + T). Returns the
 * next-token logits at column `pick[b]` of each row ([B, V]) and the grown cache (the
 * caller disposes `past` for it).
 *
 * @example
 * const { logits, cache } = decodeStep(model, weights, tokens, positions, mask, pick, past)
 */
export const decodeStep = (
  model: Transformer,
  weights: InferenceWeights,
  tokens: tf.Tensor2D,
  positions: ArrayLike<number>,
  mask: Float32Array,
  pick: ArrayLike<number>,
  past: DecodeCache | undefined,
): { logits: tf.Tensor2D; cache: DecodeCache } => {
  const [B, T] = tokens.shape
  const S = (past?.slots ?? 0) + T
  if (mask.length !== B * T * S) throw new Error(`decodeStep: mask has ${mask.length} entries, expected B*T*S = ${B}*${T}*${S}`)
  const form = weights.form
  if (form.kind === "packed") {
    if (!fusedKernelsActive()) throw new Error(`decodeStep: weights were prepared for webgpu, but the active backend is ${tf.getBackend()}`)
    if (past !== undefined && !(past instanceof PackedCache)) throw new Error("decodeStep: the cache was not made by the webgpu decode")
    return decodePacked(model, weights, form.layers, tokens, positions, mask, pick, past)
  }
  if (past !== undefined && !(past instanceof ConcatCache)) throw new Error("decodeStep: the cache was made by the webgpu decode")
  const out = decodeComposite(model, weights, form.layers, tokens, positions, mask, pick, past?.layers)
  return { logits: out.logits, cache: new ConcatCache(out.cache) }
}

/**
 * The webgpu decode: six dispatches per layer (see the module comment), on the packed
 * weights and cache.
 */
const decodePacked = (
  model: Transformer,
  weights: InferenceWeights,
  layers: ReadonlyArray<PackedLayer>,
  tokens: tf.Tensor2D,
  positions: ArrayLike<number>,
  mask: Float32Array,
  pick: ArrayLike<number>,
  past: PackedCache | undefined,
): { logits: tf.Tensor2D; cache: PackedCache } => {
  const { nHeads: H, nKvHeads: Hkv, normEps: eps, ropeTheta, ropeScaling } = model.config
  const Dh = model.dHead
  const [B, T] = tokens.shape
  const pastSlots = past?.slots ?? 0
  const S = pastSlots + T
  let capacity = past?.capacity ?? initialCapacity
  while (capacity < S) capacity *= 2
  const out = tf.tidy(() => {
    const rope = ropeTables(positions, B, T, Dh, ropeTheta, ropeScaling) // cos, sin: [B, T, 1, Dh]
    const bias = tf.tensor3d(mask, [B, T, S]) // [B, T, S]
    let x = tf.gather(weights.embed, tf.reshape(tokens, [B * T])) // [B*T, D]
    const caches = layers.map((L, i) => {
      const qkv = fusedDecodeLinear(x, L.qkv, { prologue: "normalize", eps, bias: L.qkvBias }) // [B*T, 2(H+Hkv)*Dh + Hkv*Dh]
      let previous = past?.layers[i] ?? tf.zeros<tf.Rank.R4>([B, Hkv, capacity, 2 * Dh]) // [B, Hkv, C, 2*Dh]
      // Full: a doubled copy (one extra dispatch, once per doubling).
      if (previous.shape[2] < capacity) previous = tf.pad(previous, [[0, 0], [0, 0], [0, capacity - previous.shape[2]], [0, 0]])
      const cache = fusedCacheWrite(previous, qkv, rope.cos, rope.sin, H, pastSlots) // [B, Hkv, C, 2*Dh]
      const merged = fusedPackedDecodeAttention(qkv, rope.cos, rope.sin, cache, bias, H) // [B*T, H*Dh]
      x = fusedDecodeLinear(merged, L.o, { prologue: "none", residual: x }) // [B*T, D]
      const gateUp = fusedDecodeLinear(x, L.gateUp, { prologue: "normalize", eps }) // [B*T, 2F]
      x = fusedDecodeLinear(gateUp, L.down, { prologue: "swiglu", residual: x }) // [B*T, D]
      return cache
    })
    // One token per row: every row is picked already.
    const last = T === 1 ? x : tf.gather(x, Int32Array.from({ length: B }, (_, b) => b * T + (pick[b] ?? 0))) // [B, D]
    return { logits: fusedDecodeLinear(last, weights.head, { prologue: "normalize", eps }), caches } // [B, V]
  })
  return { logits: out.logits, cache: new PackedCache(out.caches, S) }
}

/** tfjs's composite ops (every backend), with a cache grown by concatenation. */
const decodeComposite = (
  model: Transformer,
  weights: InferenceWeights,
  layers: ReadonlyArray<InferenceLayer>,
  tokens: tf.Tensor2D,
  positions: ArrayLike<number>,
  mask: Float32Array,
  pick: ArrayLike<number>,
  past: ReadonlyArray<LayerCache> | undefined,
): { logits: tf.Tensor2D; cache: Array<LayerCache> } =>
  tf.tidy(() => {
    const { nHeads: H, nKvHeads: Hkv, normEps, ropeTheta, ropeScaling } = model.config
    const Dh = model.dHead
    const G = H / Hkv
    const fused = fusedKernelsActive()
    const norm = (v: tf.Tensor2D) => (fused ? fusedNormalize(v, normEps) : normalize(v, normEps)) // [N, D]
    const [B, T] = tokens.shape
    const S = (past?.[0]?.k.shape[3] ?? 0) + T
    const rope = ropeTables(positions, B, T, Dh, ropeTheta, ropeScaling) // cos, sin: [B, T, 1, Dh]
    const bias = tf.tensor4d(mask, [B, 1, T, S]) // [B, 1, T, S]
    let x = tf.gather(weights.embed, tf.reshape(tokens, [B * T])) // [B*T, D]
    const cache: Array<LayerCache> = []
    layers.forEach((L, i) => {
      const h = norm(x) // [B*T, D]
      const qk = tf.reshape<tf.Rank.R4>(affine(h, L.qk, L.qkBias), [B, T, H + Hkv, Dh]) // [B, T, H+Hkv, Dh]
      const qkRot = tf.reshape<tf.Rank.R4>(affine(h, L.qkRot, L.qkRotBias), [B, T, H + Hkv, Dh]) // [B, T, H+Hkv, Dh]
      const roped = fused ? fusedRopeCombine(qk, qkRot, rope.cos, rope.sin) : tf.add<tf.Tensor4D>(tf.mul(qk, rope.cos), tf.mul(qkRot, rope.sin)) // [B, T, H+Hkv, Dh]
      const k = tf.slice(roped, [0, 0, H, 0], [B, T, Hkv, Dh]) // [B, T, Hkv, Dh]
      const v = tf.reshape(affine(h, L.v, L.vBias), [B, T, Hkv, Dh]) // [B, T, Hkv, Dh]
      const kNew = permute<tf.Rank.R4>(k, [0, 2, 3, 1], [B, Hkv, Dh, T], T) // [B, Hkv, Dh, T]
      const vNew = permute<tf.Rank.R4>(v, [0, 2, 1, 3], [B, Hkv, T, Dh], T) // [B, Hkv, T, Dh]
      const prev = past?.[i]
      const kAll = prev === undefined ? kNew : tf.concat([prev.k, kNew], 3) // [B, Hkv, Dh, S]
      const vAll = prev === undefined ? vNew : tf.concat([prev.v, vNew], 2) // [B, Hkv, S, Dh]
      cache.push({ k: kAll, v: vAll })
      const merged = fused ? fusedDecodeAttention(roped, kAll, vAll, bias, H) : attend(roped, kAll, vAll)
      x = tf.add(x, tf.matMul(merged, L.o)) // [B*T, D]
      const n = norm(x) // [B*T, D]
      const gate = tf.matMul<tf.Tensor2D>(n, L.gate) // [B*T, F]
      const up = tf.matMul<tf.Tensor2D>(n, L.up) // [B*T, F]
      const act = fused ? fusedSwiGlu(gate, up) : tf.mul(tf.mul(gate, tf.sigmoid(gate)), up) // SiLU(gate) * up: [B*T, F]
      x = tf.add(x, tf.matMul(act, L.down)) // [B*T, D]
    })
    const rows = Int32Array.from({ length: B }, (_, b) => b * T + (pick[b] ?? 0))
    const last = norm(tf.gather(x, rows)) // [B, D]
    return { logits: tf.matMul(last, weights.head), cache } // [B, V]

    /** The composite attention of one layer: [B*T, D]. */
    function attend(roped: tf.Tensor4D, kAll: tf.Tensor4D, vAll: tf.Tensor4D): tf.Tensor2D {
      const q = tf.slice(roped, [0, 0, 0, 0], [B, T, H, Dh]) // [B, T, H, Dh] (already scaled by 1/sqrt(Dh))
      const qh = permute<tf.Rank.R3>(q, [0, 2, 1, 3], [B * Hkv, G * T, Dh], T) // [B*Hkv, G*T, Dh]
      // Split into 2-D products on wasm when long enough (prefill); decoding steps stay batched.
      const scores = batchedProduct(qh, tf.reshape<tf.Rank.R3>(kAll, [B * Hkv, Dh, S])) // [B*Hkv, G*T, S]
      const probs = tf.softmax(tf.reshape<tf.Rank.R3>(tf.add(tf.reshape(scores, [B, H, T, S]), bias), [B * Hkv, G * T, S])) // [B*Hkv, G*T, S]
      const y = batchedProduct(probs, tf.reshape<tf.Rank.R3>(vAll, [B * Hkv, S, Dh])) // [B*Hkv, G*T, Dh]
      return permute<tf.Rank.R2>(tf.reshape(y, [B, H, T, Dh]), [0, 2, 1, 3], [B * T, H * Dh], T) // [B*T, D]
    }
  })
