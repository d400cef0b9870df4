/**
 * Per-token estimators of KL(pi || ref) from samples of pi (Schulman's k1, k2, k3).
 *
 * A policy loss with a KL penalty cannot sum over the vocabulary (only the sampled
 * token's logprob is at hand), so it estimates the divergence per sampled token from
 * the log ratio `log r = log ref(y) - log pi(y)`:
 *
 * - k1 = -log r: unbiased, high variance, can be negative per token;
 * - k2 = (log r)^2 / 2: biased, low variance, always >= 0;
 * - k3 = r - 1 - log r: unbiased and always >= 0 (the usual choice for GRPO).
 *
 * The same estimators serve the `actor/approx_kl` metric of the policy loss
 * (KL(old || new) with `pi = old`, `ref = new`).
 *
 * @category models
 */
import * as tf from "@tensorflow/tfjs-core"
import { Schema } from "effect"

/**
 * The name of a per-token KL estimator.
 *
 * @example
 * Schema.decodeUnknownSync(KlEstimator)("k3") // "k3"
 */
export const KlEstimator = Schema.Literals(["k1", "k2", "k3"])
/** The name of a per-token KL estimator. */
export type KlEstimator = typeof KlEstimator.Type

/** Every estimator name, for validation messages. */
export const klEstimators: ReadonlyArray<KlEstimator> = ["k1", "k2", "k3"]

/**
 * Per-token estimate of KL(pi || ref), where `logprobs` are log pi of the sampled tokens.
 * Differentiable in both inputs; padding is the caller's to mask.
 *
 * @example
 * klEstimate(tf.tensor2d([[-1, -2]]), tf.tensor2d([[-1.5, -1]]), "k1") // [[0.5, -1]]
 */
export const klEstimate = (logprobs: tf.Tensor, refLogprobs: tf.Tensor, estimator: KlEstimator): tf.Tensor =>
  tf.tidy(() => {
    const logR = tf.sub(refLogprobs, logprobs) // [B, T]  log ref/pi
    switch (estimator) {
      case "k1":
        return tf.neg(logR) // [B, T]
      case "k2":
        return tf.mul(0.5, tf.square(logR)) // [B, T]
      case "k3":
        return tf.sub(tf.sub(tf.exp(logR), 1), logR) // [B, T]
    }
  })
