/**
 * AdamW: Adam with decoupled weight decay (Loshchilov & Hutter), over a model's
 * named tf.Variables, plus global gradient-norm clipping.
 *
 * The update for a parameter p with gradient g at step t (1-based), learning rate lr:
 *
 *     p <- p - lr * wd * p                      (only where `decay(name, p)` holds)
 *     m <- b1 * m + (1 - b1) * g
 *     v <- b2 * v + (1 - b2) * g^2
 *     p <- p - lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
 *
 * which is the form PyTorch's `torch.optim.AdamW` uses, so hyper-parameters carry over.
 * The moments live in tf.Variables updated in place, so a step allocates nothing that
 * outlives it; on webgpu they are packed into a few large variables so that one shader
 * updates the moments of several parameters (./fused-adamw.ts). The learning rate is passed to each step rather than stored, so a
 * schedule stays a pure function of the step (see schedule.ts).
 *
 * State (the step count and both moments) is exposed as named tensors so a checkpoint
 * can store it in safetensors and a resumed run can continue bit-for-bit.
 *
 * @category models
 */
import * as tf from "@tensorflow/tfjs"
import { Data } from "effect"
import { fusedKernelsActive } from "../webgpu/program.js"
import { PackedMoments } from "./fused-adamw.js"
import { fusedSumOfSquares } from "./fused-global-norm.js"

/** Hyper-parameters of AdamW (the learning rate comes with each step). */
export interface AdamWOptions {
  /** Exponential decay of the first moment. Default 0.9. */
  readonly beta1: number
  /** Exponential decay of the second moment. Default 0.999. */
  readonly beta2: number
  /** Added to the denominator for stability. Default 1e-8. */
  readonly epsilon: number
  /** Decoupled weight decay coefficient (multiplied by the learning rate). Default 0.01. */
  readonly weightDecay: number
  /** Which parameters decay. Default: {@link defaultDecayFilter} (matrices, not norms or biases). */
  readonly decay: (name: string, variable: tf.Variable) => boolean
}

/**
 * Decay weight matrices and embeddings; leave norms, biases and other vectors alone.
 *
 * @example
 * defaultDecayFilter("model.layers.0.input_layernorm.weight", v) // false
 * defaultDecayFilter("model.layers.0.mlp.up_proj.weight", v)     // true (rank 2)
 */
export const defaultDecayFilter = (name: string, variable: tf.Variable): boolean => variable.rank >= 2 && !/norm|bias/i.test(name)

/** The defaults of {@link AdamWOptions}. */
export const adamWDefaults: AdamWOptions = {
  beta1: 0.9,
  beta2: 0.999,
  epsilon: 1e-8,
  weightDecay: 0.01,
  decay: defaultDecayFilter,
}

/**
 * Serialisable optimizer state: the number of updates applied and both moments per
 * parameter, named `exp_avg/<param>` and `exp_avg_sq/<param>` (PyTorch's names).
 */
export interface AdamWState {
  readonly step: number
  readonly tensors: ReadonlyMap<string, tf.Tensor>
}

/**
 * Optimizer state that does not fit the parameters it is loaded into.
 *
 * @example
 * throw new OptimizerStateError({ problem: "missing tensor exp_avg/lm_head.weight" })
 */
export class OptimizerStateError extends Data.TaggedError("OptimizerStateError")<{
  readonly problem: string
}> {
  override get message(): string {
    return `AdamW state: ${this.problem}`
  }
}

/**
 * AdamW over a fixed set of named variables.
 *
 * @example
 * const opt = new AdamW(model.variables, { weightDecay: 0.1 })
 * opt.apply(grads, 3e-4)   // grads: Map from the same names to gradient tensors
 * const saved = opt.state() // step + exp_avg/... + exp_avg_sq/...
 */
export class AdamW {
  readonly options: AdamWOptions
  private readonly variables: ReadonlyMap<string, tf.Variable>
  private readonly m = new Map<string, tf.Variable>()
  private readonly v = new Map<string, tf.Variable>()
  /** On webgpu (chosen when the optimizer is made): the moments, packed; m and v stay empty. */
  private readonly packed: PackedMoments | undefined
  private t = 0

  constructor(variables: ReadonlyMap<string, tf.Variable>, options: Partial<AdamWOptions> = {}) {
    this.options = { ...adamWDefaults, ...options }
    this.variables = variables
    // Moments are allocated up front so tf.memory() is flat from the first step on.
    this.packed = fusedKernelsActive() ? new PackedMoments(variables) : undefined
    if (this.packed !== undefined) return
    for (const [name, p] of variables) {
      this.m.set(name, tf.variable(tf.zerosLike(p), false))
      this.v.set(name, tf.variable(tf.zerosLike(p), false))
    }
  }

  /** Number of updates applied so far. */
  get step(): number {
    return this.t
  }

  /**
   * Apply one update with learning rate `lr`. `grads` maps parameter names to
   * gradients, each multiplied by `gradScale` first (the clipping factor of
   * {@link clipScale}: clipping costs no pass over the gradients of its own); a
   * parameter without a gradient is left untouched (its moments too).
   */
  apply(grads: ReadonlyMap<string, tf.Tensor>, lr: number, gradScale = 1): void {
    const { beta1, beta2, epsilon, weightDecay, decay } = this.options
    this.t += 1
    const bc1 = 1 - beta1 ** this.t
    const bc2 = 1 - beta2 ** this.t
    const decayFactor = (name: string, p: tf.Variable): number => (decay(name, p) && weightDecay !== 0 ? 1 - lr * weightDecay : 1)
    if (this.packed !== undefined) {
      this.packed.update(this.variables, grads, { lr, beta1, beta2, epsilon, bc1, bc2, gradScale }, (name) => decayFactor(name, this.variables.get(name)!))
      return
    }
    for (const [name, p] of this.variables) {
      const given = grads.get(name)
      if (given === undefined) continue
      const m = this.m.get(name)
      const v = this.v.get(name)
      if (m === undefined || v === undefined) continue
      tf.tidy(() => {
        const g = gradScale === 1 ? given : given.mul(gradScale)
        const factor = decayFactor(name, p)
        const decayed = factor !== 1 ? p.mul(factor) : p
        const m1 = m.mul(beta1).add(g.mul(1 - beta1))
        const v1 = v.mul(beta2).add(g.square().mul(1 - beta2))
        const update = m1.div(bc1).div(v1.div(bc2).sqrt().add(epsilon)).mul(lr)
        m.assign(m1)
        v.assign(v1)
        p.assign(decayed.sub(update))
      })
    }
  }

  /**
   * The state to checkpoint. The tensors are the optimizer's own, valid until its next
   * update or load: read them, do not dispose them.
   */
  state(): AdamWState {
    if (this.packed !== undefined) return { step: this.t, tensors: this.packed.unpack() }
    const tensors = new Map<string, tf.Tensor>()
    for (const [name, m] of this.m) tensors.set(`exp_avg/${name}`, m)
    for (const [name, v] of this.v) tensors.set(`exp_avg_sq/${name}`, v)
    return { step: this.t, tensors }
  }

  /**
   * Continue from a saved state. Every moment must be present with its parameter's
   * shape; nothing is changed unless all are. The given tensors are copied (the caller
   * still owns them).
   */
  loadState(state: AdamWState): void {
    if (!Number.isInteger(state.step) || state.step < 0) {
      throw new OptimizerStateError({ problem: `step must be a non-negative integer, got ${state.step}` })
    }
    for (const kind of ["exp_avg", "exp_avg_sq"]) {
      for (const [name, p] of this.variables) {
        const key = `${kind}/${name}`
        const source = state.tensors.get(key)
        if (source === undefined) throw new OptimizerStateError({ problem: `missing tensor ${key}` })
        if (!tf.util.arraysEqual(source.shape, p.shape)) {
          throw new OptimizerStateError({
            problem: `tensor ${key} has shape [${source.shape.join(", ")}], parameter has [${p.shape.join(", ")}]`,
          })
        }
      }
    }
    if (this.packed !== undefined) {
      this.packed.load(state.tensors)
    } else {
      for (const [kind, moments] of [["exp_avg", this.m], ["exp_avg_sq", this.v]] as const) {
        for (const [name, target] of moments) {
          const source = state.tensors.get(`${kind}/${name}`)!
          target.assign(source.dtype === "float32" ? source : tf.cast(source, "float32"))
        }
      }
    }
    this.t = state.step
  }

  /** Free the moments. */
  dispose(): void {
    this.packed?.dispose()
    for (const m of this.m.values()) m.dispose()
    for (const v of this.v.values()) v.dispose()
  }
}

/**
 * Scale gradients so their global L2 norm is at most `maxNorm` (as PyTorch's
 * `clip_grad_norm_`: factor min(1, maxNorm / (norm + 1e-6))). Returns the norm before
 * clipping and new gradient tensors (the caller disposes both the inputs and outputs).
 * A non-finite norm leaves the gradients unscaled; the caller decides to skip.
 *
 * @example
 * const { grads: clipped, norm } = await clipByGlobalNorm(grads, 1.0)
 */
export const clipByGlobalNorm = async (
  grads: ReadonlyMap<string, tf.Tensor>,
  maxNorm: number | null,
): Promise<{ readonly grads: Map<string, tf.Tensor>; readonly norm: number }> => {
  const norm = await globalNorm(grads)
  const factor = clipScale(norm, maxNorm)
  const out = new Map<string, tf.Tensor>()
  for (const [name, g] of grads) out.set(name, factor === 1 ? g.clone() : tf.tidy(() => g.mul(factor)))
  return { grads: out, norm }
}

/**
 * The factor that brings a gradient of global norm `norm` to at most `maxNorm`
 * (PyTorch's `clip_grad_norm_`: min(1, maxNorm / (norm + 1e-6))); 1 with clipping off
 * or a non-finite norm. The trainer hands it to {@link AdamW.apply} as `gradScale`.
 *
 * @example
 * clipScale(13, 6.5) // ~0.5
 */
export const clipScale = (norm: number, maxNorm: number | null): number => maxNorm !== null && Number.isFinite(norm) ? Math.min(1, maxNorm / (norm + 1e-6)) : 1

/**
 * The global L2 norm of a set of tensors, as a number. Read asynchronously: the
 * webgpu backend cannot read synchronously in Node.
 *
 * @example
 * await globalNorm(new Map([["a", tf.tensor1d([3, 4])]])) // 5
 */
export const globalNorm = async (tensors: ReadonlyMap<string, tf.Tensor>): Promise<number> => {
  if (tensors.size === 0) return 0
  // stack + sum, not addN: webgpu's AddN binds every input at once, and a model has more
  // weights than a shader stage may bind (8 storage buffers by default); its Concat splits.
  // On webgpu: one fused shader per seven tensors instead of a square and a sum per tensor.
  const squared = fusedKernelsActive()
    ? fusedSumOfSquares([...tensors.values()])
    : tf.tidy(() => tf.sum(tf.stack([...tensors.values()].map((t) => t.square().sum()))))
  const value = (await squared.data())[0] ?? Number.NaN
  squared.dispose()
  return Math.sqrt(value)
}
