/**
 * The non-algorithmic parts of a recipe: how to roll out and how to optimise.
 *
 * Each field is declared once with its Schema, its default and its doc (see
 * {@link setting}), so a recipe can leave them all out, decoding fills them in, and a
 * printed recipe says exactly what ran.
 *
 * @category models
 */
import { Schema } from "effect"
import { defaultsOf, setting } from "@turnwise/core"

const PositiveInt = Schema.Int.check(Schema.isGreaterThanOrEqualTo(1))
const NonNegative = Schema.Finite.check(Schema.isGreaterThanOrEqualTo(0))
const NonNegativeInt = Schema.Int.check(Schema.isGreaterThanOrEqualTo(0))
const Fraction = Schema.Finite.check(Schema.isGreaterThanOrEqualTo(0), Schema.isLessThan(1))

/** How trajectories are sampled; the defaults are sized for the built-in task and a small model. */
export const RolloutConfig = Schema.Struct({
  groupSize: setting(PositiveInt, 8, "Trajectories sampled per prompt (G)"),
  maxTurns: setting(PositiveInt, 4, "Turn budget: a trajectory ends after this many policy turns"),
  maxTokens: setting(PositiveInt, 160, "Token budget per trajectory: policy plus tool-feedback tokens after the prompt"),
  maxNewTokensPerTurn: setting(PositiveInt, 48, "Longest single turn, in tokens"),
  temperature: setting(
    Schema.Finite.check(Schema.isGreaterThanOrEqualTo(0)),
    1,
    "Sampling temperature (the trainer recomputes logprobs at the same temperature); 0 = greedy, for evaluation only",
  ),
  topP: setting(Schema.Finite.check(Schema.isGreaterThan(0), Schema.isLessThanOrEqualTo(1)), 1, "Nucleus sampling mass (1 = off)"),
  topK: setting(NonNegativeInt, 0, "Top-k sampling (0 = off)"),
  language: setting(Schema.Literals(["js", "python"]), "js", "Interpreter for the policy's code"),
  sandboxSession: setting(Schema.Boolean, false, "Keep interpreter state across a trajectory's turns (notebook style)"),
  timeoutMs: setting(PositiveInt, 2000, "Wall-clock limit per tool call, in milliseconds"),
  memoryMb: setting(PositiveInt, 64, "Memory limit per tool call, in MB (the guest's files count against it)"),
  maxOutputChars: setting(PositiveInt, 120, "Longest tool output shown to the policy, in characters (truncated with a marker)"),
})
export type RolloutConfig = typeof RolloutConfig.Type

/** Every rollout default. */
export const defaultRollout: RolloutConfig = defaultsOf(RolloutConfig)

/** How the policy's weights are updated. */
export const OptimizerConfig = Schema.Struct({
  lr: setting(NonNegative, 2e-5, "Peak learning rate of AdamW"),
  weightDecay: setting(NonNegative, 0, "Decoupled weight decay (not applied to norms and biases)"),
  beta1: setting(Fraction, 0.9, "AdamW's first-moment decay"),
  beta2: setting(Fraction, 0.99, "AdamW's second-moment decay"),
  eps: setting(Schema.Finite.check(Schema.isGreaterThan(0)), 1e-8, "AdamW's denominator floor"),
  maxGradNorm: setting(NonNegative, 1, "Global gradient-norm clip (0 = off)"),
  warmupSteps: setting(NonNegativeInt, 0, "Linear warm-up, in optimizer updates (a step makes epochs x miniBatches of them), before the decay"),
  decay: setting(Schema.Literals(["constant", "linear", "cosine"]), "constant", "Learning-rate decay after warm-up"),
  epochs: setting(PositiveInt, 1, "Optimisation epochs over each batch (PPO-style reuse of a rollout)"),
  miniBatches: setting(
    PositiveInt,
    1,
    "Mini-batches per epoch, one update each: a step makes epochs x miniBatches updates, and the clip range bounds how far the later ones move",
  ),
  microBatchSize: setting(PositiveInt, 32, "Sequences per micro-batch; gradients accumulate so peak memory is bounded by it"),
  reference: setting(
    Schema.Literals(["initial", "none"]),
    "initial",
    "Keep the starting weights as the reference policy: needed by a KL penalty (loss klBeta > 0) and for the kl/reference metric; costs one copy of the weights",
  ),
  carryOptimizerState: setting(
    Schema.Boolean,
    false,
    "Continue from the optimizer moments saved with the warm-start checkpoint (model.init) instead of fresh ones; an error when it saved none",
  ),
})
export type OptimizerConfig = typeof OptimizerConfig.Type

/** Every optimizer default. */
export const defaultOptimizer: OptimizerConfig = defaultsOf(OptimizerConfig)
