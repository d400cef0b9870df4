/**
 * RMSNorm, `x * rsqrt(mean(x^2) + eps) * w` over the last axis of [N, D].
 *
 * On webgpu it is one fused shader forward and two backward (dx, and dw summed over
 * rows), instead of tfjs's square, mean, add, rsqrt, two multiplies and their
 * gradients. Other backends run the composite ops. The backward, with r = rsqrt(mean(x^2) + eps)
 * and g = dy * w:
 *
 *     dx = r * g - r^3 * x * sum(g * x) / D
 *     dw = sum over rows of dy * x * r
 *
 * @category layers
 */
import * as tf from "@tensorflow/tfjs"
import { fusedKernel, fusedKernelsActive, runFused } from "../../webgpu/program.js"

/** Threads per row: a workgroup reduces one row. */
const WG = 64

/** WGSL: sum `term(c)` over this workgroup's row into `into`, leaving the total in into[0]. */
const rowSum = (into: string, term: string) => `
    {
      var s = 0.0;
      for (var c = tid; c < cols; c += ${WG}) { s += ${term}; }
      ${into}[tid] = s;
      workgroupBarrier();
      for (var width = ${WG / 2}; width > 0; width >>= 1) {
        if (tid < width) { ${into}[tid] += ${into}[tid + width]; }
        workgroupBarrier();
      }
    }`

const forwardBody = `
  var<workgroup> sumSq : array<f32, ${WG}>;
  fn main(index : i32) {
    let row = index / ${WG};
    let tid = index % ${WG};
    let cols = uniforms.cols;
    let base = row * cols;
    ${rowSum("sumSq", "x[base + c] * x[base + c]")}
    let r = inverseSqrt(sumSq[0] / f32(cols) + uniforms.eps);
    if (row < uniforms.rows) {
      for (var c = tid; c < cols; c += ${WG}) { result[base + c] = x[base + c] * r * w[c]; }
    }
  }`

// The decode folds the gain into the next projection, so it normalises only.
const normalizeBody = forwardBody.replace(" * w[c]", "")

const backwardXBody = `
  var<workgroup> sumSq : array<f32, ${WG}>;
  var<workgroup> sumGx : array<f32, ${WG}>;
  fn main(index : i32) {
    let row = index / ${WG};
    let tid = index % ${WG};
    let cols = uniforms.cols;
    let base = row * cols;
    ${rowSum("sumSq", "x[base + c] * x[base + c]")}
    ${rowSum("sumGx", "dy[base + c] * w[c] * x[base + c]")}
    let r = inverseSqrt(sumSq[0] / f32(cols) + uniforms.eps);
    let k = r * r * r * sumGx[0] / f32(cols);
    if (row < uniforms.rows) {
      for (var c = tid; c < cols; c += ${WG}) { result[base + c] = r * dy[base + c] * w[c] - k * x[base + c]; }
    }
  }`

// One workgroup per tile of WG columns walks every row; its threads first reduce that row's
// sum of squares together, so no [N] buffer of norms has to be kept from the forward pass.
const backwardWBody = `
  var<workgroup> sumSq : array<f32, ${WG}>;
  fn main(index : i32) {
    let tid = index % ${WG};
    let col = (index / ${WG}) * ${WG} + tid;
    let cols = uniforms.cols;
    var acc = 0.0;
    for (var row = 0; row < uniforms.rows; row++) {
      let base = row * cols;
      ${rowSum("sumSq", "x[base + c] * x[base + c]")}
      let r = inverseSqrt(sumSq[0] / f32(cols) + uniforms.eps);
      if (col < cols) { acc += dy[base + col] * x[base + col] * r; }
      workgroupBarrier();
    }
    if (col < cols) { result[col] = acc; }
  }`

const uniforms = "eps : f32, rows : i32, cols : i32,"
const uniformValues = (eps: number, [rows, cols]: ReadonlyArray<number>) => [
  { type: "float32" as const, data: [eps] },
  { type: "int32" as const, data: [rows ?? 0] },
  { type: "int32" as const, data: [cols ?? 0] },
]

const forwardKernel = fusedKernel(
  "TurnwiseRmsNorm",
  ({ x, w }, { eps }, backend) =>
    runFused(
      backend,
      { key: "rms_norm", inputs: ["x", "w"], outputShape: x!.shape, invocations: x!.shape[0]! * WG, workgroupSize: WG, uniforms, body: forwardBody },
      [x!, w!],
      uniformValues(eps!, x!.shape),
    ),
)

const normalizeKernel = fusedKernel(
  "TurnwiseNormalize",
  ({ x }, { eps }, backend) =>
    runFused(
      backend,
      { key: "normalize", inputs: ["x"], outputShape: x!.shape, invocations: x!.shape[0]! * WG, workgroupSize: WG, uniforms, body: normalizeBody },
      [x!],
      uniformValues(eps!, x!.shape),
    ),
)

/**
 * `x * rsqrt(mean(x^2) + eps)` without a gain, one fused shader, no gradient (the
 * KV-cached decode on webgpu).
 *
 * @example
 * const h = fusedNormalize(x, 1e-6) // [N, D]
 */
export const fusedNormalize = (x: tf.Tensor2D, eps: number): tf.Tensor2D => normalizeKernel({ x }, { eps }) as tf.Tensor2D

const backwardXKernel = fusedKernel(
  "TurnwiseRmsNormGradX",
  ({ x, w, dy }, { eps }, backend) =>
    runFused(
      backend,
      { key: "rms_norm_dx", inputs: ["x", "w", "dy"], outputShape: x!.shape, invocations: x!.shape[0]! * WG, workgroupSize: WG, uniforms, body: backwardXBody },
      [x!, w!, dy!],
      uniformValues(eps!, x!.shape),
    ),
)

const backwardWKernel = fusedKernel(
  "TurnwiseRmsNormGradW",
  ({ x, dy }, { eps }, backend) =>
    runFused(
      backend,
      {
        key: "rms_norm_dw",
        inputs: ["x", "dy"],
        outputShape: [x!.shape[1]!],
        invocations: Math.ceil(x!.shape[1]! / WG) * WG,
        workgroupSize: WG,
        uniforms,
        body: backwardWBody,
      },
      [x!, dy!],
      uniformValues(eps!, x!.shape),
    ),
)

/**
 * RMSNorm with tfjs's standard ops and their gradients (every backend).
 *
 * @example
 * const y = compositeRmsNorm(x, weight, 1e-6) // [N, D]
 */
export const compositeRmsNorm = (x: tf.Tensor2D, w: tf.Tensor1D, eps: number): tf.Tensor2D => {
  const ms = tf.mean(tf.square(x), -1, true) // [N, 1]
  return tf.mul(tf.mul(x, tf.rsqrt(tf.add(ms, eps))), w) // [N, D]
}

/**
 * RMSNorm as fused webgpu shaders with a fused gradient. Only on the webgpu backend.
 *
 * @example
 * const y = fusedRmsNorm(x, weight, 1e-6) // [N, D], one dispatch
 */
export const fusedRmsNorm = (x: tf.Tensor2D, w: tf.Tensor1D, eps: number): tf.Tensor2D => {
  const f = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
    const [sx, sw, save] = args as [tf.Tensor2D, tf.Tensor1D, tf.GradSaveFunc]
    save([sx, sw])
    return {
      value: forwardKernel({ x: sx, w: sw }, { eps }),
      gradFunc: (dy: tf.Tensor, saved: Array<tf.Tensor>) => {
        const [xs, ws] = saved as [tf.Tensor2D, tf.Tensor1D]
        return [backwardXKernel({ x: xs, w: ws, dy }, { eps }), backwardWKernel({ x: xs, dy }, { eps })]
      },
    }
  })
  return f(x, w) as tf.Tensor2D
}

/**
 * RMSNorm over the last axis: fused on webgpu, composite elsewhere.
 *
 * @example
 * const h = rmsNorm(x, model.norm, 1e-6) // [N, D]
 */
export const rmsNorm = (x: tf.Tensor2D, w: tf.Tensor1D, eps: number): tf.Tensor2D =>
  fusedKernelsActive() ? fusedRmsNorm(x, w, eps) : compositeRmsNorm(x, w, eps)
