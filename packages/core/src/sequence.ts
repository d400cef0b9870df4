/**
 * The token-level view of a trajectory that trainers consume.
 *
 * A trajectory flattens to one token sequence: prompt, then for each turn the
 * policy's tokens followed by the tool feedback's tokens. Arrays are aligned with
 * `tokens`: entry k describes token k, which the model predicts from tokens[0..k-1]
 * (so entry 0 is always masked). Only policy-written tokens have `mask` 1; prompt,
 * tool feedback and padding have 0 and contribute neither to the loss nor to the
 * importance ratio.
 *
 * @category models
 */

/** One trajectory ready for the trainer. */
export interface TrainingSequence {
  /** Exact token ids as sampled: prompt, then per turn policy tokens and feedback tokens. */
  readonly tokens: ReadonlyArray<number>
  /** 1 where the policy wrote token k, else 0. */
  readonly mask: ReadonlyArray<number>
  /** log pi_old(token k) where mask is 1, else 0. */
  readonly oldLogprobs: ReadonlyArray<number>
  /** The advantage of token k's turn where mask is 1, else 0. */
  readonly advantages: ReadonlyArray<number>
  /** Index of the turn token k belongs to (its policy part), or -1 for prompt and feedback. */
  readonly turnIndex: ReadonlyArray<number>
}
