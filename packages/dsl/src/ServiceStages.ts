/**
 * The stages that need services: the multi-turn rollout (with tool execution) and the
 * policy update. Like catalogue stages they are values with a name, a Schema for their
 * configuration and an Effect implementation; their requirements are services, so a
 * host app decides what runs them by the Layers it provides.
 *
 * @category constructors
 */
import { Effect } from "effect"
import type { Schema, Scope } from "effect"
import type { Batch, LossInputs, LossOutput, TrainingSequence } from "@turnwise/core"
import { OptimizerConfig, RolloutConfig } from "./Config.js"
import { rollout } from "./Rollout.js"
import type { Task, TaskProblem } from "./Task.js"
import { Policy } from "./services/Policy.js"
import type { PolicyError, TrainReport } from "./services/Policy.js"
import type { Sandbox, SandboxError } from "./services/Sandbox.js"
import type { Tokenizer } from "./services/Tokenizer.js"

/** A stage whose implementation needs services. */
export interface ServiceStage<C, In, Out, Err, R> {
  readonly name: string
  /** Validates the stage's configuration (a recipe section). */
  readonly config: Schema.Codec<C, unknown>
  readonly run: (config: C, input: In) => Effect.Effect<Out, Err, R>
}

/** Input of the rollout stage. */
export interface RolloutInput<P extends TaskProblem = TaskProblem> {
  readonly task: Task<P>
  readonly problems: ReadonlyArray<P>
  readonly seed: number
  readonly step: number
}

/**
 * Multi-turn rollout with tool execution: G trajectories per problem (see Rollout.ts).
 *
 * @example
 * const batch = yield* Effect.scoped(multiTurnRollout.run(recipe.rollout, { task, problems, seed: 1, step: 0 }))
 */
export const multiTurnRollout = {
  name: "multi-turn-rollout",
  config: RolloutConfig,
  run: <P extends TaskProblem>(config: RolloutConfig, input: RolloutInput<P>) =>
    rollout(input.task, input.problems, config, { seed: input.seed, step: input.step }),
} satisfies ServiceStage<RolloutConfig, RolloutInput, Batch, PolicyError | SandboxError, Policy | Sandbox | Tokenizer | Scope.Scope>

/** Input of the policy-update stage. */
export interface UpdateInput {
  readonly sequences: ReadonlyArray<TrainingSequence>
  readonly loss: (inputs: LossInputs) => LossOutput
  readonly temperature: number
  readonly accumulation: "tokens" | "sequences"
}

/**
 * One optimiser update of the policy on token sequences with the recipe's loss. The
 * optimiser's hyper-parameters (the recipe's `optimizer` section) are bound when the
 * Policy layer is built, so the stage passes the per-step parts.
 *
 * @example
 * const report = yield* policyUpdate.run(recipe.optimizer, { sequences, loss, temperature: 1, accumulation: "tokens" })
 */
export const policyUpdate: ServiceStage<OptimizerConfig, UpdateInput, TrainReport, PolicyError, Policy> = {
  name: "policy-update",
  config: OptimizerConfig,
  run: (_config, input) =>
    Effect.gen(function*() {
      const policy = yield* Policy
      return yield* policy.train(input.sequences, { loss: input.loss, temperature: input.temperature, accumulation: input.accumulation })
    }),
}
