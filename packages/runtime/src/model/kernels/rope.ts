/**
 * Rotary positions, HF convention: `x * cos + rotate_half(x) * sin` with
 * rotate_half(x) = [-x2, x1] over the head dimension. x is [B, T, H, Dh]; cos and sin
 * are [1 or B, T, 1, Dh] tables (./../transformer.ts's ropeTables), constants.
 *
 * On webgpu it is one fused shader forward and one backward (tfjs runs two slices, a
 * negation, a concat, two multiplies and an add, and more for the gradient); other
 * backends run the composite ops. The backward is the transposed rotation, for j < Dh/2:
 *
 *     dx_j      = dy_j cos_j           + dy_{j+Dh/2} sin_{j+Dh/2}
 *     dx_{j+Dh/2} = dy_{j+Dh/2} cos_{j+Dh/2} - dy_j sin_j
 *
 * @category layers
 */
import * as tf from "@tensorflow/tfjs"
import { fusedKernel, fusedKernelsActive, runFused } from "../../webgpu/program.js"

// `source` is x forward and dy backward; the partner element is Dh/2 away in the same head.
const body = (backward: boolean) => `
  fn main(index : i32) {
    if (index < uniforms.n) {
      let dh = uniforms.dHead;
      let halfDh = dh / 2;
      let d = index % dh;
      let t = (index / (dh * uniforms.heads)) % uniforms.steps;
      let b = index / (dh * uniforms.heads * uniforms.steps);
      let row = (b % uniforms.tableRows) * uniforms.steps + t;
      let own = row * dh + d;
      let partner = select(index - halfDh, index + halfDh, d < halfDh);
      let partnerTable = select(own - halfDh, own + halfDh, d < halfDh);
      let rotSign = select(1.0, -1.0, d < halfDh);
      ${
  backward
    ? "result[index] = source[index] * cosT[own] - rotSign * source[partner] * sinT[partnerTable];"
    : "result[index] = source[index] * cosT[own] + rotSign * source[partner] * sinT[own];"
}
    }
  }`

const kernel = (name: string, key: string, backward: boolean) =>
  fusedKernel(name, ({ source, cosT, sinT }, _attrs, backend) => {
    const [, steps, heads, dHead] = source!.shape as [number, number, number, number]
    const n = tf.util.sizeFromShape(source!.shape)
    return runFused(
      backend,
      {
        key,
        inputs: ["source", "cosT", "sinT"],
        outputShape: source!.shape,
        invocations: n,
        uniforms: "n : i32, steps : i32, heads : i32, dHead : i32, tableRows : i32,",
        body: body(backward),
      },
      [source!, cosT!, sinT!],
      [n, steps, heads, dHead, cosT!.shape[0]!].map((v) => ({ type: "int32" as const, data: [v] })),
    )
  })

const forwardKernel = kernel("TurnwiseRope", "rope", false)
const backwardKernel = kernel("TurnwiseRopeGrad", "rope_dx", true)

/**
 * Rotary positions with tfjs's standard ops (every backend).
 *
 * @example
 * const q = compositeRope(qRaw, cos, sin) // [B, T, H, Dh]
 */
export const compositeRope = (x: tf.Tensor4D, cos: tf.Tensor4D, sin: tf.Tensor4D): tf.Tensor4D => {
  const [B, T, H, Dh] = x.shape
  const x1 = tf.slice(x, [0, 0, 0, 0], [B, T, H, Dh / 2]) // [B, T, H, Dh/2]
  const x2 = tf.slice(x, [0, 0, 0, Dh / 2], [B, T, H, Dh / 2]) // [B, T, H, Dh/2]
  const rotated = tf.concat([tf.neg(x2), x1], 3) // [B, T, H, Dh]
  return tf.add(tf.mul(x, cos), tf.mul(rotated, sin)) // [B, T, H, Dh]
}

/**
 * Rotary positions as a fused webgpu shader with a fused gradient (in x only: the
 * tables are constants). Only on webgpu.
 *
 * @example
 * const q = fusedRope(qRaw, cos, sin) // [B, T, H, Dh], one dispatch
 */
export const fusedRope = (x: tf.Tensor4D, cos: tf.Tensor4D, sin: tf.Tensor4D): tf.Tensor4D => {
  const f = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
    const [sx, save] = args as [tf.Tensor4D, tf.GradSaveFunc]
    // The tables are not inputs of the custom op; saving them keeps them alive for the backward pass.
    save([cos, sin])
    return {
      value: forwardKernel({ source: sx, cosT: cos, sinT: sin }),
      gradFunc: (dy: tf.Tensor, saved: Array<tf.Tensor>) => {
        const [c, s] = saved as [tf.Tensor4D, tf.Tensor4D]
        return [backwardKernel({ source: dy, cosT: c, sinT: s })]
      },
    }
  })
  return f(x) as tf.Tensor4D
}

/**
 * Rotary positions: fused on webgpu, composite elsewhere.
 *
 * @example
 * const k = rope(kRaw, ctx.cos, ctx.sin) // [B, T, Hkv, Dh]
 */
export const rope = (
  x: tf.Tensor4D,
  cos: tf.Tensor4D,
  sin: tf.Tensor4D,
): tf.Tensor4D => (fusedKernelsActive() ? fusedRope(x, cos, sin) : compositeRope(x, cos, sin))

const combineKernel = fusedKernel("TurnwiseRopeCombine", ({ x, xRot, cosT, sinT }, _attrs, backend) => {
  const [, steps, heads, dHead] = x!.shape as [number, number, number, number]
  const n = tf.util.sizeFromShape(x!.shape)
  return runFused(
    backend,
    {
      key: "rope_combine",
      inputs: ["x", "xRot", "cosT", "sinT"],
      outputShape: x!.shape,
      invocations: n,
      uniforms: "n : i32, steps : i32, heads : i32, dHead : i32, tableRows : i32,",
      body: `
  fn main(index : i32) {
    if (index < uniforms.n) {
      let dh = uniforms.dHead;
      let t = (index / (dh * uniforms.heads)) % uniforms.steps;
      let b = index / (dh * uniforms.heads * uniforms.steps);
      let table = ((b % uniforms.tableRows) * uniforms.steps + t) * dh + index % dh;
      result[index] = x[index] * cosT[table] + xRot[index] * sinT[table];
    }
  }`,
    },
    [x!, xRot!, cosT!, sinT!],
    [n, steps, heads, dHead, cosT!.shape[0]!].map((v) => ({ type: "int32" as const, data: [v] })),
  )
})

/**
 * `x * cos + xRot * sin` where xRot is rotate_half(x) already (the decode's projections
 * produce it), one fused shader, no gradient (the KV-cached decode on webgpu).
 *
 * @example
 * const roped = fusedRopeCombine(qk, qkRot, cos, sin) // [B, T, H+Hkv, Dh]
 */
export const fusedRopeCombine = (x: tf.Tensor4D, xRot: tf.Tensor4D, cos: tf.Tensor4D, sin: tf.Tensor4D): tf.Tensor4D =>
  combineKernel({ x, xRot, cosT: cos, sinT: sin }) as tf.Tensor4D
