/**
 * The token log-prob head: from logits [B, T, V] and tokens [B, T], the log-probability
 * of each token under the softmax of the previous position's logits times `scale`
 * (1 / temperature), with 0 at position 0. Out: [B, T].
 *
 *     out[b, t] = scale * logits[b, t-1, tokens[b, t]] - logsumexp(scale * logits[b, t-1, :])
 *
 * On webgpu it is one fused shader forward and one backward (tfjs runs a slice, a scale,
 * logSoftmax, one-hot, cast, multiply, sum and concat, and their gradients, and keeps
 * [B, T-1, V] intermediates); other backends run the composite ops. The backward, with
 * p = softmax(scale * logits[b, t, :]):
 *
 *     dlogits[b, t, v] = dy[b, t+1] * scale * (onehot(tokens[b, t+1])_v - p_v)   (t < T-1; 0 at t = T-1)
 *
 * @category layers
 */
import * as tf from "@tensorflow/tfjs"
import { fusedKernel, fusedKernelsActive, runFused } from "../../webgpu/program.js"

/** Threads per row: a workgroup reduces one position's logits. */
const WG = 64

/** WGSL: the max and the sum of exp(scale * logit - max) over row `base`, with the whole workgroup. */
const softmaxStats = `
    var localMax = -3.402823e+38;
    for (var v = tid; v < vocab; v += ${WG}) { localMax = max(localMax, scale * logits[base + v]); }
    partial[tid] = localMax;
    workgroupBarrier();
    for (var width = ${WG / 2}; width > 0; width >>= 1) {
      if (tid < width) { partial[tid] = max(partial[tid], partial[tid + width]); }
      workgroupBarrier();
    }
    let rowMax = partial[0];
    workgroupBarrier();
    var localSum = 0.0;
    for (var v = tid; v < vocab; v += ${WG}) { localSum += exp(scale * logits[base + v] - rowMax); }
    partial[tid] = localSum;
    workgroupBarrier();
    for (var width = ${WG / 2}; width > 0; width >>= 1) {
      if (tid < width) { partial[tid] += partial[tid + width]; }
      workgroupBarrier();
    }
    let rowSum = partial[0];`

// One workgroup per output position (b, t); it reads the logits of (b, t - 1).
const forwardBody = `
  var<workgroup> partial : array<f32, ${WG}>;
  fn main(index : i32) {
    let position = index / ${WG};
    let tid = index % ${WG};
    let steps = uniforms.steps;
    let vocab = uniforms.vocab;
    let scale = uniforms.scale;
    let t = position % steps;
    let base = (position - select(0, 1, t > 0)) * vocab;
    ${softmaxStats}
    if (tid == 0 && position < uniforms.positions) {
      let token = tokens[position];
      result[position] = select(0.0, scale * logits[base + token] - rowMax - log(rowSum), t > 0);
    }
  }`

// One workgroup per logits row (b, t); its gradient comes from output position (b, t + 1).
const backwardBody = `
  var<workgroup> partial : array<f32, ${WG}>;
  fn main(index : i32) {
    let position = index / ${WG};
    let tid = index % ${WG};
    let steps = uniforms.steps;
    let vocab = uniforms.vocab;
    let scale = uniforms.scale;
    let t = position % steps;
    let base = position * vocab;
    ${softmaxStats}
    if (position < uniforms.positions) {
      let last = t == steps - 1;
      let next = select(position + 1, position, last);
      let g = select(dy[next] * scale, 0.0, last);
      let token = tokens[next];
      for (var v = tid; v < vocab; v += ${WG}) {
        let p = exp(scale * logits[base + v] - rowMax) / rowSum;
        result[base + v] = g * (select(0.0, 1.0, v == token) - p);
      }
    }
  }`

const uniformValues = (logits: tf.TensorInfo, scale: number) => {
  const [batch, steps, vocab] = logits.shape as [number, number, number]
  return [
    { type: "int32" as const, data: [batch * steps] },
    { type: "int32" as const, data: [steps] },
    { type: "int32" as const, data: [vocab] },
    { type: "float32" as const, data: [scale] },
  ]
}
const uniforms = "positions : i32, steps : i32, vocab : i32, scale : f32,"

const forwardKernel = fusedKernel("TurnwiseTokenLogprobs", ({ logits, tokens }, { scale }, backend) => {
  const [batch, steps] = logits!.shape as [number, number, number]
  return runFused(
    backend,
    {
      key: "token_logprobs",
      inputs: ["logits", "tokens"],
      outputShape: [batch, steps],
      invocations: batch * steps * WG,
      workgroupSize: WG,
      uniforms,
      body: forwardBody,
    },
    [logits!, tokens!],
    uniformValues(logits!, scale!),
  )
})

const backwardKernel = fusedKernel("TurnwiseTokenLogprobsGrad", ({ logits, tokens, dy }, { scale }, backend) => {
  const [batch, steps] = logits!.shape as [number, number, number]
  return runFused(
    backend,
    {
      key: "token_logprobs_grad",
      inputs: ["logits", "tokens", "dy"],
      outputShape: logits!.shape,
      invocations: batch * steps * WG,
      workgroupSize: WG,
      uniforms,
      body: backwardBody,
    },
    [logits!, tokens!, dy!],
    uniformValues(logits!, scale!),
  )
})

/**
 * The head with tfjs's standard ops (every backend). logits [B, T, V], tokens int32 [B, T].
 *
 * @example
 * const lp = compositeTokenLogprobs(logits, tokens, 1) // [B, T]
 */
export const compositeTokenLogprobs = (logits: tf.Tensor3D, tokens: tf.Tensor2D, scale: number): tf.Tensor2D => {
  const [B, T, V] = logits.shape
  const prev = tf.slice(logits, [0, 0, 0], [B, T - 1, V]) // [B, T-1, V]
  const logp = tf.logSoftmax(tf.mul(prev, scale)) // [B, T-1, V]
  const next = tf.slice(tokens, [0, 1], [B, T - 1]) // [B, T-1]
  // A one-hot product rather than gather: gather's gradient lacks a wasm kernel. The cast
  // matters: wasm's OneHot ignores a float dtype and writes int32 bits.
  const picked = tf.sum<tf.Tensor2D>(tf.mul(logp, tf.cast(tf.oneHot(next, V), "float32")), -1) // [B, T-1]
  return tf.concat([tf.zeros<tf.Rank.R2>([B, 1]), picked], 1) // [B, T]
}

/**
 * The head as fused webgpu shaders with a fused gradient (in logits). Only on webgpu.
 *
 * @example
 * const lp = fusedTokenLogprobs(logits, tokens, 1) // [B, T], one dispatch
 */
export const fusedTokenLogprobs = (logits: tf.Tensor3D, tokens: tf.Tensor2D, scale: number): tf.Tensor2D => {
  const f = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
    const [l, save] = args as [tf.Tensor3D, tf.GradSaveFunc]
    // The tokens are not an input of the custom op; saving them keeps them alive for the backward pass.
    save([l, tokens])
    return {
      value: forwardKernel({ logits: l, tokens }, { scale }),
      gradFunc: (dy: tf.Tensor, saved: Array<tf.Tensor>) => {
        const [sl, st] = saved as [tf.Tensor3D, tf.Tensor2D]
        return [backwardKernel({ logits: sl, tokens: st, dy }, { scale })]
      },
    }
  })
  return f(logits) as tf.Tensor2D
}

/**
 * Token log-probs from logits: fused on webgpu, composite elsewhere. Needs T >= 2.
 *
 * @example
 * const lp = tokenLogprobsFromLogits(logits, tokens, 1 / temperature) // [B, T]
 */
export const tokenLogprobsFromLogits = (logits: tf.Tensor3D, tokens: tf.Tensor2D, scale: number): tf.Tensor2D =>
  fusedKernelsActive() ? fusedTokenLogprobs(logits, tokens, scale) : compositeTokenLogprobs(logits, tokens, scale)
