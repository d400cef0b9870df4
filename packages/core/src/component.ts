/**
 * The shared shape of every catalogue entry, one interface per stage kind.
 *
 * A component is a named pure function with a Schema for its options and a record of
 * defaults, so that a recipe can refer to it by name, print its configuration, save it
 * with a run and load it back from JSON. Input and output types carry the level
 * (per turn or per trajectory) and the quantity (reward, return, advantage), so a
 * recipe that feeds trajectory rewards into a per-turn discounted-return estimator
 * does not compile.
 *
 * @category models
 */
import type * as tf from "@tensorflow/tfjs-core"
import type { Schema } from "effect"
import type { Batch } from "./model.js"
import type { PerTrajectory, PerTurn, Quantity } from "./values.js"

/** Per turn or per trajectory. */
export type Level = "turn" | "trajectory"

/** The table type for a level and a quantity. */
export type LevelValues<L extends Level, Q extends Quantity> = L extends "turn" ? PerTurn<Q> : PerTrajectory<Q>

/**
 * A catalogue entry: a named pure function with typed, schema-validated options.
 *
 * @example
 * const myAdvantage: AdvantageEstimator<"trajectory", "trajectory", { scale: number }> = {
 *   name: "scaled", summary: "returns times a constant",
 *   options: Schema.Struct({ scale: Schema.Finite }), defaults: { scale: 1 },
 *   inputLevel: "trajectory", outputLevel: "trajectory",
 *   run: ({ returns }, { scale }) => perTrajectory("advantage", returns.values.map((g) => g.map((r) => r * scale))),
 * }
 */
export interface Component<In, Out, O> {
  /** The name a recipe uses for it. */
  readonly name: string
  /** One line saying what it does. */
  readonly summary: string
  /** Validates options decoded from JSON (unknown keys and wrong types are rejected by the DSL). */
  readonly options: Schema.Codec<O, unknown>
  /** The options used when a recipe sets none. */
  readonly defaults: O
  /**
   * The algorithm. Throws AlgorithmInputError on bad input.
   * Declared as a method (bivariant parameters) so that entries of any level fit a
   * catalogue typed with `Level`; illegal pipelines are still rejected through the
   * `level` / `inputLevel` / `outputLevel` literal fields.
   */
  run(input: In, options: O): Out
}

/** Maps a batch to rewards at its level. */
export interface RewardAssigner<L extends Level, O> extends Component<{ readonly batch: Batch }, LevelValues<L, "reward">, O> {
  readonly level: L
}

/** Vectors for code strings; the similarity measure of code-similarity shaping. */
export type Embedder = (codes: ReadonlyArray<string>) => ReadonlyArray<ReadonlyArray<number>>

/** Rewrites rewards (e.g. partial credit for failed trajectories), keeping their level. */
export interface Shaper<L extends Level, O>
  extends Component<{ readonly batch: Batch; readonly rewards: LevelValues<L, "reward">; readonly embed?: Embedder }, LevelValues<L, "reward">, O>
{
  readonly level: L
  /**
   * Whether, with these options, the shaper compares code by the policy's own
   * embedding; the pipeline then computes it and passes it as `embed`. Absent: never.
   */
  usesPolicyEmbedding?(options: O): boolean
}

/** Maps rewards to returns. */
export interface ReturnEstimator<In extends Level, Out extends Level, O>
  extends Component<{ readonly batch: Batch; readonly rewards: LevelValues<In, "reward"> }, LevelValues<Out, "return">, O>
{
  readonly inputLevel: In
  readonly outputLevel: Out
}

/** Maps returns to advantages. */
export interface AdvantageEstimator<In extends Level, Out extends Level, O>
  extends Component<{ readonly batch: Batch; readonly returns: LevelValues<In, "return"> }, LevelValues<Out, "advantage">, O>
{
  readonly inputLevel: In
  readonly outputLevel: Out
}

/** Decides which groups of a batch to train on. It must look at outcomes, not shaped scores. */
export interface SampleFilter<O> extends Component<{ readonly batch: Batch }, FilterResult, O> {}

/** Which groups a filter keeps. */
export interface FilterResult {
  /** `keep[g]` is true when group g is trained on. */
  readonly keep: ReadonlyArray<boolean>
  /** Why each dropped group was dropped (for metrics). */
  readonly reasons: ReadonlyArray<string | null>
}

/**
 * Token-aligned tensors for one (micro-)batch of B sequences padded to length T,
 * aligned like a `TrainingSequence`: entry k is about token k (its logprob comes
 * from the logits at position k - 1; entry 0 is always masked).
 */
export interface LossInputs {
  /** log pi_theta of each sampled token, differentiable. [B, T] */
  readonly logprobs: tf.Tensor2D
  /** log pi_old of each sampled token (from sampling). [B, T] */
  readonly oldLogprobs: tf.Tensor2D
  /** Advantage of each token (the turn's advantage on policy tokens). [B, T] */
  readonly advantages: tf.Tensor2D
  /** 1 on policy-written tokens, 0 on prompt, tool feedback and padding. [B, T] */
  readonly mask: tf.Tensor2D
  /** log pi_ref of each token, when a KL penalty is configured. [B, T] */
  readonly refLogprobs?: tf.Tensor2D
}

/** A loss and its metrics (scalars, stable names such as `actor/clip_frac`). */
export interface LossOutput {
  readonly loss: tf.Scalar
  readonly metrics: Readonly<Record<string, tf.Scalar>>
}

/** A policy-gradient objective on tfjs-core tensors (any backend). */
export interface PolicyLoss<O> extends Component<LossInputs, LossOutput, O> {
  /**
   * What the loss averages over with these options: every masked token of the batch,
   * or sequences. The trainer weights micro-batch gradients to match, so that
   * accumulating them gives the loss of the whole batch.
   */
  averagesOver(options: O): "tokens" | "sequences"
}
