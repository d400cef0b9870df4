/**
 * Turnwise's own WebGPU kernels, run through tfjs-webgpu's custom-program API.
 *
 * A fused kernel is one WGSL compute shader that does the work of many tfjs kernels
 * (each of which is a dispatch with its own buffers, bind group and uniforms). It is
 * registered with tfjs as a kernel of the `webgpu` backend (`tf.registerKernel`), so it
 * runs through the engine like any other kernel: the profiler counts it, memory is
 * tracked, and tensors stay on the GPU. Its body is WGSL written against tfjs-webgpu's
 * shader prelude: inputs are `array<f32>` named after `inputs`, the output is `result`,
 * uniforms are `uniforms.NAME`, and `main(index)` runs once per invocation with the
 * global invocation index.
 *
 * tfjs-webgpu is never imported here: a backend object is used only through
 * `runWebGPUProgram`, so other backends do not need the package.
 *
 * @category layers
 */
import * as tf from "@tensorflow/tfjs"

/** A uniform value, as tfjs-webgpu's runWebGPUProgram takes it. */
export interface Uniform {
  readonly type: "float32" | "int32" | "uint32"
  readonly data: Array<number>
}

/** The part of tfjs-webgpu's backend a custom program needs. */
interface WebGpuBackendLike {
  readonly runWebGPUProgram: (
    program: object,
    inputs: Array<tf.TensorInfo>,
    dtype: tf.DataType,
    uniforms?: Array<Uniform>,
    output?: tf.TensorInfo,
  ) => tf.TensorInfo
}

/** One fused shader: its inputs, output, launch size and WGSL body. */
export interface FusedProgram {
  /** Identifies the shader with every constant baked into its body (tfjs caches pipelines by it). */
  readonly key: string
  /** Names of the input arrays in WGSL, in the order the inputs are given. */
  readonly inputs: ReadonlyArray<string>
  readonly outputShape: ReadonlyArray<number>
  /** Invocations to launch (rounded up to whole workgroups; `main` must guard its index). */
  readonly invocations: number
  /** Invocations per workgroup (row-wise kernels use one workgroup per row). Default 64. */
  readonly workgroupSize?: number
  /** Extra uniform fields, WGSL struct syntax: "eps : f32, cols : i32,". */
  readonly uniforms?: string
  /** WGSL: helpers and workgroup variables, then `fn main(index : i32) { ... }`. */
  readonly body: string
}

/** tfjs-webgpu's program object (see its WebGPUProgram interface). */
class Program {
  readonly variableNames: Array<string>
  readonly outputShape: Array<number>
  readonly shaderKey: string
  readonly dispatchLayout: { x: Array<number> }
  dispatch: [number, number, number]
  readonly workgroupSize: [number, number, number]
  readonly uniforms: string | undefined
  private readonly body: string

  constructor(spec: FusedProgram) {
    const size = spec.workgroupSize ?? 64
    this.variableNames = [...spec.inputs]
    this.outputShape = [...spec.outputShape]
    this.shaderKey = `turnwise_${spec.key}`
    // Flat: tfjs spreads workgroups over y and z past 65535 and still hands main() a flat index.
    this.dispatchLayout = { x: this.outputShape.map((_, i) => i) }
    this.dispatch = [Math.max(1, Math.ceil(spec.invocations / size)), 1, 1]
    this.workgroupSize = [size, 1, 1]
    this.uniforms = spec.uniforms
    this.body = spec.body
  }

  getUserCode(): string {
    return this.body
  }
}

/**
 * Run one fused program on a webgpu backend; the output is float32. `output`, when
 * given, is an existing float32 tensor of `spec.outputShape` written in place (it must
 * not also be an input: WebGPU refuses a buffer bound for reading and writing at once).
 */
export const runFused = (
  backend: unknown,
  spec: FusedProgram,
  inputs: Array<tf.TensorInfo>,
  uniforms: Array<Uniform> = [],
  output?: tf.TensorInfo,
): tf.TensorInfo => {
  if (spec.inputs.length !== inputs.length) throw new Error(`fused kernel ${spec.key}: ${spec.inputs.length} inputs declared, ${inputs.length} given`)
  // WebGPU's default limit is 8 storage buffers per stage, and the output is one of them.
  if (inputs.length > 7) throw new Error(`fused kernel ${spec.key}: ${inputs.length} inputs, at most 7 fit one shader`)
  return (backend as WebGpuBackendLike).runWebGPUProgram(new Program(spec), inputs, "float32", uniforms, output)
}

/** How a fused kernel turns its named inputs and numeric attributes into one output. */
export type FusedKernelFunc = (inputs: Record<string, tf.TensorInfo>, attrs: Record<string, number>, backend: unknown) => tf.TensorInfo

const registered = new Set<string>()

/**
 * Register `kernelFunc` as the tfjs kernel `name` of the webgpu backend (once per
 * process) and return a function that runs it on tensors through the engine.
 *
 * @example
 * const scale = fusedKernel("TurnwiseScale", (inputs, attrs, backend) => runFused(backend, spec, [inputs.x!], [{ type: "float32", data: [attrs.k!] }]))
 * const y = scale({ x }, { k: 2 })
 */
export const fusedKernel =
  (name: string, kernelFunc: FusedKernelFunc) => (inputs: Record<string, tf.Tensor>, attrs: Record<string, number> = {}): tf.Tensor => {
    if (!registered.has(name)) {
      tf.registerKernel({
        kernelName: name,
        backendName: "webgpu",
        kernelFunc: ({ inputs: given, attrs: a, backend }) => kernelFunc(given as Record<string, tf.TensorInfo>, (a ?? {}) as Record<string, number>, backend),
      })
      registered.add(name)
    }
    return tf.engine().runKernel(name, inputs as tf.NamedTensorMap, attrs as tf.NamedAttrMap) as tf.Tensor
  }

/** Whether fused kernels run here: the active backend is webgpu. */
export const fusedKernelsActive = (): boolean => tf.getBackend() === "webgpu"
