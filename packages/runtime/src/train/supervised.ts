/**
 * Supervised warm-start: cross-entropy on the policy tokens of demonstrations.
 *
 * A demonstration is a TrainingSequence whose mask marks the tokens the policy should
 * learn to write (the prompt and tool feedback stay context, as in RL). The objective is
 * the token mean of -log p(token k | tokens < k) over mask-1 entries, and the metric
 * `sft/accuracy` is the fraction of those tokens that are the model's argmax. The
 * optimizer, schedule, micro-batching and accumulation are the RL trainer's
 * (createUpdateEngine in trainer.ts) with token weighting, so the accumulated
 * gradient is the full-batch token-mean gradient.
 *
 * @category constructors
 */
import * as tf from "@tensorflow/tfjs"
import type { TrainingSequence } from "@turnwise/core"
import type { TrainableModel } from "../model/types.js"
import { createUpdateEngine, type Objective, type StepReport, type UpdateOptions } from "./trainer.js"
import type { AdamW } from "./adamw.js"

/** A supervised step's report: the shared report plus token accuracy. */
export interface SupervisedReport extends StepReport {
  /** Mean cross-entropy (nats per policy token). Same as `loss`. */
  readonly crossEntropy: number
  /** Fraction of policy tokens the model ranked first (before the update). */
  readonly accuracy: number
}

/** A supervised trainer bound to a model. */
export interface SupervisedTrainer {
  readonly optimizer: AdamW
  readonly step: (sequences: ReadonlyArray<TrainingSequence>) => Promise<SupervisedReport>
  readonly dispose: () => void
}

/**
 * Token-mean cross-entropy and accuracy over the mask, as an objective.
 *
 * @example
 * const { loss, metrics } = crossEntropyObjective({ batch, logits, logprobs })
 * metrics["sft/accuracy"] // scalar in [0, 1]
 */
export const crossEntropyObjective: Objective = ({ batch, logits, logprobs }) => {
  const [B, T, V] = logits.shape
  const count = tf.scalar(Math.max(1, batch.maskedTokens))
  const loss = logprobs.mul(batch.mask).sum().neg().div(count) as tf.Scalar
  const accuracy = tf.tidy(() => {
    if (T < 2) return tf.scalar(0)
    const predicted = logits.slice([0, 0, 0], [B, T - 1, V]).argMax(-1) // [B, T-1]: prediction for token k at k-1
    const targets = batch.tokens.slice([0, 1], [B, T - 1]) // [B, T-1]
    const hits = predicted.equal(targets).cast("float32").mul(batch.mask.slice([0, 1], [B, T - 1])) // [B, T-1]
    return hits.sum().div(count) as tf.Scalar
  })
  return { loss, metrics: { "sft/loss": loss, "sft/accuracy": accuracy } }
}

/**
 * A supervised trainer (cross-entropy on masked targets).
 *
 * @example
 * const sft = createSupervisedTrainer(model, { schedule: constantSchedule(1e-2), microBatchSize: 16 })
 * const { crossEntropy, accuracy } = await sft.step(demonstrations)
 */
export const createSupervisedTrainer = (model: TrainableModel, options: UpdateOptions): SupervisedTrainer => {
  // Token weighting is what makes the accumulated gradient the token-mean gradient.
  const engine = createUpdateEngine(model, { ...options, accumulation: "tokens" })
  return {
    optimizer: engine.optimizer,
    step: async (sequences) => {
      const report = await engine.run(sequences, crossEntropyObjective, 1, "tokens", "supervised")
      return { ...report, crossEntropy: report.loss, accuracy: report.metrics["sft/accuracy"] ?? Number.NaN }
    },
    dispose: () => engine.dispose(),
  }
}
