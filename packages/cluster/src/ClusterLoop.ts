/**
 * The training loop with rollouts on cluster runners: the same data order, metrics,
 * evaluation and checkpoints as the pipeline's `trainLoop`, with each step a
 * {@link clusterTrainStep}. Evaluation runs in the learner's process (it is greedy
 * and small); only training rollouts go to the runners.
 *
 * @category combinators
 */
import { Effect } from "effect"
import type { Sharding } from "effect/cluster/Sharding"
import { CheckpointStore, evaluate, MetricsSink, problemsForStep } from "@turnwise/dsl"
import type { LoopOptions, LoopResult, RecipeType, RunError, RunServices, Task, TaskProblem } from "@turnwise/dsl"
import type { Transformer } from "@turnwise/runtime"
import type { ClusterRolloutError, ClusterStepResult } from "./ClusterStep.js"
import { clusterTrainStep } from "./ClusterStep.js"
import type { PolicyVersionError } from "./PolicyVersions.js"

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
    /** Called with each step's full result (its batch, versions and runners). */
    readonly onResult?: (step: number, result: ClusterStepResult) => void
  },
): Effect.Effect<LoopResult, RunError | ClusterRolloutError | PolicyVersionError, RunServices | Sharding> =>
  Effect.gen(function*() {
    const sink = yield* MetricsSink
    const store = yield* CheckpointStore
    let startStep = 0
    if (options.resume) {
      const restored = yield* store.restoreLatest()
      if (restored !== null) startStep = restored.step
    }
    const trainMetrics: Array<Readonly<Record<string, number>>> = []
    let finalEval: Readonly<Record<string, number>> = {}
    for (let step = startStep; step < options.steps; step++) {
      const problems = problemsForStep(options.trainProblems, options.promptsPerStep, step, options.seed)
      const started = performance.now()
      const result = yield* clusterTrainStep(recipe, taskName, problems, {
        step,
        seed: options.seed * 1_000_003 + step,
        model: options.model,
        weightsDir: options.weightsDir,
      })
      options.onResult?.(step, result)
      const metrics = { ...result.metrics, "time/step_s": (performance.now() - started) / 1000, "cluster/runners_used": new Set(result.runners).size }
      trainMetrics.push(metrics)
      yield* sink.record({ step: step + 1, phase: "train", metrics })
      options.onStep?.(step + 1, metrics)
      const done = step + 1
      const last = done === options.steps
      if ((options.evalEvery > 0 && done % options.evalEvery === 0) || last) {
        const evaluation = yield* evaluate(recipe, task, options.evalProblems, { seed: options.seed })
        finalEval = evaluation.metrics
        yield* sink.record({ step: done, phase: "eval", metrics: evaluation.metrics })
      }
      if ((options.checkpointEvery > 0 && done % options.checkpointEvery === 0) || last) {
        yield* store.save(done, { recipe: recipe.name })
      }
    }
    return { startStep, finalStep: options.steps, finalEval, trainMetrics }
  })
