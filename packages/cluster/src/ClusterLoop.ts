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
import { clusterTaskSpec } from "./RolloutTask.js"
import type { ClusterTask, RolloutTaskError } from "./RolloutTask.js"

/** How rollouts and updates interleave: one after the other, or overlapped with bounded staleness. */
export type ClusterSchedule = { readonly mode: "sync" } | ({ readonly mode: "async" } & AsyncSettings)

/**
 * Train for `steps` steps with rollouts on the runners the learner's `Sharding` reaches.
 *
 * `task` tells the runners which task to build (its name, or its description with
 * grading limits; see RolloutTask.ts); `learnerTask` is the same task in this process,
 * for evaluation. A task the runners cannot build fails with `RolloutTaskError` before
 * the first step.
 *
 * @example
 * yield* clusterTrainLoop(recipe, "arithmetic", task, { ...loopOptions, model: runtime.model, weightsDir: dirs.weightsDir })
 */
export const clusterTrainLoop = <P extends TaskProblem>(
  recipe: RecipeType,
  task: ClusterTask,
  learnerTask: Task<P>,
  options: LoopOptions<P> & {
    readonly model: Transformer
    readonly weightsDir: string
    /** Default: synchronous. */
    readonly schedule?: ClusterSchedule
    /** Called with each step's full result (its batch, versions and runners). */
    readonly onResult?: (step: number, result: ClusterStepResult) => void
  },
): Effect.Effect<LoopResult, RunError | ClusterRolloutError | RolloutTaskError | PolicyVersionError | ClusterScheduleError, RunServices | Sharding> =>
  Effect.gen(function*() {
    const spec = yield* clusterTaskSpec(task, recipe.rollout)
    const schedule = options.schedule ?? { mode: "sync" }
    if (schedule.mode === "async") {
      return yield* Effect.scoped(
        Effect.gen(function*() {
          const scope = yield* Effect.scope
          return yield* trainLoopWith(recipe, learnerTask, options, asyncClusterSteps(recipe, spec, { ...options, ...schedule }, scope))
        }),
      )
    }
    return yield* trainLoopWith(recipe, learnerTask, options, (problems, at) =>
      Effect.gen(function*() {
        const started = performance.now()
        const result = yield* clusterTrainStep(recipe, spec, problems, { ...at, model: options.model, weightsDir: options.weightsDir })
        options.onResult?.(at.step, result)
        return { metrics: { ...result.metrics, "time/step_s": (performance.now() - started) / 1000, "cluster/runners_used": new Set(result.runners).size } }
      }))
  })
