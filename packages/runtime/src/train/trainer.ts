/**
 * The RL trainer: one call to `step` turns a batch of TrainingSequences into one or
 * more AdamW updates of a TrainableModel under a policy loss from @turnwise/core.
 *
 * For each optimisation epoch the batch is split into micro-batches (shuffled with the
 * run's Rng). For each micro-batch the trainer recomputes the log-probability of the
 * sequences' own tokens under the current weights (log_softmax(logits / temperature) at
 * position k-1, read at token k; position 0 has no prediction and is masked), hands
 * them with the mask, old logprobs and advantages to the loss as LossInputs (all [B, T]
 * and aligned with the sequences: entry k is token k), and takes gradients with
 * tf.variableGrads. Gradients are accumulated across micro-batches, clipped by their
 * global norm and applied once per epoch, so peak memory is bounded by one micro-batch
 * while the update equals the full-batch update.
 *
 * Accumulation weights (`accumulation`): the loss of micro-batch i is an average over
 * its own items, so the full-batch gradient is the weighted sum of micro-batch gradients
 * with weight n_i / N:
 * - "tokens" (default): n_i = policy tokens in micro-batch i. Exact for token-mean
 *   aggregation (GTPO's and DAPO's default).
 * - "sequences": n_i = sequences in micro-batch i. Exact for sequence-mean aggregation
 *   (original GRPO's mean of per-sequence token means).
 * Loss metrics are averaged with the same weights, so `loss` is the full-batch loss.
 *
 * A non-finite loss or gradient norm skips the update: weights and optimizer state stay
 * as they were, the step is logged and reported as skipped with the reason, and the
 * remaining epochs of that call are not run (they would see the same weights).
 *
 * The update machinery is shared with supervised.ts through {@link createUpdateEngine};
 * only the objective differs.
 *
 * @category constructors
 */
import * as tf from "@tensorflow/tfjs"
import type { LossInputs, LossOutput, TrainingSequence } from "@turnwise/core"
import type { TrainableModel } from "../model/types.js"
import type { Rng } from "@turnwise/core"
import { AdamW, type AdamWOptions, clipByGlobalNorm } from "./adamw.js"
import { disposeBatch, padSequences, type PaddedBatch, planMicroBatches, TrainingInputError, validateSequence } from "./batching.js"
import { learningRate, type ScheduleOptions } from "./schedule.js"

/** How micro-batch gradients are weighted when accumulated (see the module header). */
export type Accumulation = "tokens" | "sequences"

/** What one call to `step` did. Field names match the metric names in `metrics`. */
export interface StepReport {
  /** Optimizer updates applied in total after this call. */
  readonly step: number
  /** True when an update was skipped (non-finite loss or gradient, or nothing to train on). */
  readonly skipped: boolean
  /** Why it was skipped. */
  readonly reason?: string
  /** Weighted mean of the objective over the batch, averaged over the epochs run. */
  readonly loss: number
  /** Global gradient norm before clipping, averaged over the epochs run. */
  readonly gradNorm: number
  /** Learning rate of the last update. */
  readonly lr: number
  /** Policy (mask 1) tokens in the batch. */
  readonly tokens: number
  /** Sequences in the batch. */
  readonly sequences: number
  /** Micro-batches per epoch. */
  readonly microBatches: number
  /** Updates applied by this call. */
  readonly updates: number
  /** Wall-clock seconds of this call. */
  readonly seconds: number
  /** Everything above plus the objective's own metrics (averaged like `loss`), by stable name. */
  readonly metrics: Readonly<Record<string, number>>
}

/** Options shared by the RL and the supervised trainer. */
export interface UpdateOptions {
  /** AdamW hyper-parameters (defaults: see adamw.ts). */
  readonly optimizer?: Partial<AdamWOptions>
  /** Learning-rate schedule, indexed by the optimizer's update count. */
  readonly schedule: ScheduleOptions
  /** Optimisation epochs (updates) per call. Default 1. */
  readonly epochs?: number
  /** At most this many sequences per micro-batch. Default: no cap. */
  readonly microBatchSize?: number
  /** At most this many padded tokens (B x T) per micro-batch. Default: no cap. */
  readonly microBatchTokens?: number
  /** Clip the global gradient norm to this; null turns clipping off. Default 1. */
  readonly maxGradNorm?: number | null
  /** Micro-batch weighting; must match the loss's aggregation. Default "tokens". */
  readonly accumulation?: Accumulation
  /** Shuffles sequences into micro-batches; without one the input order is kept. */
  readonly rng?: Rng
  /** Token id used for padding. Default 0. */
  readonly padId?: number
  /** Where skipped updates are reported. Default console.warn. */
  readonly log?: (line: string) => void
}

/** Options of the RL trainer. */
export interface TrainerOptions extends UpdateOptions {
  /** The policy loss (e.g. a core PolicyLoss's `run` with its options bound). */
  readonly loss: (inputs: LossInputs) => LossOutput
  /** Sampling temperature; logits are divided by it so recomputed logprobs match sampled ones. Default 1. */
  readonly temperature?: number
}

/** What an objective sees for one micro-batch (inside the gradient tape). */
export interface ObjectiveInput {
  readonly batch: PaddedBatch
  /** Raw logits. [B, T, V] */
  readonly logits: tf.Tensor3D
  /** log p(token k | tokens < k) at entry k, 0 at entry 0. [B, T] */
  readonly logprobs: tf.Tensor2D
}

/** A differentiable objective of one micro-batch: a scalar loss and scalar metrics. */
export type Objective = (input: ObjectiveInput) => LossOutput

/** The optimizer, schedule and accumulation machinery, independent of the objective. */
export interface UpdateEngine {
  readonly optimizer: AdamW
  /** Run `epochs` updates of `objective` on the sequences. */
  readonly run: (
    sequences: ReadonlyArray<TrainingSequence>,
    objective: Objective,
    temperature: number,
    /** Overrides the engine's weighting for this call (it must match the loss's aggregation). */
    accumulation?: Accumulation,
  ) => Promise<StepReport>
  /**
   * The accumulated (unclipped) full-batch gradient of one epoch, by parameter name;
   * the caller disposes it. Exposed so tests can compare accumulation with a full batch.
   */
  readonly gradients: (
    sequences: ReadonlyArray<TrainingSequence>,
    objective: Objective,
    temperature: number,
  ) => Promise<{ readonly grads: Map<string, tf.Tensor>; readonly loss: number }>
}

/** An RL trainer bound to a model. */
export interface Trainer {
  /** The optimizer (its state is what a checkpoint saves). */
  readonly optimizer: AdamW
  /** One step: `epochs` updates on this batch. */
  readonly step: (sequences: ReadonlyArray<TrainingSequence>) => Promise<StepReport>
  /** Free the optimizer state. */
  readonly dispose: () => void
}

/**
 * Log-probabilities of each sequence's own tokens: entry k is
 * log_softmax(logits[k-1] / temperature)[tokens[k]], entry 0 is 0. The token is read with
 * a one-hot product rather than a gather, because gather's gradient needs a kernel the
 * wasm backend lacks.
 *
 * @example
 * const lp = tokenLogprobs(model.logits(tokens), tokens, 0.8) // [B, T]
 */
export const tokenLogprobs = (logits: tf.Tensor3D, tokens: tf.Tensor2D, temperature = 1): tf.Tensor2D =>
  tf.tidy(() => {
    const [B, T, V] = logits.shape
    if (T < 2) return tf.zeros([B, T]) as tf.Tensor2D
    const scaled = temperature === 1 ? logits : logits.div(temperature) // [B, T, V]
    const logp = tf.logSoftmax(scaled.slice([0, 0, 0], [B, T - 1, V])) // [B, T-1, V]: predictions of tokens 1..T-1
    // oneHot's own dtype argument is ignored by the wasm kernel (it writes int32 bits into a
    // float32 tensor), so build the int32 one-hot and cast it.
    const targets = tf.oneHot(tokens.slice([0, 1], [B, T - 1]), V).cast("float32") // [B, T-1, V]
    const picked = logp.mul(targets).sum(-1) // [B, T-1]
    return tf.concat([tf.zeros([B, 1]), picked], 1) as tf.Tensor2D // [B, T]
  })

const finite = (x: number): boolean => Number.isFinite(x)

/**
 * The shared update machinery: micro-batching, gradient accumulation, clipping, AdamW,
 * schedule, skip-on-non-finite, metrics. Trainers supply the objective.
 *
 * @example
 * const engine = createUpdateEngine(model, { schedule: constantSchedule(1e-3) })
 * const report = await engine.run(sequences, ({ batch, logprobs }) => myLoss(batch, logprobs), 1)
 */
export const createUpdateEngine = (model: TrainableModel, options: UpdateOptions): UpdateEngine => {
  const epochs = options.epochs ?? 1
  const maxGradNorm = options.maxGradNorm === undefined ? 1 : options.maxGradNorm
  const defaultAccumulation = options.accumulation ?? "tokens"
  const padId = options.padId ?? 0
  const log = options.log ?? ((line: string) => console.warn(line))
  if (!Number.isInteger(epochs) || epochs < 1) {
    throw new TrainingInputError({ where: "trainer options", problem: `epochs must be a positive integer, got ${epochs}` })
  }
  const optimizer = new AdamW(model.variables, options.optimizer)
  const varList = [...model.variables.values()]
  // variableGrads keys gradients by the tf.Variable's own (globally unique) name.
  const checkpointName = new Map<string, string>()
  for (const [name, v] of model.variables) checkpointName.set(v.name, name)

  const limits = {
    ...(options.microBatchSize === undefined ? {} : { maxSequences: options.microBatchSize }),
    ...(options.microBatchTokens === undefined ? {} : { maxTokens: options.microBatchTokens }),
  }

  type Accumulated =
    | { readonly ok: true; readonly grads: Map<string, tf.Tensor>; readonly loss: number; readonly metrics: Record<string, number> }
    | { readonly ok: false; readonly reason: string }

  /** One epoch's weighted gradient sum over the micro-batches. */
  const accumulate = async (
    sequences: ReadonlyArray<TrainingSequence>,
    groups: ReadonlyArray<ReadonlyArray<number>>,
    objective: Objective,
    temperature: number,
    totalWeight: number,
    accumulation: Accumulation,
  ): Promise<Accumulated> => {
    const acc = new Map<string, tf.Tensor>()
    const metricSums: Record<string, number> = {}
    let lossSum = 0
    const fail = (reason: string): Accumulated => {
      tf.dispose([...acc.values()])
      return { ok: false, reason }
    }
    for (const [gi, group] of groups.entries()) {
      const batch = padSequences(group.map((i) => sequences[i]).filter((s) => s !== undefined), padId)
      const weight = (accumulation === "tokens" ? batch.maskedTokens : batch.sequences) / totalWeight
      if (batch.maskedTokens === 0) {
        // Nothing to learn from here; a token-mean loss would divide by zero.
        disposeBatch(batch)
        continue
      }
      let metricNames: Array<string> = []
      let metricValues: tf.Tensor | undefined
      const { value, grads } = tf.variableGrads(() => {
        const logits = model.logits(batch.tokens) // [B, T, V]
        const logprobs = tokenLogprobs(logits, batch.tokens, temperature) // [B, T]
        const out = objective({ batch, logits, logprobs })
        metricNames = Object.keys(out.metrics).sort()
        const scalars = metricNames.map((n) => out.metrics[n]).filter((t) => t !== undefined)
        metricValues = tf.keep(scalars.length > 0 ? tf.stack(scalars) : tf.zeros([0])) // [M]
        return out.loss
      }, varList)
      disposeBatch(batch)
      const lossValue = (await value.data())[0] ?? Number.NaN
      const metricData = metricValues === undefined ? new Float32Array(0) : await metricValues.data()
      tf.dispose([value, metricValues ?? []])
      if (!finite(lossValue)) {
        tf.dispose(Object.values(grads))
        return fail(`loss is ${lossValue} in micro-batch ${gi}`)
      }
      lossSum += weight * lossValue
      metricNames.forEach((n, i) => {
        metricSums[n] = (metricSums[n] ?? 0) + weight * (metricData[i] ?? Number.NaN)
      })
      for (const [varName, g] of Object.entries(grads)) {
        const name = checkpointName.get(varName)
        if (name === undefined) continue
        const previous = acc.get(name)
        acc.set(name, tf.tidy(() => (previous === undefined ? g.mul(weight) : previous.add(g.mul(weight)))))
        tf.dispose([g, previous ?? []])
      }
    }
    return { ok: true, grads: acc, loss: lossSum, metrics: metricSums }
  }

  const prepare = (sequences: ReadonlyArray<TrainingSequence>, accumulation: Accumulation) => {
    sequences.forEach((s, i) => validateSequence(s, i, model))
    const lengths = sequences.map((s) => s.tokens.length)
    // Totals over the whole batch, with the padding rule of padSequences (entry 0 never counts).
    const tokens = sequences.reduce((n, s) => n + s.mask.reduce((a, m, k) => a + (k === 0 ? 0 : m), 0), 0)
    const totalWeight = accumulation === "tokens" ? tokens : sequences.length
    return { lengths, tokens, totalWeight }
  }

  const gradients: UpdateEngine["gradients"] = async (sequences, objective, temperature) => {
    const { lengths, totalWeight } = prepare(sequences, defaultAccumulation)
    const result = await accumulate(sequences, planMicroBatches(lengths, limits, options.rng), objective, temperature, totalWeight, defaultAccumulation)
    if (!result.ok) throw new TrainingInputError({ where: "gradient accumulation", problem: result.reason })
    return { grads: result.grads, loss: result.loss }
  }

  const run: UpdateEngine["run"] = async (sequences, objective, temperature, accumulation = defaultAccumulation) => {
    const started = performance.now()
    const { lengths, tokens, totalWeight } = prepare(sequences, accumulation)
    let updates = 0
    let lr = learningRate(options.schedule, optimizer.step)
    let reason: string | undefined
    let microBatches = 0
    let lossSum = 0
    let normSum = 0
    const metricSums: Record<string, number> = {}
    if (totalWeight === 0) reason = "the batch has no policy tokens"
    for (let epoch = 0; epoch < epochs && reason === undefined; epoch++) {
      const groups = planMicroBatches(lengths, limits, options.rng)
      microBatches = groups.length
      const result = await accumulate(sequences, groups, objective, temperature, totalWeight, accumulation)
      if (!result.ok) {
        reason = result.reason
        break
      }
      const { grads: clipped, norm } = await clipByGlobalNorm(result.grads, maxGradNorm)
      tf.dispose([...result.grads.values()])
      if (!finite(norm)) {
        tf.dispose([...clipped.values()])
        reason = `gradient norm is ${norm}`
        break
      }
      lr = learningRate(options.schedule, optimizer.step)
      optimizer.apply(clipped, lr)
      tf.dispose([...clipped.values()])
      updates += 1
      lossSum += result.loss
      normSum += norm
      for (const [n, v] of Object.entries(result.metrics)) metricSums[n] = (metricSums[n] ?? 0) + v
    }
    if (reason !== undefined) log(`turnwise trainer: skipped update ${optimizer.step + 1}: ${reason}; weights unchanged`)
    const mean = (x: number): number => (updates === 0 ? Number.NaN : x / updates)
    const seconds = (performance.now() - started) / 1000
    const core = {
      step: optimizer.step,
      skipped: reason !== undefined,
      loss: mean(lossSum),
      gradNorm: mean(normSum),
      lr,
      tokens,
      sequences: sequences.length,
      microBatches,
      updates,
      seconds,
    }
    const metrics: Record<string, number> = {
      "train/loss": core.loss,
      "train/grad_norm": core.gradNorm,
      "train/lr": lr,
      "train/tokens": tokens,
      "train/updates": updates,
      "train/skipped": core.skipped ? 1 : 0,
      "train/seconds": seconds,
    }
    for (const [n, v] of Object.entries(metricSums)) metrics[n] = mean(v)
    return { ...core, ...(reason === undefined ? {} : { reason }), metrics }
  }

  return { optimizer, run, gradients }
}

/**
 * The policy objective: the loss applied to LossInputs built from a micro-batch.
 *
 * @example
 * const objective = policyObjective(grpoLoss)
 */
export const policyObjective =
  (loss: (inputs: LossInputs) => LossOutput): Objective =>
  ({ batch, logprobs }) =>
    loss({ logprobs, oldLogprobs: batch.oldLogprobs, advantages: batch.advantages, mask: batch.mask })

/**
 * An RL trainer for a model.
 *
 * @example
 * const trainer = createTrainer(model, {
 *   loss: (inputs) => clippedSurrogate.run(inputs, clippedSurrogate.defaults),
 *   schedule: { peakLr: 1e-4, warmupSteps: 10, totalSteps: 1000, decay: "cosine", minLr: 1e-5 },
 *   epochs: 2, microBatchSize: 8, temperature: 1, maxGradNorm: 1, rng: Rng.fromSeed(1),
 * })
 * const report = await trainer.step(sequences) // { loss, gradNorm, lr, skipped, ... }
 */
export const createTrainer = (model: TrainableModel, options: TrainerOptions): Trainer => {
  const engine = createUpdateEngine(model, options)
  const temperature = options.temperature ?? 1
  if (!(temperature > 0)) throw new TrainingInputError({ where: "trainer options", problem: `temperature must be > 0, got ${temperature}` })
  const objective = policyObjective(options.loss)
  return {
    optimizer: engine.optimizer,
    step: (sequences) => engine.run(sequences, objective, temperature),
    dispose: () => engine.optimizer.dispose(),
  }
}
