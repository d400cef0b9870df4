/**
 * SwiGLU's gating, `silu(gate) * up` = `gate * sigmoid(gate) * up`, elementwise.
 *
 * On webgpu: one fused shader forward, one per input gradient backward (tfjs would run
 * sigmoid and two multiplies forward and about eight kernels backward). Other backends
 * run the composite ops. With s = sigmoid(gate):
 *
 *     d gate = dy * up * s * (1 + gate * (1 - s))
 *     d up   = dy * gate * s
 *
 * @category layers
 */
import * as tf from "@tensorflow/tfjs"
import { fusedKernel, fusedKernelsActive, runFused } from "../../webgpu/program.js"

const elementwise = (expression: string) => `
  fn main(index : i32) {
    if (index < uniforms.n) {
      let g = gate[index];
      let s = 1.0 / (1.0 + exp(-g));
      ${expression}
    }
  }`

const kernel = (name: string, key: string, inputs: Array<string>, expression: string) =>
  fusedKernel(name, (given, _attrs, backend) => {
    const tensors = inputs.map((input) => given[input]!)
    const n = tf.util.sizeFromShape(tensors[0]!.shape)
    return runFused(backend, { key, inputs, outputShape: tensors[0]!.shape, invocations: n, uniforms: "n : i32,", body: elementwise(expression) }, tensors, [{
      type: "int32",
      data: [n],
    }])
  })

const forwardKernel = kernel("TurnwiseSwiGlu", "swiglu", ["gate", "up"], "result[index] = g * s * up[index];")
const gateGradKernel = kernel(
  "TurnwiseSwiGluGradGate",
  "swiglu_dgate",
  ["gate", "up", "dy"],
  "result[index] = dy[index] * up[index] * s * (1.0 + g * (1.0 - s));",
)
const upGradKernel = kernel("TurnwiseSwiGluGradUp", "swiglu_dup", ["gate", "dy"], "result[index] = dy[index] * g * s;")

/**
 * `silu(gate) * up` with tfjs's standard ops (every backend).
 *
 * @example
 * const act = compositeSwiGlu(gate, up) // [N, F]
 */
export const compositeSwiGlu = (gate: tf.Tensor2D, up: tf.Tensor2D): tf.Tensor2D => tf.mul(tf.mul(gate, tf.sigmoid(gate)), up)

/**
 * `silu(gate) * up` as a fused webgpu shader with a fused gradient. Only on webgpu.
 *
 * @example
 * const act = fusedSwiGlu(gate, up) // [N, F], one dispatch
 */
export const fusedSwiGlu = (gate: tf.Tensor2D, up: tf.Tensor2D): tf.Tensor2D => {
  const f = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
    const [g, u, save] = args as [tf.Tensor2D, tf.Tensor2D, tf.GradSaveFunc]
    save([g, u])
    return {
      value: forwardKernel({ gate: g, up: u }),
      gradFunc: (dy: tf.Tensor, saved: Array<tf.Tensor>) => {
        const [sg, su] = saved as [tf.Tensor2D, tf.Tensor2D]
        return [gateGradKernel({ gate: sg, up: su, dy }), upGradKernel({ gate: sg, dy })]
      },
    }
  })
  return f(gate, up) as tf.Tensor2D
}

/**
 * The MLP's gating: fused on webgpu, composite elsewhere.
 *
 * @example
 * const act = swiGlu(gateProj, upProj) // [N, F]
 */
export const swiGlu = (gate: tf.Tensor2D, up: tf.Tensor2D): tf.Tensor2D => (fusedKernelsActive() ? fusedSwiGlu(gate, up) : compositeSwiGlu(gate, up))
