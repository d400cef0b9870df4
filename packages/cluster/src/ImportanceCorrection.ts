/**
 * The behaviour-policy correction of asynchronous mode (decoupled PPO).
 *
 * In asynchronous mode a trajectory was sampled by an older version of the policy
 * (the behaviour policy, whose log-probs the runner recorded) than the one the
 * learner is about to update (the proximal policy: the learner's weights before the
 * update). The per-token objective is
 *
 *     w_t    = min(exp(log pi_prox - log pi_behav), cap)        (no gradient)
 *     r_t    = pi_theta / pi_prox
 *     loss_t = w_t * max(-r_t * A_t, -clip(r_t, 1 - epsLow, 1 + epsHigh) * A_t)
 *
 * so the trust region is around the proximal policy and the truncated importance
 * weight corrects for sampling from the behaviour policy. Because w_t > 0 and does not
 * depend on the weights, w_t * max(a, b) = max(w_t * a, w_t * b): the corrected loss is
 * the recipe's own clipped loss with `oldLogprobs` set to the proximal log-probs and
 * each advantage multiplied by its token's weight. That is what this module does to
 * the training sequences before the learner's ordinary update, so neither the loss
 * nor the trainer changes. (A dual clip commutes the same way; a KL penalty against a
 * reference policy is left unweighted.) When behaviour and proximal log-probs are
 * equal every weight is 1 and the sequences are unchanged.
 *
 * @category combinators
 */
import * as tf from "@tensorflow/tfjs"
import { Effect } from "effect"
import type { TrainingSequence } from "@turnwise/core"
import { PolicyError } from "@turnwise/dsl"
import type { PolicyShape } from "@turnwise/dsl"
import { disposeBatch, padSequences, tokenLogprobs } from "@turnwise/runtime"
import type { TrainableModel } from "@turnwise/runtime"

/** What the importance weights of one update looked like (over policy tokens, before truncation). */
export interface ImportanceStats {
  /** Mean of exp(proximal - behaviour) over policy tokens. */
  readonly mean: number
  /** Largest exp(proximal - behaviour). */
  readonly max: number
  /** Fraction of policy tokens whose weight was cut to the cap. */
  readonly truncatedFraction: number
  /** Policy tokens weighed. */
  readonly tokens: number
}

/** Sequences rewritten for the decoupled loss, and their weights' statistics. */
export interface CorrectedSequences {
  readonly sequences: ReadonlyArray<TrainingSequence>
  readonly stats: ImportanceStats
}

/**
 * Rewrite sequences for the decoupled loss: on every policy token, `oldLogprobs`
 * becomes the proximal log-prob and the advantage is multiplied by
 * min(exp(proximal - behaviour), cap), the behaviour log-prob being the sequence's
 * recorded `oldLogprobs`. `cap` null: no truncation. Context tokens are left as they are.
 *
 * @example
 * const { sequences, stats } = importanceCorrection(batch, proximal, 2)
 */
export const importanceCorrection = (
  sequences: ReadonlyArray<TrainingSequence>,
  proximal: ReadonlyArray<ReadonlyArray<number>>,
  cap: number | null,
): CorrectedSequences => {
  let sum = 0
  let max = 0
  let truncated = 0
  let tokens = 0
  const corrected = sequences.map((sequence, i) => {
    const prox = proximal[i]
    if (prox === undefined || prox.length < sequence.tokens.length) {
      throw new RangeError(`importanceCorrection: sequence ${i} has ${sequence.tokens.length} tokens but ${prox?.length ?? 0} proximal log-probs`)
    }
    const oldLogprobs = [...sequence.oldLogprobs]
    const advantages = [...sequence.advantages]
    sequence.mask.forEach((m, k) => {
      if (m !== 1 || k === 0) return
      const weight = Math.exp(prox[k]! - sequence.oldLogprobs[k]!)
      const applied = cap !== null && weight > cap ? cap : weight
      sum += weight
      max = Math.max(max, weight)
      if (applied !== weight) truncated += 1
      tokens += 1
      oldLogprobs[k] = prox[k]!
      advantages[k] = applied * sequence.advantages[k]!
    })
    return { ...sequence, oldLogprobs, advantages }
  })
  const per = (x: number): number => (tokens === 0 ? 0 : x / tokens)
  return { sequences: corrected, stats: { mean: per(sum), max, truncatedFraction: per(truncated), tokens } }
}

/**
 * Log-probabilities of each sequence's own tokens under the model's current weights
 * (entry k as the trainer computes it), without gradient, a few sequences at a time.
 *
 * @example
 * const proximal = await proximalLogprobs(runtime.model, sequences, 1)
 */
export const proximalLogprobs = async (
  model: TrainableModel,
  sequences: ReadonlyArray<TrainingSequence>,
  temperature: number,
  chunk = 8,
): Promise<Array<Array<number>>> => {
  const out: Array<Array<number>> = []
  for (let start = 0; start < sequences.length; start += chunk) {
    const part = sequences.slice(start, start + chunk)
    const batch = padSequences(part, 0)
    const logprobs = tf.tidy(() => tokenLogprobs(model.logits(batch.tokens), batch.tokens, temperature)) // [B, T]
    disposeBatch(batch)
    const values = (await logprobs.array()) as Array<Array<number>>
    logprobs.dispose()
    part.forEach((sequence, b) => out.push((values[b] ?? []).slice(0, sequence.tokens.length)))
  }
  return out
}

/**
 * The learner's policy with every RL update corrected for the behaviour policy:
 * before `train`, the proximal log-probs are computed with `model` (the weights the
 * update starts from) and the sequences rewritten by {@link importanceCorrection}.
 * `onStats` receives each update's weight statistics and the seconds the correction took.
 *
 * @example
 * trainOnBatch(recipe, batch).pipe(Effect.provideService(Policy, behaviourCorrected(policy, runtime.model, 2, record)))
 */
export const behaviourCorrected = (
  policy: PolicyShape,
  model: TrainableModel,
  cap: number | null,
  onStats: (stats: ImportanceStats, seconds: number) => void,
): PolicyShape => ({
  ...policy,
  train: (sequences, options) =>
    Effect.tryPromise({
      try: async () => {
        const started = performance.now()
        const corrected = importanceCorrection(sequences, await proximalLogprobs(model, sequences, options.temperature), cap)
        onStats(corrected.stats, (performance.now() - started) / 1000)
        return corrected.sequences
      },
      catch: (error) => new PolicyError({ operation: "behaviour correction", reason: error instanceof Error ? error.message : String(error) }),
    }).pipe(Effect.flatMap((corrected) => policy.train(corrected, options))),
})
