/**
 * Clipped policy-gradient losses on tfjs-core tensors: PPO's surrogate and its
 * GRPO-family relatives, as one configurable function and a catalogue of presets.
 *
 * Every variant is the same objective with different knobs:
 *
 *     w      = pi_theta / pi_old                      (per token, or GSPO's per sequence)
 *     loss_t = -min(w * A, clip(w, 1 - epsLow, 1 + epsHigh) * A)
 *     loss_t = min(loss_t, -c * A)   when A < 0       (dual clip, optional)
 *     loss   = agg(loss_t) + klBeta * agg(k(pi_theta || pi_ref))
 *
 * `agg` is token-mean (GTPO's default, DAPO), seq-mean-token-mean (GRPO) or
 * seq-mean-token-sum-norm (Dr.GRPO). The presets in {@link policyLosses} fix the knobs
 * the way each paper does; a recipe may still override any of them.
 *
 * Masked positions (prompt, tool feedback, padding) are replaced by neutral values with
 * `tf.where` before anything is exponentiated, so garbage there (even -Infinity) can
 * neither produce NaN nor leak gradient: the gradient at a masked position is exactly 0.
 *
 * The module imports tfjs-core only, so it runs on whatever backend the caller has set.
 * Computing gradients needs tfjs's gradient registrations, which the union package
 * `@tensorflow/tfjs` (or tfjs-node) installs when imported.
 *
 * @category models
 */
import * as tf from "@tensorflow/tfjs-core"
import { Schema } from "effect"
import type { LossInputs, LossOutput, PolicyLoss } from "./component.js"
import { AlgorithmInputError } from "./errors.js"
import { KlEstimator, klEstimate } from "./kl.js"
import { defaultsOf, setting } from "./setting.js"

// ---------------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------------

/**
 * How per-token losses of a [B, T] batch become one scalar.
 *
 * @example
 * Schema.decodeUnknownSync(Aggregation)("seq-mean-token-mean")
 */
export const Aggregation = Schema.Literals(["token-mean", "seq-mean-token-mean", "seq-mean-token-sum-norm"])
/** How per-token losses of a [B, T] batch become one scalar. */
export type Aggregation = typeof Aggregation.Type

/**
 * Whether the importance ratio is per token (PPO, GRPO) or per sequence (GSPO).
 *
 * @example
 * Schema.decodeUnknownSync(RatioLevel)("sequence")
 */
export const RatioLevel = Schema.Literals(["token", "sequence"])
/** Whether the importance ratio is per token or per sequence. */
export type RatioLevel = typeof RatioLevel.Type

/**
 * Options of {@link policyLoss}; every field is required (presets supply them).
 *
 * @example
 * Schema.decodeUnknownSync(PolicyLossOptions)({ ...policyLosses.dapo.defaults, klBeta: 0.01 })
 */
export const PolicyLossOptions = Schema.Struct({
  epsLow: setting(
    Schema.Finite.check(Schema.isGreaterThanOrEqualTo(0), Schema.isLessThan(1)),
    0.2,
    "Lower clip range: the ratio is clipped below at 1 - epsLow, in [0, 1)",
  ),
  epsHigh: setting(
    Schema.Finite.check(Schema.isGreaterThanOrEqualTo(0)),
    0.2,
    "Upper clip range: the ratio is clipped above at 1 + epsHigh (DAPO's clip-higher raises it)",
  ),
  dualClip: setting(
    Schema.NullOr(Schema.Finite.check(Schema.isGreaterThan(1))),
    null,
    "Dual-clip constant c > 1: for A < 0 the per-token loss is at most -c * A; null: off",
  ),
  aggregation: setting(Aggregation, "token-mean", "How per-token losses become a scalar: token-mean, seq-mean-token-mean or seq-mean-token-sum-norm"),
  normConstant: setting(
    Schema.NullOr(Schema.Finite.check(Schema.isGreaterThan(0))),
    null,
    "Divisor of seq-mean-token-sum-norm (Dr.GRPO's constant); null: T, the padded length",
  ),
  ratio: setting(RatioLevel, "token", "token: per-token ratio; sequence: GSPO's sequence-level ratio (geometric mean over the sequence)"),
  klBeta: setting(Schema.Finite.check(Schema.isGreaterThanOrEqualTo(0)), 0, "Weight of the KL penalty against the reference policy; 0 turns it off"),
  klEstimator: setting(KlEstimator, "k3", "Per-token KL estimator of the penalty: k1, k2 or k3"),
})
/** Options of {@link policyLoss}. */
export type PolicyLossOptions = typeof PolicyLossOptions.Type

/**
 * GTPO's defaults: token-level ratio, symmetric clip 0.2, token-mean, no KL.
 *
 * @example
 * policyLoss(inputs, { ...defaultPolicyLossOptions, dualClip: 3 })
 */
export const defaultPolicyLossOptions: PolicyLossOptions = defaultsOf(PolicyLossOptions)

// ---------------------------------------------------------------------------------
// Tensor helpers
// ---------------------------------------------------------------------------------

// Identity whose gradient is zero. tfjs has no stop_gradient op; a custom gradient is
// the one way to cut the tape without reading the values back to the host.
const zeroGradIdentity = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
  const x = args[0]
  if (x === undefined || typeof x === "function") throw new TypeError("stopGradient expects one tensor")
  return { value: tf.clone(x), gradFunc: (dy: tf.Tensor) => tf.zerosLike(dy) }
})

/**
 * The same values as `x`, with no gradient flowing back into `x` (torch's `detach`).
 *
 * @example
 * tf.grad((x) => tf.sum(tf.mul(x, stopGradient(x))))(tf.tensor1d([3])) // [3], not [6]
 */
export const stopGradient = (x: tf.Tensor): tf.Tensor => zeroGradIdentity(x)

/**
 * Reduces masked per-token values [B, T] to a scalar.
 *
 * - token-mean: sum(v * mask) / sum(mask) over the whole batch;
 * - seq-mean-token-mean: the mean, over sequences with at least one masked token, of
 *   each sequence's token mean;
 * - seq-mean-token-sum-norm: the mean over all B sequences of sum_t(v * mask) / norm,
 *   with norm = normConstant, or T when null (Dr.GRPO: a constant, so that long
 *   answers are not down-weighted).
 *
 * An all-zero mask gives 0 rather than NaN. Values at masked positions must be finite.
 *
 * @example
 * aggregate(tf.tensor2d([[1, 3, 9]]), tf.tensor2d([[1, 1, 0]]), "token-mean", null) // 2
 */
export const aggregate = (
  values: tf.Tensor,
  mask: tf.Tensor,
  aggregation: Aggregation,
  normConstant: number | null,
): tf.Scalar =>
  tf.tidy(() => {
    const [batch = 0, length = 0] = values.shape
    const masked = tf.mul(values, mask) // [B, T]
    switch (aggregation) {
      case "token-mean":
        return tf.div(tf.sum(masked), tf.maximum(tf.sum(mask), 1)) // []
      case "seq-mean-token-mean": {
        const tokens = tf.sum(mask, 1) // [B]
        const seqMeans = tf.div(tf.sum(masked, 1), tf.maximum(tokens, 1)) // [B], 0 for empty sequences
        const sequences = tf.sum(tf.cast(tf.greater(tokens, 0), "float32")) // []
        return tf.div(tf.sum(seqMeans), tf.maximum(sequences, 1)) // []
      }
      case "seq-mean-token-sum-norm": {
        const divisor = batch * (normConstant ?? length) // a constant, so long answers keep their weight
        return tf.div(tf.sum(masked), divisor > 0 ? divisor : 1) // []
      }
    }
  })

// ---------------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------------

const FN = "policyLoss"

const fail = (where: string, problem: string): never => {
  throw new AlgorithmInputError({ fn: FN, where, problem })
}

const shapeText = (shape: ReadonlyArray<number>): string => `[${shape.join(", ")}]`

const validateInputs = (inputs: LossInputs, options: PolicyLossOptions): void => {
  const named: Array<[string, tf.Tensor | undefined]> = [
    ["logprobs", inputs.logprobs],
    ["oldLogprobs", inputs.oldLogprobs],
    ["advantages", inputs.advantages],
    ["mask", inputs.mask],
    ["refLogprobs", inputs.refLogprobs],
  ]
  for (const [name, tensor] of named) {
    if (tensor === undefined) {
      if (name !== "refLogprobs") fail(`inputs.${name}`, `${name} is missing`)
      continue
    }
    if (!(tensor instanceof tf.Tensor)) fail(`inputs.${name}`, `${name} is not a tfjs tensor`)
    if (tensor.isDisposed) fail(`inputs.${name}`, `${name} has already been disposed`)
    if (tensor.rank !== 2) fail(`inputs.${name}`, `${name} must be [B, T] (rank 2) but has shape ${shapeText(tensor.shape)}`)
    if (tensor.dtype === "string" || tensor.dtype === "complex64") {
      fail(`inputs.${name}`, `${name} has dtype ${tensor.dtype}; expected a real number type`)
    }
  }
  const expected = inputs.logprobs.shape
  for (const [name, tensor] of named) {
    if (tensor !== undefined && (tensor.shape[0] !== expected[0] || tensor.shape[1] !== expected[1])) {
      fail(
        `inputs.${name}`,
        `${name} has shape ${shapeText(tensor.shape)} but logprobs has shape ${shapeText(expected)}; every input must be the same [B, T]`,
      )
    }
  }
  if (inputs.logprobs.dtype !== "float32") {
    fail("inputs.logprobs", `logprobs has dtype ${inputs.logprobs.dtype}; it must be float32 to be differentiable`)
  }
  if (options.klBeta > 0 && inputs.refLogprobs === undefined) {
    fail("inputs.refLogprobs", `klBeta is ${options.klBeta} but no refLogprobs were given; pass the reference policy's logprobs or set klBeta to 0`)
  }
}

// ---------------------------------------------------------------------------------
// The loss
// ---------------------------------------------------------------------------------

/**
 * The clipped policy-gradient loss with configurable ratio, clipping, aggregation and
 * KL penalty. Options are decoded by the {@link PolicyLossOptions} Schema where a recipe
 * is read; throws AlgorithmInputError on mismatched shapes or a KL penalty without
 * `refLogprobs`.
 *
 * Metrics (scalars detached from the gradient; the caller disposes them with the loss):
 * - `actor/pg_loss`: the aggregated surrogate, without the KL term;
 * - `actor/clip_frac`: fraction of masked tokens where the clipped term was taken and
 *   differs from the unclipped one (the ratio left its band in the advantage's direction);
 * - `actor/dual_clip_frac` (only with dualClip): fraction where the -c * A bound was taken;
 * - `actor/approx_kl`: masked token mean of k3 for KL(old || new), i.e. w - 1 - log w
 *   with the token ratio w (>= 0, unbiased);
 * - `actor/ratio_mean`: masked token mean of the ratio used (s_i on every token under GSPO);
 * - `actor/kl` (only with klBeta > 0): the aggregated KL estimate against the reference.
 *
 * Inside `tf.variableGrads`/`tf.grad`, tensors the function does not return are
 * disposed when it ends: `tf.keep` the metrics there to read them afterwards.
 *
 * @example
 * const { loss, metrics } = policyLoss({ logprobs, oldLogprobs, advantages, mask }, defaultPolicyLossOptions)
 */
export const policyLoss = (inputs: LossInputs, options: PolicyLossOptions): LossOutput => {
  validateInputs(inputs, options)
  return tf.tidy(() => {
    const float = (t: tf.Tensor): tf.Tensor => (t.dtype === "float32" ? t : tf.cast(t, "float32"))
    const mask = float(inputs.mask) // [B, T]
    const on = tf.greater(mask, 0) // [B, T] bool
    const zeros = tf.zerosLike(mask) // [B, T]
    // Neutral values off the mask (ratio 1, advantage 0): no NaN from padding, and where's
    // gradient into the masked positions is exactly zero.
    const logp = tf.where(on, inputs.logprobs, zeros) // [B, T]
    const oldLogp = tf.where(on, float(inputs.oldLogprobs), zeros) // [B, T]
    const adv = tf.where(on, float(inputs.advantages), zeros) // [B, T]
    const logRatio = tf.sub(logp, oldLogp) // [B, T]
    const tokenRatio = tf.exp(logRatio) // [B, T]

    let ratio: tf.Tensor // [B, T]
    if (options.ratio === "token") {
      ratio = tokenRatio
    } else {
      // GSPO: s_i = exp(mean_t log w). Per token, sg(s_i) * exp(logp - sg(logp)) has the
      // value s_i and gradient s_i * d logp; summed by seq-mean-token-mean over a sequence
      // with one advantage, that is exactly the gradient of -s_i * A_i.
      const tokens = tf.maximum(tf.sum(mask, 1, true), 1) // [B, 1]
      const seqLogRatio = tf.div(tf.sum(tf.mul(logRatio, mask), 1, true), tokens) // [B, 1]
      const seqRatio = stopGradient(tf.exp(seqLogRatio)) // [B, 1]
      ratio = tf.mul(seqRatio, tf.exp(tf.sub(logp, stopGradient(logp)))) // [B, T]
    }

    const unclipped = tf.neg(tf.mul(ratio, adv)) // [B, T]
    const clipped = tf.neg(tf.mul(tf.clipByValue(ratio, 1 - options.epsLow, 1 + options.epsHigh), adv)) // [B, T]
    // maximum's gradient goes to its first argument on ties, so inside the band (where
    // both terms are equal) the unclipped term carries it.
    const surrogate = tf.maximum(unclipped, clipped) // [B, T]
    let perToken = surrogate // [B, T]
    let dualTaken: tf.Tensor | null = null // [B, T] bool
    if (options.dualClip !== null) {
      const negative = tf.less(adv, 0) // [B, T] bool
      const bound = tf.mul(-options.dualClip, adv) // [B, T], > 0 where A < 0
      perToken = tf.where(negative, tf.minimum(surrogate, bound), surrogate) // [B, T]
      dualTaken = tf.logicalAnd(negative, tf.greater(surrogate, bound)) // [B, T]
    }
    const pgLoss = aggregate(perToken, mask, options.aggregation, options.normConstant) // []

    let loss = pgLoss // []
    let klLoss: tf.Scalar | null = null // []
    if (options.klBeta > 0 && inputs.refLogprobs !== undefined) {
      const ref = tf.where(on, float(inputs.refLogprobs), zeros) // [B, T]
      klLoss = aggregate(klEstimate(logp, ref, options.klEstimator), mask, options.aggregation, options.normConstant) // []
      loss = tf.add(pgLoss, tf.mul(options.klBeta, klLoss)) // []
    }

    // Metrics read detached copies, so no gradient can flow through them.
    const tokenMean = (v: tf.Tensor): tf.Scalar => aggregate(stopGradient(v), mask, "token-mean", null)
    const fraction = (b: tf.Tensor): tf.Scalar => tokenMean(tf.cast(b, "float32"))
    const metrics: Record<string, tf.Scalar> = {
      "actor/pg_loss": tf.reshape(stopGradient(pgLoss), []),
      "actor/clip_frac": fraction(tf.greater(clipped, unclipped)),
      "actor/approx_kl": tokenMean(klEstimate(oldLogp, logp, "k3")),
      "actor/ratio_mean": tokenMean(ratio),
    }
    if (dualTaken !== null) metrics["actor/dual_clip_frac"] = fraction(dualTaken)
    if (klLoss !== null) metrics["actor/kl"] = tf.reshape(stopGradient(klLoss), [])
    return { loss, metrics }
  })
}

// ---------------------------------------------------------------------------------
// Catalogue
// ---------------------------------------------------------------------------------

const entry = (name: string, summary: string, overrides: Partial<PolicyLossOptions>): PolicyLoss<PolicyLossOptions> => ({
  name,
  summary,
  options: PolicyLossOptions,
  defaults: { ...defaultPolicyLossOptions, ...overrides },
  run: policyLoss,
  averagesOver: (options) => (options.aggregation === "token-mean" ? "tokens" : "sequences"),
})

/**
 * The shipped policy losses, keyed by name. All share {@link policyLoss} and
 * {@link PolicyLossOptions}; they differ only in their defaults.
 *
 * @example
 * const { loss } = policyLosses.dapo.run(inputs, policyLosses.dapo.defaults)
 */
export const policyLosses = {
  "clipped-surrogate": entry(
    "clipped-surrogate",
    "PPO's clipped surrogate with token ratios and token-mean aggregation (GTPO's default)",
    {},
  ),
  grpo: entry("grpo", "clipped surrogate averaged per sequence, then over sequences (original GRPO)", {
    aggregation: "seq-mean-token-mean",
  }),
  "dr-grpo": entry("dr-grpo", "clipped surrogate, token sums divided by a constant, then averaged over sequences (Dr.GRPO)", {
    aggregation: "seq-mean-token-sum-norm",
  }),
  dapo: entry("dapo", "clip-higher surrogate (epsHigh 0.28) with token-mean aggregation (DAPO)", { epsHigh: 0.28 }),
  gspo: entry("gspo", "sequence-level ratio (geometric mean) with a narrow clip band, per-sequence mean (GSPO)", {
    ratio: "sequence",
    epsLow: 3e-4,
    epsHigh: 4e-4,
    aggregation: "seq-mean-token-mean",
  }),
} as const satisfies Record<string, PolicyLoss<PolicyLossOptions>>

/** The name of a shipped policy loss. */
export type PolicyLossName = keyof typeof policyLosses
