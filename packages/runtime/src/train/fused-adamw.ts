/**
 * The AdamW update (./adamw.ts) on webgpu in few dispatches: the moments of many
 * parameters live packed in a few large buffers, so one shader updates the moments of up
 * to six parameters at once, and one more shader per parameter writes its new value.
 * A model with P parameter tensors takes about P / 6 + P dispatches per step where the
 * composite form takes about thirteen kernels per parameter. Same arithmetic as the
 * composite form (PyTorch's AdamW), with the gradient first multiplied by `gradScale`
 * (the clipping factor, so clipping needs no pass of its own):
 *
 *     g  = gradScale * grad
 *     m' = b1 m + (1 - b1) g
 *     v' = b2 v + (1 - b2) g^2
 *     p' = p * decay - lr * (m' / bc1) / (sqrt(v' / bc2) + eps)     decay = 1 - lr * wd, or 1
 *
 * Layout: parameters are assigned in order to buckets of at most {@link bucketFloats}
 * floats of moments (WebGPU guarantees storage bindings of 128 MiB and no more); within a
 * bucket, element j of a parameter at `offset` has m at 2 (offset + j) and v at
 * 2 (offset + j) + 1. A step writes each bucket's next moments into one new tensor (the
 * moment shaders of that bucket each fill their parameters' part of it, and a shader
 * copies the part of any parameter without a gradient) and assigns it; nothing is written
 * in place, so a variable sharing its buffer with another tensor stays safe.
 *
 * @category models
 */
import * as tf from "@tensorflow/tfjs"
import { type FusedProgram, fusedKernel, runFused, type Uniform } from "../webgpu/program.js"

/** The scalars of one AdamW step. */
export interface AdamWStepScalars {
  readonly lr: number
  readonly beta1: number
  readonly beta2: number
  readonly epsilon: number
  /** 1 - beta1^t and 1 - beta2^t. */
  readonly bc1: number
  readonly bc2: number
  /** Multiplies every gradient before use: the clipping factor, or 1. */
  readonly gradScale: number
}

/** Floats of moments per bucket: 128 MiB, the storage binding size every WebGPU device allows. */
export const bucketFloats = (128 * 1024 * 1024) / 4

/** Gradients one moment shader takes: 8 storage buffers per stage, less the output and the moments. */
const gradsPerShader = 6

interface Member {
  readonly name: string
  /** Index of the parameter's first element within its bucket (its moments start at twice that). */
  readonly offset: number
  readonly size: number
  readonly shape: ReadonlyArray<number>
}

interface Bucket {
  readonly moments: tf.Variable // [2 * sum of member sizes], m and v interleaved
  readonly members: ReadonlyArray<Member>
}

const momentBody = (count: number) => `
  fn main(index : i32) {
    if (index < uniforms.total) {
      var j = index;
      ${
  Array.from(
    { length: count },
    (_, i) =>
      `if (j < uniforms.n${i}) { let s = 2 * (uniforms.o${i} + j); let gi = uniforms.gradScale * g${i}[j]; result[s] = uniforms.beta1 * moments[s] + (1.0 - uniforms.beta1) * gi; result[s + 1] = uniforms.beta2 * moments[s + 1] + (1.0 - uniforms.beta2) * gi * gi; return; }
      j -= uniforms.n${i};`,
  ).join("\n      ")
}
    }
  }`

const copyBody = `
  fn main(index : i32) {
    if (index < 2 * uniforms.n) { result[2 * uniforms.o + index] = moments[2 * uniforms.o + index]; }
  }`

/**
 * The next moments of one bucket. Inputs: `moments` and the gradients `g0`, `g1`, ...;
 * attributes: `beta1`, `beta2`, `gradScale`, the offset `o<i>` of each gradient's
 * parameter, and the parameters without a gradient, whose moments are copied: `keeps`
 * of them, at offsets `ko<j>` with sizes `kn<j>`.
 */
const nextMoments = fusedKernel("TurnwiseAdamWMoments", (inputs, attrs, backend) => {
  const moments = inputs["moments"]!
  const outputShape = moments.shape
  let out: tf.TensorInfo | undefined
  const run = (spec: FusedProgram, given: Array<tf.TensorInfo>, uniforms: Array<Uniform>) => {
    out = runFused(backend, spec, given, uniforms, out)
  }
  const grads: Array<{ readonly g: tf.TensorInfo; readonly offset: number }> = []
  for (let i = 0; inputs[`g${i}`] !== undefined; i++) grads.push({ g: inputs[`g${i}`]!, offset: attrs[`o${i}`]! })
  const scalars = ["beta1", "beta2", "gradScale"].map((s) => ({ type: "float32" as const, data: [attrs[s]!] }))
  for (let start = 0; start < grads.length; start += gradsPerShader) {
    const group = grads.slice(start, start + gradsPerShader)
    const sizes = group.map(({ g }) => tf.util.sizeFromShape(g.shape))
    const total = sizes.reduce((a, b) => a + b, 0)
    run(
      {
        key: `adamw_moments_${group.length}`,
        inputs: ["moments", ...group.map((_, i) => `g${i}`)],
        outputShape,
        invocations: total,
        uniforms: `total : i32, beta1 : f32, beta2 : f32, gradScale : f32, ${group.map((_, i) => `n${i} : i32, o${i} : i32,`).join(" ")}`,
        body: momentBody(group.length),
      },
      [moments, ...group.map(({ g }) => g)],
      [
        { type: "int32", data: [total] },
        ...scalars,
        ...group.flatMap(({ offset }, i) => [{ type: "int32" as const, data: [sizes[i]!] }, { type: "int32" as const, data: [offset] }]),
      ],
    )
  }
  for (let j = 0; j < (attrs["keeps"] ?? 0); j++) {
    const size = attrs[`kn${j}`]!
    run(
      { key: "adamw_moments_keep", inputs: ["moments"], outputShape, invocations: 2 * size, uniforms: "n : i32, o : i32,", body: copyBody },
      [moments],
      [{ type: "int32", data: [size] }, { type: "int32", data: [attrs[`ko${j}`]!] }],
    )
  }
  return out!
})

const nextParameter = fusedKernel("TurnwiseAdamWParameter", ({ p, moments }, attrs, backend) => {
  const n = tf.util.sizeFromShape(p!.shape)
  return runFused(
    backend,
    {
      key: "adamw_parameter",
      inputs: ["p", "moments"],
      outputShape: p!.shape,
      invocations: n,
      uniforms: "n : i32, o : i32, lr : f32, epsilon : f32, bc1 : f32, bc2 : f32, decay : f32,",
      body: `fn main(index : i32) {
        if (index < uniforms.n) {
          let s = 2 * (uniforms.o + index);
          result[index] = p[index] * uniforms.decay - uniforms.lr * (moments[s] / uniforms.bc1) / (sqrt(moments[s + 1] / uniforms.bc2) + uniforms.epsilon);
        }
      }`,
    },
    [p!, moments!],
    [
      { type: "int32", data: [n] },
      { type: "int32", data: [attrs["offset"]!] },
      ...(["lr", "epsilon", "bc1", "bc2", "decay"] as const).map((s) => ({ type: "float32" as const, data: [attrs[s]!] })),
    ],
  )
})

/**
 * AdamW's moments for a set of parameters, packed for the fused webgpu update.
 *
 * @example
 * const moments = new PackedMoments(model.variables)
 * moments.update(model.variables, grads, scalars, (name) => decayFactor(name))
 */
export class PackedMoments {
  private readonly buckets: Array<Bucket> = []
  /** Unpacked copies handed out by {@link unpack}, freed at the next change. */
  private views: Array<tf.Tensor> = []

  /** `floatsPerBucket` (default {@link bucketFloats}) is smaller only in tests. */
  constructor(variables: ReadonlyMap<string, tf.Variable>, floatsPerBucket = bucketFloats) {
    let members: Array<Member> = []
    let used = 0
    const close = () => {
      if (members.length === 0) return
      this.buckets.push({ moments: tf.variable(tf.zeros([2 * used]), false), members })
      members = []
      used = 0
    }
    for (const [name, p] of variables) {
      if (used > 0 && 2 * (used + p.size) > floatsPerBucket) close()
      members.push({ name, offset: used, size: p.size, shape: p.shape })
      used += p.size
    }
    close()
  }

  /**
   * One AdamW step: new moments for every parameter with a gradient, then its new value.
   * `decay(name)` is the factor weight decay multiplies the parameter by (1 for none).
   */
  update(
    variables: ReadonlyMap<string, tf.Variable>,
    grads: ReadonlyMap<string, tf.Tensor>,
    scalars: AdamWStepScalars,
    decay: (name: string) => number,
  ): void {
    this.release()
    const { lr, beta1, beta2, epsilon, bc1, bc2, gradScale } = scalars
    for (const bucket of this.buckets) {
      const present = bucket.members.filter((m) => grads.has(m.name))
      if (present.length === 0) continue
      tf.tidy(() => {
        const inputs: Record<string, tf.Tensor> = { moments: bucket.moments }
        const attrs: Record<string, number> = { beta1, beta2, gradScale }
        present.forEach((m, i) => {
          inputs[`g${i}`] = grads.get(m.name)!
          attrs[`o${i}`] = m.offset
        })
        const kept = bucket.members.filter((m) => !grads.has(m.name))
        attrs["keeps"] = kept.length
        kept.forEach((m, j) => {
          attrs[`ko${j}`] = m.offset
          attrs[`kn${j}`] = m.size
        })
        const moments = nextMoments(inputs, attrs)
        for (const member of present) {
          const p = variables.get(member.name)!
          p.assign(nextParameter({ p, moments }, { offset: member.offset, lr, epsilon, bc1, bc2, decay: decay(member.name) }))
        }
        bucket.moments.assign(moments)
      })
    }
  }

  /** Each parameter's moments as `exp_avg/<name>` and `exp_avg_sq/<name>`, valid until the next update or load. */
  unpack(): Map<string, tf.Tensor> {
    this.release()
    const out = new Map<string, tf.Tensor>()
    for (const { moments, members } of this.buckets) {
      tf.tidy(() => {
        const pairs = tf.reshape(moments, [-1, 2]) // [elements, 2]: m, v
        for (const m of members) {
          const [first, second] = tf.split(tf.slice(pairs, [m.offset, 0], [m.size, 2]), 2, 1) // [size, 1] each
          const views = [tf.keep(tf.reshape(first!, [...m.shape])), tf.keep(tf.reshape(second!, [...m.shape]))]
          out.set(`exp_avg/${m.name}`, views[0]!)
          out.set(`exp_avg_sq/${m.name}`, views[1]!)
          this.views.push(...views)
        }
      })
    }
    return out
  }

  /** Replace every moment; `tensors` holds `exp_avg/<name>` and `exp_avg_sq/<name>` of every parameter, checked by the caller. */
  load(tensors: ReadonlyMap<string, tf.Tensor>): void {
    this.release()
    for (const { moments, members } of this.buckets) {
      tf.tidy(() => {
        const flat = (key: string) => tf.reshape(tf.cast(tensors.get(key)!, "float32"), [-1, 1]) // [size, 1]
        const parts = members.map((m) => tf.concat([flat(`exp_avg/${m.name}`), flat(`exp_avg_sq/${m.name}`)], 1)) // [size, 2] each
        moments.assign(tf.reshape(parts.length === 1 ? parts[0]! : tf.concat(parts, 0), [-1]))
      })
    }
  }

  /** How many buckets the moments are packed into. */
  get bucketCount(): number {
    return this.buckets.length
  }

  dispose(): void {
    this.release()
    for (const b of this.buckets) b.moments.dispose()
  }

  private release(): void {
    tf.dispose(this.views)
    this.views = []
  }
}
