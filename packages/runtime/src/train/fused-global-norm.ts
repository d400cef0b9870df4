/**
 * The sum of squares of many tensors on webgpu in few dispatches: one shader sums up to
 * seven tensors (WebGPU's default of 8 storage buffers per stage, less the output), one
 * workgroup per tensor, so a model's gradients take ceil(n / 7) shaders plus a concat and
 * a sum, where the composite form takes a square and a sum per tensor. Used by the
 * gradient-norm clipping (./adamw.ts's globalNorm).
 *
 * @category models
 */
import * as tf from "@tensorflow/tfjs"
import { fusedKernel, runFused } from "../webgpu/program.js"

/** Threads that sum one tensor. */
const WG = 256
/** Tensors per shader: 8 storage buffers, one of them the output. */
const perShader = 7

const body = (count: number) => `
  var<workgroup> partial : array<f32, ${WG}>;
  fn main(index : i32) {
    let which = index / ${WG};
    let tid = index % ${WG};
    var s = 0.0;
    ${
  Array.from({ length: count }, (_, i) => `if (which == ${i}) { for (var j = tid; j < uniforms.n${i}; j += ${WG}) { let x = t${i}[j]; s += x * x; } }`).join(
    " else ",
  )
}
    partial[tid] = s;
    workgroupBarrier();
    for (var width = ${WG / 2}; width > 0; width >>= 1) {
      if (tid < width) { partial[tid] += partial[tid + width]; }
      workgroupBarrier();
    }
    if (tid == 0 && which < ${count}) { result[which] = partial[0]; }
  }`

const kernel = fusedKernel("TurnwiseSumOfSquares", (inputs, _attrs, backend) => {
  const tensors = Object.keys(inputs)
    .sort((a, b) => Number(a.slice(1)) - Number(b.slice(1)))
    .map((name) => inputs[name]!)
  return runFused(
    backend,
    {
      key: `sum_of_squares_${tensors.length}`,
      inputs: tensors.map((_, i) => `t${i}`),
      outputShape: [tensors.length],
      invocations: tensors.length * WG,
      workgroupSize: WG,
      uniforms: tensors.map((_, i) => `n${i} : i32,`).join(" "),
      body: body(tensors.length),
    },
    tensors,
    tensors.map((t) => ({ type: "int32" as const, data: [tf.util.sizeFromShape(t.shape)] })),
  )
})

/**
 * Sum over all tensors of the sum of their squared entries, as a scalar tensor, on webgpu.
 *
 * @example
 * const squared = fusedSumOfSquares([...grads.values()]) // scalar; sqrt of it is the global norm
 */
export const fusedSumOfSquares = (tensors: ReadonlyArray<tf.Tensor>): tf.Scalar =>
  tf.tidy(() => {
    const parts: Array<tf.Tensor> = []
    for (let start = 0; start < tensors.length; start += perShader) {
      const group = tensors.slice(start, start + perShader)
      parts.push(kernel(Object.fromEntries(group.map((t, i) => [`t${i}`, t]))))
    }
    return tf.sum(parts.length === 1 ? parts[0]! : tf.concat(parts))
  })
