/**
 * The RL trainer: one call to `step` turns a batch of TrainingSequences into one or
 * more AdamW updates of a TrainableModel under a policy loss from @turnwise/core.
 *
 * Epochs and mini-batches make the clip range a trust region: each epoch shuffles the
 * batch (with the run's Rng) into `miniBatches` parts and applies one update per part,
 * so a call makes epochs x miniBatches updates and every update after the first sees a
 * policy that has moved away from the one that sampled the batch.
 *
 * Each mini-batch is further split into micro-batches to bound memory. For each
 * micro-batch the trainer recomputes the log-probability of the sequences' own tokens
 * under the current weights (log_softmax(logits / temperature) at position k-1, read
 * at token k; position 0 has no prediction and is masked), hands them with the mask,
 * old logprobs, advantages and (with a reference policy) reference logprobs to the loss
 * as LossInputs (all [B, T] and aligned with the sequences: entry k is token k), and
 * takes gradients with tf.variableGrads. Gradients are accumulated across
 * micro-batches, clipped by their global norm and applied once per mini-batch, so peak
 * memory is bounded by one micro-batch while the update equals the mini-batch update.
 *
 * Accumulation weights (`accumulation`): the loss of micro-batch i is an average over
 * its own items, so the mini-batch gradient is the weighted sum of micro-batch
 * gradients with weight n_i / N:
 * - "tokens" (default): n_i = policy tokens in micro-batch i. Exact for token-mean
 *   aggregation (GTPO's and DAPO's default).
 * - "sequences": n_i = sequences in micro-batch i. Exact for sequence-mean aggregation
 *   (original GRPO's mean of per-sequence token means).
 *
 * Reference policy (`reference: true`): the weights the engine was created with are
 * kept as a frozen copy. Each call computes the batch's log-probabilities under them
 * once (they do not change while the policy moves) and passes them to the loss as
 * `refLogprobs`, which a loss with a KL penalty (klBeta > 0) needs.
 *
 * After the updates of a call the batch is scored once more under the new weights
 * (no gradient), so the logged divergences measure what the call did:
 * - `kl/behaviour`: KL(pi_old || pi_new), k3 on the sampled tokens (unbiased, the
 *   tokens were drawn from pi_old);
 * - `kl/reference`: KL(pi_new || pi_ref), k3 on the same tokens (the estimator the loss
 *   penalises; the tokens come from pi_old, not pi_new);
 * - `policy/entropy`: mean entropy of the new policy's next-token distribution at the
 *   policy's positions.
 * The loss's own metrics (`actor/clip_frac`, `actor/approx_kl`, ...) are measured
 * before each update and averaged over the updates, so they are 0 by construction when
 * a call makes one update; with several they show how far later updates ran.
 *
 * A non-finite loss or gradient norm skips the update: weights and optimizer state stay
 * as they were, the step is logged and reported as skipped with the reason, the
 * engine's count of skipped updates (`train/skipped_updates`) grows, and the remaining
 * updates of that call are not run.
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
import { AdamW, type AdamWOptions, clipScale, globalNorm } from "./adamw.js"
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
  /** Weighted mean of the objective over the batch, averaged over the updates run. */
  readonly loss: number
  /** Global gradient norm before clipping, averaged over the updates run. */
  readonly gradNorm: number
  /** Learning rate of the last update. */
  readonly lr: number
  /** Policy (mask 1) tokens in the batch. */
  readonly tokens: number
  /** Sequences in the batch. */
  readonly sequences: number
  /** Micro-batches per update (of the last update). */
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
  /** Optimisation epochs (passes over the batch) per call. Default 1. */
  readonly epochs?: number
  /** Mini-batches per epoch, one update each (capped at the batch's sequence count). Default 1. */
  readonly miniBatches?: number
  /** At most this many sequences per micro-batch. Default: no cap. */
  readonly microBatchSize?: number
  /** At most this many padded tokens (B x T) per micro-batch. Default: no cap. */
  readonly microBatchTokens?: number
  /** Clip the global gradient norm to this; null turns clipping off. Default 1. */
  readonly maxGradNorm?: number | null
  /** Micro-batch weighting; must match the loss's aggregation. Default "tokens". */
  readonly accumulation?: Accumulation
  /** Keep the initial weights as the reference policy (for a KL penalty and `kl/reference`). Default false. */
  readonly reference?: boolean
  /** Shuffles sequences into mini- and micro-batches; without one the input order is kept. */
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

/**
 * What a call scores besides its objective: "policy" computes reference logprobs (when
 * the engine keeps a reference) and measures the divergences after the update;
 * "supervised" does neither (demonstrations have no behaviour policy).
 */
export type Scoring = "policy" | "supervised"

/** The optimizer, schedule and accumulation machinery, independent of the objective. */
export interface UpdateEngine {
  readonly optimizer: AdamW
  /** Updates skipped so far (non-finite loss or gradient), over the engine's life. */
  readonly skippedUpdates: () => number
  /**
   * Start the learning-rate schedule (warm-up included) at the optimizer's current
   * update count: called after loading the optimizer state of an earlier run (a warm
   * start), whose moments and update count carry over while this run's schedule
   * begins at its beginning.
   */
  readonly restartSchedule: () => void
  /** Run `epochs` x `miniBatches` updates of `objective` on the sequences. */
  readonly run: (
    sequences: ReadonlyArray<TrainingSequence>,
    objective: Objective,
    temperature: number,
    /** Overrides the engine's weighting for this call (it must match the loss's aggregation). */
    accumulation?: Accumulation,
    /** Default "policy". */
    scoring?: Scoring,
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
  /**
   * Log-probabilities of each sequence's tokens under the reference policy (entry k as
   * in {@link tokenLogprobs}), or undefined when the engine keeps no reference.
   */
  readonly referenceLogprobs: (sequences: ReadonlyArray<TrainingSequence>, temperature: number) => Promise<Array<Array<number>> | undefined>
  /** Free the optimizer state and the reference weights. */
  readonly dispose: () => void
}

/** An RL trainer bound to a model. */
export interface Trainer {
  /** The optimizer (its state is what a checkpoint saves). */
  readonly optimizer: AdamW
  /** One step: `epochs` x `miniBatches` updates on this batch. */
  readonly step: (sequences: ReadonlyArray<TrainingSequence>) => Promise<StepReport>
  /** Free the optimizer state (and the reference weights). */
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

/**
 * Entropy of the next-token distribution softmax(logits[k-1] / temperature) at entry k,
 * 0 at entry 0. [B, T]
 *
 * @example
 * const h = tokenEntropies(model.logits(tokens), 1) // [B, T]
 */
export const tokenEntropies = (logits: tf.Tensor3D, temperature = 1): tf.Tensor2D =>
  tf.tidy(() => {
    const [B, T, V] = logits.shape
    if (T < 2) return tf.zeros([B, T]) as tf.Tensor2D
    const scaled = temperature === 1 ? logits : logits.div(temperature) // [B, T, V]
    const logp = tf.logSoftmax(scaled.slice([0, 0, 0], [B, T - 1, V])) // [B, T-1, V]
    const entropy = logp.exp().mul(logp).sum(-1).neg() // [B, T-1]
    return tf.concat([tf.zeros([B, 1]), entropy], 1) as tf.Tensor2D // [B, T]
  })

const finite = (x: number): boolean => Number.isFinite(x)

/**
 * Split `n` indices into `parts` near-equal mini-batches (at most n), shuffled with
 * the Rng when one is given and there is more than one part (Fisher-Yates), in input
 * order otherwise.
 *
 * @example
 * splitMiniBatches(5, 2) // [[0, 1, 2], [3, 4]]
 */
export const splitMiniBatches = (n: number, parts: number, rng?: Rng): Array<Array<number>> => {
  const order = Array.from({ length: n }, (_, i) => i)
  const count = Math.max(1, Math.min(parts, n))
  if (rng !== undefined && count > 1) {
    for (let i = order.length - 1; i > 0; i--) {
      const j = rng.int(i + 1)
      const a = order[i] ?? 0
      order[i] = order[j] ?? 0
      order[j] = a
    }
  }
  const out: Array<Array<number>> = []
  let start = 0
  for (let p = 0; p < count; p++) {
    const size = Math.floor(n / count) + (p < n % count ? 1 : 0)
    out.push(order.slice(start, start + size))
    start += size
  }
  return out
}

/**
 * The shared update machinery: mini-batches, micro-batching, gradient accumulation,
 * clipping, AdamW, schedule, reference policy, skip-on-non-finite, metrics. Trainers
 * supply the objective.
 *
 * @example
 * const engine = createUpdateEngine(model, { schedule: constantSchedule(1e-3) })
 * const report = await engine.run(sequences, ({ batch, logprobs }) => myLoss(batch, logprobs), 1)
 */
export const createUpdateEngine = (model: TrainableModel, options: UpdateOptions): UpdateEngine => {
  const epochs = options.epochs ?? 1
  const miniBatches = options.miniBatches ?? 1
  const maxGradNorm = options.maxGradNorm === undefined ? 1 : options.maxGradNorm
  const defaultAccumulation = options.accumulation ?? "tokens"
  const padId = options.padId ?? 0
  const log = options.log ?? ((line: string) => console.warn(line))
  if (!Number.isInteger(epochs) || epochs < 1) {
    throw new TrainingInputError({ where: "trainer options", problem: `epochs must be a positive integer, got ${epochs}` })
  }
  if (!Number.isInteger(miniBatches) || miniBatches < 1) {
    throw new TrainingInputError({ where: "trainer options", problem: `miniBatches must be a positive integer, got ${miniBatches}` })
  }
  const optimizer = new AdamW(model.variables, options.optimizer)
  const varList = [...model.variables.values()]
  // variableGrads keys gradients by the tf.Variable's own (globally unique) name.
  const checkpointName = new Map<string, string>()
  for (const [name, v] of model.variables) checkpointName.set(v.name, name)
  // tfjs tensors are immutable and assign() swaps the data a variable points at, so a
  // clone is a frozen copy of the weights as they are now.
  const referenceWeights = options.reference === true ? new Map([...model.variables].map(([name, v]) => [name, tf.clone(v)] as const)) : undefined
  let skippedUpdates = 0
  // Updates of an earlier run whose optimizer state was carried over; the schedule skips them.
  let scheduleOrigin = 0
  const currentLr = (): number => learningRate(options.schedule, Math.max(0, optimizer.step - scheduleOrigin))

  const limits = {
    ...(options.microBatchSize === undefined ? {} : { maxSequences: options.microBatchSize }),
    ...(options.microBatchTokens === undefined ? {} : { maxTokens: options.microBatchTokens }),
  }

  /**
   * Micro-batches of the listed sequences, as indices into the whole batch; shuffled
   * for updates, in order for scoring (where order cannot matter and the Rng is kept
   * for the updates).
   */
  const planFor = (indices: ReadonlyArray<number>, lengths: ReadonlyArray<number>, shuffle = true): Array<Array<number>> =>
    planMicroBatches(
      indices.map((i) => lengths[i] ?? 0),
      limits,
      shuffle ? options.rng : undefined,
    ).map((group) => group.map((k) => indices[k] ?? 0))

  const padGroup = (sequences: ReadonlyArray<TrainingSequence>, group: ReadonlyArray<number>, refs: ReadonlyArray<ReadonlyArray<number>> | undefined) =>
    padSequences(
      group.map((i) => sequences[i]).filter((s) => s !== undefined),
      padId,
      refs === undefined ? undefined : group.map((i) => refs[i] ?? []),
    )

  /** Run `f` with the reference weights in the model, restoring the current ones after. */
  const withReferenceWeights = async <A>(reference: ReadonlyMap<string, tf.Tensor>, f: () => Promise<A>): Promise<A> => {
    const current = new Map([...model.variables].map(([name, v]) => [name, tf.clone(v)] as const))
    try {
      for (const [name, v] of model.variables) {
        const frozen = reference.get(name)
        if (frozen !== undefined) v.assign(frozen)
      }
      return await f()
    } finally {
      for (const [name, v] of model.variables) {
        const saved = current.get(name)
        if (saved !== undefined) v.assign(saved)
      }
      tf.dispose([...current.values()])
    }
  }

  const referenceLogprobs: UpdateEngine["referenceLogprobs"] = async (sequences, temperature) => {
    if (referenceWeights === undefined) return undefined
    const lengths = sequences.map((s) => s.tokens.length)
    const out: Array<Array<number>> = sequences.map(() => [])
    await withReferenceWeights(referenceWeights, async () => {
      for (const group of planFor(lengths.map((_, i) => i), lengths, false)) {
        const batch = padGroup(sequences, group, undefined)
        const logprobs = tf.tidy(() => tokenLogprobs(model.logits(batch.tokens), batch.tokens, temperature)) // [B, T]
        disposeBatch(batch)
        const values = (await logprobs.array()) as Array<Array<number>>
        logprobs.dispose()
        group.forEach((i, b) => {
          out[i] = (values[b] ?? []).slice(0, lengths[i] ?? 0)
        })
      }
    })
    return out
  }

  type Accumulated =
    | { readonly ok: true; readonly grads: Map<string, tf.Tensor>; readonly loss: number; readonly metrics: Record<string, number> }
    | { readonly ok: false; readonly reason: string }

  /** One update's weighted gradient sum over its micro-batches. */
  const accumulate = async (
    sequences: ReadonlyArray<TrainingSequence>,
    refs: ReadonlyArray<ReadonlyArray<number>> | undefined,
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
      const batch = padGroup(sequences, group, refs)
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
        // Weighted here, so the gradients come out weighted: one multiply, not one per parameter.
        return weight === 1 ? out.loss : tf.mul(out.loss, weight)
      }, varList)
      disposeBatch(batch)
      const lossValue = (await value.data())[0] ?? Number.NaN
      const metricData = metricValues === undefined ? new Float32Array(0) : await metricValues.data()
      tf.dispose([value, metricValues ?? []])
      if (!finite(lossValue)) {
        tf.dispose(Object.values(grads))
        return fail(`loss is ${weight === 1 ? lossValue : lossValue / weight} in micro-batch ${gi}`)
      }
      lossSum += lossValue
      metricNames.forEach((n, i) => {
        metricSums[n] = (metricSums[n] ?? 0) + weight * (metricData[i] ?? Number.NaN)
      })
      for (const [varName, g] of Object.entries(grads)) {
        const name = checkpointName.get(varName)
        if (name === undefined) continue
        const previous = acc.get(name)
        if (previous === undefined) {
          acc.set(name, g)
        } else {
          acc.set(name, tf.add(previous, g))
          tf.dispose([g, previous])
        }
      }
    }
    return { ok: true, grads: acc, loss: lossSum, metrics: metricSums }
  }

  /** Policy tokens of a sequence, with the padding rule of padSequences (entry 0 never counts). */
  const policyTokens = (s: TrainingSequence): number => s.mask.reduce((a, m, k) => a + (k === 0 ? 0 : m), 0)

  const weightOf = (sequences: ReadonlyArray<TrainingSequence>, indices: ReadonlyArray<number>, accumulation: Accumulation): number =>
    accumulation === "tokens" ? indices.reduce((n, i) => n + policyTokens(sequences[i]!), 0) : indices.length

  const prepare = (sequences: ReadonlyArray<TrainingSequence>) => {
    sequences.forEach((s, i) => validateSequence(s, i, model))
    const lengths = sequences.map((s) => s.tokens.length)
    const tokens = sequences.reduce((n, s) => n + policyTokens(s), 0)
    return { lengths, tokens }
  }

  /**
   * Divergences and entropy of the current weights on the batch (no gradient):
   * masked token means of KL(old || current), KL(current || ref) and the entropy.
   */
  const measure = async (
    sequences: ReadonlyArray<TrainingSequence>,
    refs: ReadonlyArray<ReadonlyArray<number>> | undefined,
    lengths: ReadonlyArray<number>,
    temperature: number,
  ): Promise<Record<string, number>> => {
    let behaviour = 0
    let reference = 0
    let entropy = 0
    let count = 0
    for (const group of planFor(lengths.map((_, i) => i), lengths, false)) {
      const batch = padGroup(sequences, group, refs)
      const sums = tf.tidy(() => {
        const logits = model.logits(batch.tokens) // [B, T, V]
        const logp = tokenLogprobs(logits, batch.tokens, temperature) // [B, T]
        const on = batch.mask.greater(0) // [B, T]
        const zeros = tf.zerosLike(logp) // [B, T]
        // KL(old || new) by k3 with r = new / old on tokens drawn from old.
        const toOld = tf.where(on, logp.sub(batch.oldLogprobs), zeros) // [B, T] log r
        const k3Behaviour = toOld.exp().sub(1).sub(toOld) // [B, T]
        const parts = [k3Behaviour.mul(batch.mask).sum(), tokenEntropies(logits, temperature).mul(batch.mask).sum()]
        if (batch.refLogprobs !== undefined) {
          // KL(new || ref) by k3 with r = ref / new, the estimator a KL penalty uses.
          const toRef = tf.where(on, batch.refLogprobs.sub(logp), zeros) // [B, T] log r
          parts.push(toRef.exp().sub(1).sub(toRef).mul(batch.mask).sum())
        }
        return tf.stack(parts) // [2 or 3]
      })
      const values = await sums.data()
      sums.dispose()
      count += batch.maskedTokens
      disposeBatch(batch)
      behaviour += values[0] ?? Number.NaN
      entropy += values[1] ?? Number.NaN
      reference += values[2] ?? 0
    }
    const per = (x: number): number => (count === 0 ? 0 : x / count)
    return {
      "kl/behaviour": per(behaviour),
      "policy/entropy": per(entropy),
      ...(refs === undefined ? {} : { "kl/reference": per(reference) }),
    }
  }

  const gradients: UpdateEngine["gradients"] = async (sequences, objective, temperature) => {
    const { lengths } = prepare(sequences)
    const all = lengths.map((_, i) => i)
    const refs = await referenceLogprobs(sequences, temperature)
    const result = await accumulate(
      sequences,
      refs,
      planFor(all, lengths),
      objective,
      temperature,
      weightOf(sequences, all, defaultAccumulation),
      defaultAccumulation,
    )
    if (!result.ok) throw new TrainingInputError({ where: "gradient accumulation", problem: result.reason })
    return { grads: result.grads, loss: result.loss }
  }

  const run: UpdateEngine["run"] = async (sequences, objective, temperature, accumulation = defaultAccumulation, scoring = "policy") => {
    const started = performance.now()
    const { lengths, tokens } = prepare(sequences)
    const refs = scoring === "policy" ? await referenceLogprobs(sequences, temperature) : undefined
    let updates = 0
    let lr = currentLr()
    let reason: string | undefined
    let microBatches = 0
    let lossSum = 0
    let normSum = 0
    let normMax = 0
    let tokensUpdated = 0
    let lastClipFrac = Number.NaN
    const metricSums: Record<string, number> = {}
    if (tokens === 0) reason = "the batch has no policy tokens"
    for (let epoch = 0; epoch < epochs && reason === undefined; epoch++) {
      for (const part of splitMiniBatches(sequences.length, miniBatches, options.rng)) {
        const partWeight = weightOf(sequences, part, accumulation)
        // A mini-batch without policy tokens has nothing to learn from; it is not a failure.
        if (partWeight === 0 || weightOf(sequences, part, "tokens") === 0) continue
        const groups = planFor(part, lengths)
        microBatches = groups.length
        const result = await accumulate(sequences, refs, groups, objective, temperature, partWeight, accumulation)
        if (!result.ok) {
          reason = result.reason
          break
        }
        const norm = await globalNorm(result.grads)
        if (!finite(norm)) {
          tf.dispose([...result.grads.values()])
          reason = `gradient norm is ${norm}`
          break
        }
        lr = currentLr()
        // Clipping is a factor the optimizer applies as it reads each gradient.
        optimizer.apply(result.grads, lr, clipScale(norm, maxGradNorm))
        tf.dispose([...result.grads.values()])
        updates += 1
        lossSum += result.loss
        normSum += norm
        normMax = Math.max(normMax, norm)
        tokensUpdated += weightOf(sequences, part, "tokens")
        lastClipFrac = result.metrics["actor/clip_frac"] ?? Number.NaN
        for (const [n, v] of Object.entries(result.metrics)) metricSums[n] = (metricSums[n] ?? 0) + v
      }
    }
    if (reason !== undefined) {
      skippedUpdates += 1
      log(`turnwise trainer: skipped update ${optimizer.step + 1}: ${reason}; weights unchanged`)
    }
    const after = updates > 0 && scoring === "policy" ? await measure(sequences, refs, lengths, temperature) : {}
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
      "train/grad_norm_max": updates === 0 ? Number.NaN : normMax,
      "train/lr": lr,
      "train/tokens": tokens,
      "train/tokens_per_update": mean(tokensUpdated),
      "train/updates": updates,
      "train/skipped": core.skipped ? 1 : 0,
      "train/skipped_updates": skippedUpdates,
      "train/seconds": seconds,
      ...after,
    }
    for (const [n, v] of Object.entries(metricSums)) metrics[n] = mean(v)
    if (metricSums["actor/clip_frac"] !== undefined) metrics["actor/clip_frac_last"] = lastClipFrac
    return { ...core, ...(reason === undefined ? {} : { reason }), metrics }
  }

  return {
    optimizer,
    skippedUpdates: () => skippedUpdates,
    restartSchedule: () => {
      scheduleOrigin = optimizer.step
    },
    run,
    gradients,
    referenceLogprobs,
    dispose: () => {
      optimizer.dispose()
      tf.dispose([...(referenceWeights?.values() ?? [])])
    },
  }
}

/**
 * The policy objective: the loss applied to LossInputs built from a micro-batch.
 *
 * @example
 * const objective = policyObjective(grpoLoss)
 */
export const policyObjective = (loss: (inputs: LossInputs) => LossOutput): Objective => ({ batch, logprobs }) =>
  loss({
    logprobs,
    oldLogprobs: batch.oldLogprobs,
    advantages: batch.advantages,
    mask: batch.mask,
    ...(batch.refLogprobs === undefined ? {} : { refLogprobs: batch.refLogprobs }),
  })

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
    dispose: () => engine.dispose(),
  }
}
