/**
 * The non-algorithmic parts of a recipe: how to roll out and how to optimise.
 *
 * Each field has a one-line doc and a default, so a recipe can leave them all out
 * and a printed recipe says exactly what ran.
 *
 * @category models
 */
import { Schema } from "effect"

const PositiveInt = Schema.Int.check(Schema.isGreaterThanOrEqualTo(1))
const NonNegative = Schema.Finite.check(Schema.isGreaterThanOrEqualTo(0))

/** How trajectories are sampled. */
export const RolloutConfig = Schema.Struct({
  /** Trajectories sampled per prompt (G). */
  groupSize: PositiveInt,
  /** Turn budget: a trajectory ends after this many policy turns. */
  maxTurns: PositiveInt,
  /** Token budget per trajectory: policy plus tool-feedback tokens after the prompt. */
  maxTokens: PositiveInt,
  /** Longest single turn, in tokens. */
  maxNewTokensPerTurn: PositiveInt,
  /** Sampling temperature (the trainer recomputes logprobs at the same temperature); 0 = greedy, for evaluation only. */
  temperature: Schema.Finite.check(Schema.isGreaterThanOrEqualTo(0)),
  /** Nucleus sampling mass (1 = off). */
  topP: Schema.Finite.check(Schema.isGreaterThan(0), Schema.isLessThanOrEqualTo(1)),
  /** Top-k sampling (0 = off). */
  topK: Schema.Int.check(Schema.isGreaterThanOrEqualTo(0)),
  /** Interpreter for the policy's code. */
  language: Schema.Literals(["js", "python"]),
  /** Keep interpreter state across a trajectory's turns (notebook style). */
  sandboxSession: Schema.Boolean,
  /** Wall-clock limit per tool call. */
  timeoutMs: PositiveInt,
  /** Memory limit per tool call. */
  memoryMb: PositiveInt,
  /** Longest tool output shown to the policy, in characters (truncated with a marker). */
  maxOutputChars: PositiveInt,
})
export type RolloutConfig = typeof RolloutConfig.Type

/** Defaults sized for the built-in task and a small model. */
export const defaultRollout: RolloutConfig = {
  groupSize: 8,
  maxTurns: 4,
  maxTokens: 160,
  maxNewTokensPerTurn: 48,
  temperature: 1,
  topP: 1,
  topK: 0,
  language: "js",
  sandboxSession: false,
  timeoutMs: 2000,
  memoryMb: 64,
  maxOutputChars: 120,
}

/** How the policy's weights are updated. */
export const OptimizerConfig = Schema.Struct({
  /** Peak learning rate of AdamW. */
  lr: NonNegative,
  /** Decoupled weight decay (not applied to norms and biases). */
  weightDecay: NonNegative,
  beta1: Schema.Finite.check(Schema.isGreaterThanOrEqualTo(0), Schema.isLessThan(1)),
  beta2: Schema.Finite.check(Schema.isGreaterThanOrEqualTo(0), Schema.isLessThan(1)),
  eps: Schema.Finite.check(Schema.isGreaterThan(0)),
  /** Global gradient-norm clip (0 = off). */
  maxGradNorm: NonNegative,
  /** Linear warm-up, in optimizer updates (a step makes epochs x miniBatches of them), before the decay. */
  warmupSteps: Schema.Int.check(Schema.isGreaterThanOrEqualTo(0)),
  /** Learning-rate decay after warm-up. */
  decay: Schema.Literals(["constant", "linear", "cosine"]),
  /** Optimisation epochs over each batch (PPO-style reuse of a rollout). */
  epochs: PositiveInt,
  /** Mini-batches per epoch, one update each: a step makes epochs x miniBatches updates, and the clip range bounds how far the later ones move. */
  miniBatches: PositiveInt,
  /** Sequences per micro-batch; gradients accumulate so peak memory is bounded by it. */
  microBatchSize: PositiveInt,
  /** Keep the starting weights as the reference policy: needed by a KL penalty (loss klBeta > 0) and for the `kl/reference` metric; costs one copy of the weights. */
  reference: Schema.Literals(["initial", "none"]),
  /** Continue from the optimizer moments saved with the warm-start checkpoint (model.init) instead of fresh ones; an error when it saved none. */
  carryOptimizerState: Schema.Boolean,
})
export type OptimizerConfig = typeof OptimizerConfig.Type

export const defaultOptimizer: OptimizerConfig = {
  lr: 2e-5,
  weightDecay: 0,
  beta1: 0.9,
  beta2: 0.99,
  eps: 1e-8,
  maxGradNorm: 1,
  warmupSteps: 0,
  decay: "constant",
  epochs: 1,
  miniBatches: 1,
  microBatchSize: 32,
  reference: "initial",
  carryOptimizerState: false,
}
