/**
 * The AdamW update (./adamw.ts) of one parameter as three fused webgpu shaders: the
 * first moment, the second moment, and the parameter, each one dispatch that reads the
 * gradient once. tfjs's composite form is about thirteen kernels per parameter. Same
 * arithmetic as the composite form (PyTorch's AdamW):
 *
 *     m' = b1 m + (1 - b1) g
 *     v' = b2 v + (1 - b2) g^2
 *     p' = p * decay - lr * (m' / bc1) / (sqrt(v' / bc2) + eps)     decay = 1 - lr * wd, or 1
 *
 * The results are new tensors assigned to the variables (no in-place writes, so a
 * variable that shares its buffer with another tensor, as after `assign`, is safe).
 *
 * @category models
 */
import * as tf from "@tensorflow/tfjs"
import { fusedKernel, runFused } from "../webgpu/program.js"

/** The scalars of one AdamW step. */
export interface AdamWStepScalars {
  readonly lr: number
  readonly beta1: number
  readonly beta2: number
  readonly epsilon: number
  /** 1 - beta1^t and 1 - beta2^t. */
  readonly bc1: number
  readonly bc2: number
  /** The factor weight decay multiplies the parameter by: 1 - lr * wd, or 1 where it does not decay. */
  readonly decay: number
}

const uniforms = "n : i32, lr : f32, beta1 : f32, beta2 : f32, epsilon : f32, bc1 : f32, bc2 : f32, decay : f32,"
const scalarOrder = ["lr", "beta1", "beta2", "epsilon", "bc1", "bc2", "decay"] as const

const kernel = (name: string, key: string, inputs: Array<string>, expression: string) =>
  fusedKernel(name, (given, attrs, backend) => {
    const tensors = inputs.map((input) => given[input]!)
    const n = tf.util.sizeFromShape(tensors[0]!.shape)
    return runFused(
      backend,
      { key, inputs, outputShape: tensors[0]!.shape, invocations: n, uniforms, body: `fn main(index : i32) { if (index < uniforms.n) { ${expression} } }` },
      tensors,
      [{ type: "int32", data: [n] }, ...scalarOrder.map((s) => ({ type: "float32" as const, data: [attrs[s]!] }))],
    )
  })

const firstMoment = kernel("TurnwiseAdamWFirstMoment", "adamw_m", ["m", "g"], "result[index] = uniforms.beta1 * m[index] + (1.0 - uniforms.beta1) * g[index];")
const secondMoment = kernel(
  "TurnwiseAdamWSecondMoment",
  "adamw_v",
  ["v", "g"],
  "let gi = g[index]; result[index] = uniforms.beta2 * v[index] + (1.0 - uniforms.beta2) * gi * gi;",
)
const parameter = kernel(
  "TurnwiseAdamWParameter",
  "adamw_p",
  ["p", "m", "v"],
  "result[index] = p[index] * uniforms.decay - uniforms.lr * (m[index] / uniforms.bc1) / (sqrt(v[index] / uniforms.bc2) + uniforms.epsilon);",
)

/**
 * Apply one AdamW step to `p` and its moments `m`, `v` with gradient `g`, on webgpu.
 *
 * @example
 * fusedAdamWUpdate(p, m, v, g, { lr: 1e-3, beta1: 0.9, beta2: 0.999, epsilon: 1e-8, bc1: 0.1, bc2: 0.001, decay: 1 })
 */
export const fusedAdamWUpdate = (p: tf.Variable, m: tf.Variable, v: tf.Variable, g: tf.Tensor, scalars: AdamWStepScalars): void => {
  const attrs = { ...scalars }
  tf.tidy(() => {
    const m1 = firstMoment({ m, g }, attrs)
    const v1 = secondMoment({ v, g }, attrs)
    const p1 = parameter({ p, m: m1, v: v1 }, attrs)
    m.assign(m1)
    v.assign(v1)
    p.assign(p1)
  })
}
