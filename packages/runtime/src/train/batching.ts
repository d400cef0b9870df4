/**
 * From TrainingSequences to padded tensors, in micro-batches.
 *
 * A micro-batch of B sequences is padded to the length T of its longest member and
 * becomes four [B, T] tensors aligned with the sequences (entry k describes token k,
 * predicted from tokens < k). Padding has mask 0, so it adds nothing to a masked loss.
 * Position 0 is always masked: nothing predicts the first token.
 *
 * Micro-batches bound peak memory: activations scale with B x T of one micro-batch,
 * so the planner caps the number of sequences and/or the padded token count
 * (B x T) per micro-batch. Sequences are shuffled with the run's Rng first, so the
 * grouping is reproducible from a seed and a resumed run groups as the original did.
 *
 * @category constructors
 */
import * as tf from "@tensorflow/tfjs"
import type { TrainingSequence } from "@turnwise/core"
import { Data } from "effect"
import type { Rng } from "@turnwise/core"

/**
 * A training sequence that the trainer cannot use (misaligned arrays, token out of
 * range, too long for the model, non-numeric entries).
 *
 * @example
 * throw new TrainingInputError({ where: "sequence 3", problem: "mask has 9 entries, tokens has 10" })
 */
export class TrainingInputError extends Data.TaggedError("TrainingInputError")<{
  readonly where: string
  readonly problem: string
}> {
  override get message(): string {
    return `training input: ${this.problem} (at ${this.where})`
  }
}

/** One padded micro-batch. All tensors are [B, T]. */
export interface PaddedBatch {
  /** Token ids, int32, padding filled with the pad id. [B, T] */
  readonly tokens: tf.Tensor2D
  /** 1 on policy tokens, 0 elsewhere (and at position 0). float32 [B, T] */
  readonly mask: tf.Tensor2D
  /** Sampling-time logprobs. float32 [B, T] */
  readonly oldLogprobs: tf.Tensor2D
  /** Per-token advantages. float32 [B, T] */
  readonly advantages: tf.Tensor2D
  /** Log-probabilities under the reference policy, when the caller computed them. float32 [B, T] */
  readonly refLogprobs?: tf.Tensor2D
  /** Number of sequences B. */
  readonly sequences: number
  /** Padded length T. */
  readonly length: number
  /** Number of mask-1 entries (the tokens a token-mean loss averages over). */
  readonly maskedTokens: number
}

/** Caps on one micro-batch; either or both. A single sequence over the budget still forms its own. */
export interface MicroBatchLimits {
  /** At most this many sequences. */
  readonly maxSequences?: number
  /** At most this many padded tokens (B x T). */
  readonly maxTokens?: number
}

/**
 * Check that a sequence is usable: aligned arrays, integer tokens in [0, vocabSize),
 * length within maxSeqLen, finite mask in {0, 1}.
 *
 * @example
 * validateSequence(seq, 3, { vocabSize: 256, maxSeqLen: 512 }) // throws TrainingInputError naming "sequence 3"
 */
export const validateSequence = (
  seq: TrainingSequence,
  index: number,
  limits: { readonly vocabSize: number; readonly maxSeqLen: number },
): void => {
  const where = `sequence ${index}`
  const n = seq.tokens.length
  if (n === 0) throw new TrainingInputError({ where, problem: "has no tokens" })
  if (n > limits.maxSeqLen) {
    throw new TrainingInputError({ where, problem: `has ${n} tokens, the model accepts at most ${limits.maxSeqLen}` })
  }
  for (const [field, values] of [["mask", seq.mask], ["oldLogprobs", seq.oldLogprobs], ["advantages", seq.advantages]] as const) {
    if (values.length !== n) throw new TrainingInputError({ where, problem: `${field} has ${values.length} entries, tokens has ${n}` })
  }
  for (let k = 0; k < n; k++) {
    const t = seq.tokens[k] ?? -1
    if (!Number.isInteger(t) || t < 0 || t >= limits.vocabSize) {
      throw new TrainingInputError({ where: `${where}, token ${k}`, problem: `token id ${t} is outside [0, ${limits.vocabSize})` })
    }
    const m = seq.mask[k]
    if (m !== 0 && m !== 1) throw new TrainingInputError({ where: `${where}, token ${k}`, problem: `mask is ${m}, expected 0 or 1` })
  }
}

/**
 * Pad sequences into one batch of [B, T] tensors (T = longest sequence).
 * Non-finite old logprobs or advantages are passed through unchanged, so a broken
 * sampler shows up as a non-finite loss (and a skipped update) rather than being hidden.
 *
 * @example
 * `refLogprobs`, when given, holds one array per sequence (aligned with its tokens) of
 * log-probabilities under the reference policy; they are padded like the old logprobs.
 *
 * @example
 * const batch = padSequences([seqA, seqB], 0)
 * batch.tokens.shape // [2, max(lenA, lenB)]
 */
export const padSequences = (
  sequences: ReadonlyArray<TrainingSequence>,
  padId = 0,
  refLogprobs?: ReadonlyArray<ReadonlyArray<number>>,
): PaddedBatch => {
  const B = sequences.length
  const T = Math.max(1, ...sequences.map((s) => s.tokens.length))
  const tokens = new Int32Array(B * T).fill(padId)
  const mask = new Float32Array(B * T)
  const oldLogprobs = new Float32Array(B * T)
  const advantages = new Float32Array(B * T)
  const reference = refLogprobs === undefined ? undefined : new Float32Array(B * T)
  let maskedTokens = 0
  sequences.forEach((s, b) => {
    for (let k = 0; k < s.tokens.length; k++) {
      const i = b * T + k
      tokens[i] = s.tokens[k] ?? padId
      // Entry 0 has no prediction (nothing before it), so it never counts.
      const m = k === 0 ? 0 : (s.mask[k] ?? 0)
      mask[i] = m
      maskedTokens += m
      oldLogprobs[i] = m === 1 ? (s.oldLogprobs[k] ?? 0) : 0
      advantages[i] = m === 1 ? (s.advantages[k] ?? 0) : 0
      if (reference !== undefined) reference[i] = m === 1 ? (refLogprobs?.[b]?.[k] ?? 0) : 0
    }
  })
  return {
    tokens: tf.tensor2d(tokens, [B, T], "int32"), // [B, T]
    mask: tf.tensor2d(mask, [B, T]), // [B, T]
    oldLogprobs: tf.tensor2d(oldLogprobs, [B, T]), // [B, T]
    advantages: tf.tensor2d(advantages, [B, T]), // [B, T]
    ...(reference === undefined ? {} : { refLogprobs: tf.tensor2d(reference, [B, T]) }), // [B, T]
    sequences: B,
    length: T,
    maskedTokens,
  }
}

/**
 * Free the tensors of a padded batch.
 *
 * @example
 * disposeBatch(batch)
 */
export const disposeBatch = (batch: PaddedBatch): void => {
  tf.dispose([batch.tokens, batch.mask, batch.oldLogprobs, batch.advantages, batch.refLogprobs ?? []])
}

/**
 * Group sequence indices into micro-batches under the limits. With an Rng the order is
 * shuffled first (Fisher-Yates); without one the input order is kept. Groups are
 * filled greedily in that order: a sequence joins the current group while the group
 * stays within maxSequences and (members x longest length) within maxTokens.
 *
 * @example
 * planMicroBatches([5, 5, 5], { maxTokens: 10 }) // [[0, 1], [2]]
 */
export const planMicroBatches = (
  lengths: ReadonlyArray<number>,
  limits: MicroBatchLimits,
  rng?: Rng,
): Array<Array<number>> => {
  const order = lengths.map((_, i) => i)
  if (rng !== undefined) {
    for (let i = order.length - 1; i > 0; i--) {
      const j = rng.int(i + 1)
      const a = order[i] ?? 0
      order[i] = order[j] ?? 0
      order[j] = a
    }
  }
  const maxSequences = limits.maxSequences ?? Number.POSITIVE_INFINITY
  const maxTokens = limits.maxTokens ?? Number.POSITIVE_INFINITY
  const groups: Array<Array<number>> = []
  let current: Array<number> = []
  let longest = 0
  for (const i of order) {
    const len = lengths[i] ?? 0
    const nextLongest = Math.max(longest, len)
    const fits = current.length + 1 <= maxSequences && (current.length + 1) * nextLongest <= maxTokens
    if (current.length > 0 && !fits) {
      groups.push(current)
      current = []
      longest = 0
    }
    current.push(i)
    longest = Math.max(longest, len)
  }
  if (current.length > 0) groups.push(current)
  return groups
}
