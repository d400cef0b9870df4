/**
 * Causal grouped-query attention: q [B, T, H, Dh] (rotary applied, not scaled), k and v
 * [B, T, Hkv, Dh] -> softmax(q k^T / sqrt(Dh), causal) v as [B, T, H, Dh]. Query head h
 * reads key/value head floor(h / G), G = H / Hkv (HF's repeat_kv).
 *
 * On webgpu it is flash-style fused shaders: no [T, T] score tensor is ever stored. The
 * forward is one shader (one invocation per query row, online softmax). The backward is
 * four: per-row statistics (L = logsumexp of the scores, Dt = dO . O), then dq, dk and dv,
 * each recomputing the probabilities it needs as P = exp(score - L):
 *
 *     dq_t = scale * sum_{s<=t} P_ts (dO_t . v_s - Dt) k_s
 *     dk_s = scale * sum_{h in group} sum_{t>=s} P_ts (dO_t . v_s - Dt) q_t
 *     dv_s = sum_{h in group} sum_{t>=s} P_ts dO_t
 *
 * Other backends run the composite ops (transposes, two batched products, additive mask,
 * softmax), whose products split into 2-D pieces on wasm (../batched-matmul.ts).
 *
 * @category layers
 */
import * as tf from "@tensorflow/tfjs"
import { fusedKernel, fusedKernelsActive, runFused } from "../../webgpu/program.js"
import { attentionMatMul } from "../batched-matmul.js"

interface Dims {
  readonly heads: number
  readonly kvHeads: number
  readonly dHead: number
}

/** WGSL constants of one attention shape, baked in so private arrays have a fixed size. */
const constants = ({ heads, kvHeads, dHead }: Dims) => `
  const H = ${heads};
  const HKV = ${kvHeads};
  const G = ${heads / kvHeads};
  const DH = ${dHead};`

/** WGSL: the scaled score of query row `qBase` against key row `kBase`. */
const score = `
  fn score(qBase : i32, kBase : i32) -> f32 {
    var dot = 0.0;
    for (var d = 0; d < DH; d++) { dot += q[qBase + d] * k[kBase + d]; }
    return dot * uniforms.scale;
  }`

/** WGSL prologue of a kernel with one invocation per query row (b, t, h). */
const queryRow = `
    let h = index % H;
    let t = (index / H) % uniforms.steps;
    let b = index / (H * uniforms.steps);
    let kvHead = h / G;
    let qBase = index * DH;`

const forwardBody = (dims: Dims) => `
  ${constants(dims)}
  ${score}
  fn main(index : i32) {
    if (index < uniforms.rows) {
      ${queryRow}
      var acc : array<f32, DH>;
      var m = -3.402823e+38;
      var l = 0.0;
      for (var s = 0; s <= t; s++) {
        let kBase = ((b * uniforms.steps + s) * HKV + kvHead) * DH;
        let x = score(qBase, kBase);
        let mNew = max(m, x);
        let correction = exp(m - mNew);
        let p = exp(x - mNew);
        l = l * correction + p;
        for (var d = 0; d < DH; d++) { acc[d] = acc[d] * correction + p * v[kBase + d]; }
        m = mNew;
      }
      for (var d = 0; d < DH; d++) { result[qBase + d] = acc[d] / l; }
    }
  }`

const statsBody = (dims: Dims) => `
  ${constants(dims)}
  ${score}
  fn main(index : i32) {
    if (index < uniforms.rows) {
      ${queryRow}
      var m = -3.402823e+38;
      var l = 0.0;
      for (var s = 0; s <= t; s++) {
        let x = score(qBase, ((b * uniforms.steps + s) * HKV + kvHead) * DH);
        let mNew = max(m, x);
        l = l * exp(m - mNew) + exp(x - mNew);
        m = mNew;
      }
      var dt = 0.0;
      for (var d = 0; d < DH; d++) { dt += dy[qBase + d] * o[qBase + d]; }
      result[2 * index] = m + log(l);
      result[2 * index + 1] = dt;
    }
  }`

const queryGradBody = (dims: Dims) => `
  ${constants(dims)}
  ${score}
  fn main(index : i32) {
    if (index < uniforms.rows) {
      ${queryRow}
      let lse = stats[2 * index];
      let dt = stats[2 * index + 1];
      var acc : array<f32, DH>;
      for (var s = 0; s <= t; s++) {
        let kBase = ((b * uniforms.steps + s) * HKV + kvHead) * DH;
        let p = exp(score(qBase, kBase) - lse);
        var dp = 0.0;
        for (var d = 0; d < DH; d++) { dp += dy[qBase + d] * v[kBase + d]; }
        let ds = p * (dp - dt);
        for (var d = 0; d < DH; d++) { acc[d] += ds * k[kBase + d]; }
      }
      for (var d = 0; d < DH; d++) { result[qBase + d] = acc[d] * uniforms.scale; }
    }
  }`

/** dk (`key`) or dv: one invocation per key row (b, s, kvHead), over the later query rows of its group. */
const keyValueGradBody = (dims: Dims, key: boolean) => `
  ${constants(dims)}
  ${score}
  fn main(index : i32) {
    if (index < uniforms.kvRows) {
      let kvHead = index % HKV;
      let s = (index / HKV) % uniforms.steps;
      let b = index / (HKV * uniforms.steps);
      let kBase = index * DH;
      var acc : array<f32, DH>;
      for (var g = 0; g < G; g++) {
        let h = kvHead * G + g;
        for (var t = s; t < uniforms.steps; t++) {
          let row = (b * uniforms.steps + t) * H + h;
          let qBase = row * DH;
          let p = exp(score(qBase, kBase) - stats[2 * row]);
          ${
  key
    ? `var dp = 0.0;
          for (var d = 0; d < DH; d++) { dp += dy[qBase + d] * v[kBase + d]; }
          let ds = p * (dp - stats[2 * row + 1]);
          for (var d = 0; d < DH; d++) { acc[d] += ds * q[qBase + d]; }`
    : `for (var d = 0; d < DH; d++) { acc[d] += p * dy[qBase + d]; }`
}
        }
      }
      for (var d = 0; d < DH; d++) { result[kBase + d] = acc[d] * ${key ? "uniforms.scale" : "1.0"}; }
    }
  }`

const uniforms = "rows : i32, kvRows : i32, steps : i32, scale : f32,"

/** Dimensions, launch size and uniforms from q [B, T, H, Dh] and k [B, T, Hkv, Dh]. */
const shapeOf = (q: tf.TensorInfo, k: tf.TensorInfo) => {
  const [batch, steps, heads, dHead] = q.shape as [number, number, number, number]
  const kvHeads = k.shape[2]!
  const dims: Dims = { heads, kvHeads, dHead }
  const rows = batch * steps * heads
  const kvRows = batch * steps * kvHeads
  const values = [
    { type: "int32" as const, data: [rows] },
    { type: "int32" as const, data: [kvRows] },
    { type: "int32" as const, data: [steps] },
    { type: "float32" as const, data: [1 / Math.sqrt(dHead)] },
  ]
  return { dims, rows, kvRows, values, key: `${heads}_${kvHeads}_${dHead}` }
}

const forwardKernel = fusedKernel("TurnwiseCausalAttention", ({ q, k, v }, _attrs, backend) => {
  const s = shapeOf(q!, k!)
  return runFused(
    backend,
    { key: `attention_${s.key}`, inputs: ["q", "k", "v"], outputShape: q!.shape, invocations: s.rows, uniforms, body: forwardBody(s.dims) },
    [q!, k!, v!],
    s.values,
  )
})

const statsKernel = fusedKernel("TurnwiseCausalAttentionStats", ({ q, k, o, dy }, _attrs, backend) => {
  const s = shapeOf(q!, k!)
  return runFused(
    backend,
    {
      key: `attention_stats_${s.key}`,
      inputs: ["q", "k", "o", "dy"],
      outputShape: [...q!.shape.slice(0, 3), 2],
      invocations: s.rows,
      uniforms,
      body: statsBody(s.dims),
    },
    [q!, k!, o!, dy!],
    s.values,
  )
})

const queryGradKernel = fusedKernel("TurnwiseCausalAttentionGradQ", ({ q, k, v, dy, stats }, _attrs, backend) => {
  const s = shapeOf(q!, k!)
  return runFused(
    backend,
    { key: `attention_dq_${s.key}`, inputs: ["q", "k", "v", "dy", "stats"], outputShape: q!.shape, invocations: s.rows, uniforms, body: queryGradBody(s.dims) },
    [q!, k!, v!, dy!, stats!],
    s.values,
  )
})

const keyGradKernel = fusedKernel("TurnwiseCausalAttentionGradK", ({ q, k, v, dy, stats }, _attrs, backend) => {
  const s = shapeOf(q!, k!)
  return runFused(
    backend,
    {
      key: `attention_dk_${s.key}`,
      inputs: ["q", "k", "v", "dy", "stats"],
      outputShape: k!.shape,
      invocations: s.kvRows,
      uniforms,
      body: keyValueGradBody(s.dims, true),
    },
    [q!, k!, v!, dy!, stats!],
    s.values,
  )
})

const valueGradKernel = fusedKernel("TurnwiseCausalAttentionGradV", ({ q, k, dy, stats }, _attrs, backend) => {
  const s = shapeOf(q!, k!)
  return runFused(
    backend,
    {
      key: `attention_dv_${s.key}`,
      inputs: ["q", "k", "dy", "stats"],
      outputShape: k!.shape,
      invocations: s.kvRows,
      uniforms,
      body: keyValueGradBody(s.dims, false),
    },
    [q!, k!, dy!, stats!],
    s.values,
  )
})

/**
 * Causal attention with tfjs's standard ops (every backend). `mask` is the additive
 * causal mask [1, 1, T, T] (0 visible, a large negative number hidden).
 *
 * @example
 * const y = compositeCausalAttention(q, k, v, mask) // [B, T, H, Dh]
 */
export const compositeCausalAttention = (q: tf.Tensor4D, k: tf.Tensor4D, v: tf.Tensor4D, mask: tf.Tensor4D): tf.Tensor4D => {
  const [B, T, H, Dh] = q.shape
  const Hkv = k.shape[2]
  const G = H / Hkv
  const kT = tf.transpose(k, [0, 2, 3, 1]) // [B, Hkv, Dh, T]
  const vh = tf.transpose(v, [0, 2, 1, 3]) // [B, Hkv, T, Dh]
  // The G query heads of one kv head are stacked along the query axis instead of repeating keys and values.
  const qh = tf.reshape<tf.Rank.R3>(tf.transpose(tf.mul(q, 1 / Math.sqrt(Dh)), [0, 2, 1, 3]), [B * Hkv, G * T, Dh]) // [B*Hkv, G*T, Dh]
  // Both products (and their gradients) run as 2-D products on wasm: ../batched-matmul.ts.
  const scores = attentionMatMul(qh, tf.reshape<tf.Rank.R3>(kT, [B * Hkv, Dh, T])) // [B*Hkv, G*T, T]
  const masked = tf.add<tf.Tensor4D>(tf.reshape(scores, [B, H, T, T]), mask) // [B, H, T, T]
  const probs = tf.softmax(tf.reshape<tf.Rank.R3>(masked, [B * Hkv, G * T, T])) // [B*Hkv, G*T, T]
  const y = attentionMatMul(probs, tf.reshape<tf.Rank.R3>(vh, [B * Hkv, T, Dh])) // [B*Hkv, G*T, Dh]
  return tf.transpose(tf.reshape(y, [B, H, T, Dh]), [0, 2, 1, 3]) // [B, T, H, Dh]
}

/**
 * Causal attention as flash-style fused webgpu shaders with a fused gradient. Only on webgpu.
 *
 * @example
 * const y = fusedCausalAttention(q, k, v) // [B, T, H, Dh], one dispatch
 */
export const fusedCausalAttention = (q: tf.Tensor4D, k: tf.Tensor4D, v: tf.Tensor4D): tf.Tensor4D => {
  const f = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
    const [sq, sk, sv, save] = args as [tf.Tensor4D, tf.Tensor4D, tf.Tensor4D, tf.GradSaveFunc]
    const o = forwardKernel({ q: sq, k: sk, v: sv })
    save([sq, sk, sv, o])
    return {
      value: o,
      gradFunc: (dy: tf.Tensor, saved: Array<tf.Tensor>) => {
        const [q1, k1, v1, o1] = saved as [tf.Tensor4D, tf.Tensor4D, tf.Tensor4D, tf.Tensor4D]
        const stats = statsKernel({ q: q1, k: k1, o: o1, dy })
        const grads = [
          queryGradKernel({ q: q1, k: k1, v: v1, dy, stats }),
          keyGradKernel({ q: q1, k: k1, v: v1, dy, stats }),
          valueGradKernel({ q: q1, k: k1, dy, stats }),
        ]
        stats.dispose()
        return grads
      },
    }
  })
  return f(q, k, v) as tf.Tensor4D
}

/**
 * Causal attention: fused on webgpu, composite elsewhere.
 *
 * @example
 * const y = causalAttention(q, k, v, ctx.mask) // [B, T, H, Dh]
 */
export const causalAttention = (q: tf.Tensor4D, k: tf.Tensor4D, v: tf.Tensor4D, mask: tf.Tensor4D): tf.Tensor4D =>
  fusedKernelsActive() ? fusedCausalAttention(q, k, v) : compositeCausalAttention(q, k, v, mask)
