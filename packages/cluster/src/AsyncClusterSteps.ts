/**
 * Asynchronous mode: the rollouts of later steps run on the runners while the
 * learner trains, with a bound on how many versions behind a trajectory may be.
 *
 * At the start of step s the learner publishes version s (its weights after s
 * updates) and sends the prompts of every step up to s + maxStaleness that has not
 * been sent yet, all with version s. It then waits for the groups of step s (sent at
 * step s - maxStaleness, or at the first step of the run with that step's version)
 * and trains on them while the runners roll out the later steps. A group of step s
 * therefore carries a version v with s - maxStaleness <= v <= s: at most
 * maxStaleness versions behind the weights it updates. maxStaleness 0 sends each
 * step's prompts at its own start, which is the synchronous schedule.
 *
 * The update is corrected for the behaviour policy (see ImportanceCorrection.ts).
 *
 * The data order and step seeds are the loop's own; a later step's prompts and seed
 * are computed here ahead of time, and checked against what the loop hands over when
 * that step comes, so a change of the loop's order fails loudly instead of training on
 * the wrong prompts.
 *
 * @category combinators
 */
import { Data, Effect, Fiber } from "effect"
import type { Scope } from "effect"
import type { Sharding } from "effect/cluster/Sharding"
import { Policy, problemsForStep, trainOnBatch } from "@turnwise/dsl"
import type { RecipeType, RunError, StepRunner, TaskProblem } from "@turnwise/dsl"
import type { Transformer } from "@turnwise/runtime"
import { clusterRollout, publishPolicyVersion, runnerTimingMetrics } from "./ClusterStep.js"
import type { ClusterBatch, ClusterRolloutError, ClusterStepResult } from "./ClusterStep.js"
import { behaviourCorrected } from "./ImportanceCorrection.js"
import type { ImportanceStats } from "./ImportanceCorrection.js"
import type { PolicyVersionError } from "./PolicyVersions.js"
import type { ClusterTask, RolloutTaskError } from "./RolloutTask.js"

/** Settings of asynchronous mode. */
export interface AsyncSettings {
  /** At most this many policy versions between a trajectory's sampler and the weights it updates. */
  readonly maxStaleness: number
  /** Importance weights above this are cut to it; null: no truncation. */
  readonly importanceCap: number | null
}

/** The prompts sent ahead for a step are not the ones the loop asked for when the step came. */
export class ClusterScheduleError extends Data.TaggedError("ClusterScheduleError")<{ readonly step: number; readonly problem: string }> {
  override get message(): string {
    return `asynchronous cluster schedule at step ${this.step}: ${this.problem}`
  }
}

/**
 * Staleness of a step's groups: how many versions each is behind `step`.
 *
 * @example
 * stalenessMetrics(4, [3, 3, 4]) // { "cluster/staleness_max": 1, "cluster/staleness_mean": 0.666... }
 */
export const stalenessMetrics = (step: number, versions: ReadonlyArray<number>): Record<string, number> => {
  const behind = versions.map((v) => step - v)
  return {
    "cluster/staleness_max": behind.length === 0 ? 0 : Math.max(...behind),
    "cluster/staleness_mean": behind.length === 0 ? 0 : behind.reduce((a, b) => a + b, 0) / behind.length,
  }
}

const importanceMetrics = (stats: ImportanceStats, seconds: number): Record<string, number> => ({
  "cluster/is_weight_mean": stats.mean,
  "cluster/is_weight_max": stats.max,
  "cluster/is_truncated_frac": stats.truncatedFraction,
  "time/proximal_s": seconds,
})

// The update holds this thread without yielding to I/O; a short pause lets the
// prompts just sent leave for the runners first, so they roll out during the update.
const dispatchPause = "20 millis"

interface Sent {
  readonly problemIds: ReadonlyArray<string>
  readonly seed: number
  readonly fiber: Fiber.Fiber<ClusterBatch, ClusterRolloutError | RolloutTaskError>
}

/**
 * The step runner of asynchronous mode for `trainLoopWith`; rollouts sent ahead live
 * in `scope` (interrupted when it closes).
 *
 * @example
 * const runStep = asyncClusterSteps(recipe, "arithmetic", { ...loopOptions, model, weightsDir, maxStaleness: 1, importanceCap: 2 }, scope)
 */
export const asyncClusterSteps = <P extends TaskProblem>(
  recipe: RecipeType,
  task: ClusterTask,
  options: AsyncSettings & {
    readonly trainProblems: ReadonlyArray<P>
    readonly promptsPerStep: number
    readonly steps: number
    readonly seed: number
    readonly model: Transformer
    readonly weightsDir: string
    readonly onResult?: (step: number, result: ClusterStepResult) => void
  },
  scope: Scope.Scope,
): StepRunner<P, RunError | ClusterRolloutError | RolloutTaskError | PolicyVersionError | ClusterScheduleError, Policy | Sharding> => {
  const sent = new Map<number, Sent>()
  return (problems, at) =>
    Effect.gen(function*() {
      if (!Number.isInteger(options.maxStaleness) || options.maxStaleness < 0) {
        return yield* new ClusterScheduleError({ step: at.step, problem: `maxStaleness must be a non-negative integer, got ${options.maxStaleness}` })
      }
      const started = performance.now()
      yield* publishPolicyVersion(options.weightsDir, at.step, options.model)
      const published = performance.now()
      const last = Math.min(options.steps - 1, at.step + options.maxStaleness)
      let sentNow = 0
      for (let step = at.step; step <= last; step++) {
        if (sent.has(step)) continue
        const stepProblems = step === at.step ? problems : problemsForStep(options.trainProblems, options.promptsPerStep, step, options.seed)
        // The loop's step seeds are consecutive (seed * 1_000_003 + step); checked when the step comes.
        const seed = at.seed + (step - at.step)
        const fiber = yield* Effect.forkIn(clusterRollout(task, stepProblems, recipe.rollout, { step, seed, version: at.step }), scope, {
          startImmediately: true,
        })
        sent.set(step, { problemIds: stepProblems.map((p) => p.id), seed, fiber })
        sentNow += 1
      }
      const mine = sent.get(at.step)!
      sent.delete(at.step)
      const askedIds = problems.map((p) => p.id)
      if (mine.seed !== at.seed || mine.problemIds.join("\u0000") !== askedIds.join("\u0000")) {
        return yield* new ClusterScheduleError({
          step: at.step,
          problem: `sent ahead with seed ${mine.seed} and prompts [${mine.problemIds.join(", ")}], the loop asks for seed ${at.seed} and [${
            askedIds.join(", ")
          }]`,
        })
      }
      const rolled = yield* Fiber.join(mine.fiber)
      if (sentNow > 0) yield* Effect.sleep(dispatchPause)
      const rolledAt = performance.now()
      const policy = yield* Policy
      let correction: { readonly stats: ImportanceStats; readonly seconds: number } | undefined
      const result = yield* trainOnBatch(recipe, rolled.batch).pipe(
        Effect.provideService(Policy, behaviourCorrected(policy, options.model, options.importanceCap, (stats, seconds) => (correction = { stats, seconds }))),
      )
      const finished = performance.now()
      const full: ClusterStepResult = { ...result, versions: rolled.versions, runners: rolled.runners, resent: rolled.resent }
      options.onResult?.(at.step, full)
      return {
        metrics: {
          ...result.metrics,
          ...stalenessMetrics(at.step, rolled.versions),
          ...(correction === undefined ? {} : importanceMetrics(correction.stats, correction.seconds)),
          ...runnerTimingMetrics(rolled),
          "time/publish_s": (published - started) / 1000,
          "time/rollout_wait_s": (rolledAt - started) / 1000,
          "time/train_s": (finished - rolledAt) / 1000,
          "time/step_s": (finished - started) / 1000,
          "cluster/runners_used": new Set(rolled.runners).size,
        },
      }
    })
}
