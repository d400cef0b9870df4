/**
 * The training loop with rollouts on cluster runners: the same data order, metrics,
 * evaluation (in the learner's process) and checkpoints as the pipeline's
 * `trainLoop`. Evaluation runs in the learner's process (it is greedy and small);
 * only training rollouts go to the runners.
 *
 * Synchronous mode (the default): each step a {@link clusterTrainStep}.
 * Asynchronous mode: later steps roll out while the learner trains, at most
 * `maxStaleness` versions behind, with the update corrected for the behaviour policy
 * ({@link asyncClusterSteps}).
 *
 * @category combinators
 */
import { Effect } from "effect"
import type { Sharding } from "effect/cluster/Sharding"
import { trainLoopWith } from "@turnwise/dsl"
import type { LoopOptions, LoopResult, RecipeType, RunError, RunServices, Task, TaskProblem } from "@turnwise/dsl"
import type { Transformer } from "@turnwise/runtime"
import { asyncClusterSteps } from "./AsyncClusterSteps.js"
import type { AsyncSettings, ClusterScheduleError } from "./AsyncClusterSteps.js"
import type { ClusterRolloutError, ClusterStepResult } from "./ClusterStep.js"
import { clusterTrainStep } from "./ClusterStep.js"
import type { PolicyVersionError } from "./PolicyVersions.js"

/** How rollouts and updates interleave: one after the other, or overlapped with bounded staleness. */
export type ClusterSchedule = { readonly mode: "sync" } | ({ readonly mode: "async" } & AsyncSettings)

/**
 * Train for `steps` steps with rollouts on the runners the learner's `Sharding` reaches.
 *
 * @example
 * yield* clusterTrainLoop(recipe, "arithmetic", task, { ...loopOptions, model: runtime.model, weightsDir: dirs.weightsDir })
 */
export const clusterTrainLoop = <P extends TaskProblem>(
  recipe: RecipeType,
  taskName: string,
  task: Task<P>,
  options: LoopOptions<P> & {
    readonly model: Transformer
    readonly weightsDir: string
    /** Default: synchronous. */
    readonly schedule?: ClusterSchedule
    /** Called with each step's full result (its batch, versions and runners). */
    readonly onResult?: (step: number, result: ClusterStepResult) => void
  },
): Effect.Effect<LoopResult, RunError | ClusterRolloutError | PolicyVersionError | ClusterScheduleError, RunServices | Sharding> => {
  const schedule = options.schedule ?? { mode: "sync" }
  if (schedule.mode === "async") {
    return Effect.scoped(
      Effect.gen(function*() {
        const scope = yield* Effect.scope
        return yield* trainLoopWith(recipe, task, options, asyncClusterSteps(recipe, taskName, { ...options, ...schedule }, scope))
      }),
    )
  }
  return trainLoopWith(recipe, task, options, (problems, at) =>
    Effect.gen(function*() {
      const started = performance.now()
      const result = yield* clusterTrainStep(recipe, taskName, problems, { ...at, model: options.model, weightsDir: options.weightsDir })
      options.onResult?.(at.step, result)
      return { metrics: { ...result.metrics, "time/step_s": (performance.now() - started) / 1000, "cluster/runners_used": new Set(result.runners).size } }
    }))
}
