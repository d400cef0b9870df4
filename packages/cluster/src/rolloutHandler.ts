/**
 * The runner's side of {@link RolloutWorker}: roll one prompt out with the asked
 * policy version and return its group, tagged with that version.
 *
 * The rollout is the pipeline's own (`rollout` from @turnwise/dsl) on a batch of
 * one problem, with the prompt's identity seed, so a group is the same whichever
 * runner produces it. The task is rebuilt from the description the prompt carries
 * (exact-answer or program synthesis, with its grading limits); tool calls and grading
 * run in this runner's sandbox pool. A task the runner cannot build fails the message
 * with a {@link RolloutTaskError} that names it (the learner does not resend it).
 *
 * @category layers
 */
import { Effect } from "effect"
import type { Group } from "@turnwise/core"
import { rollout } from "@turnwise/dsl"
import type { RolloutConfig, TaskProblem } from "@turnwise/dsl"
import { decodeRolloutTask, rolloutTask } from "./RolloutTask.js"
import { RolloutWorker } from "./RolloutWorker.js"
import { WorkerPolicy } from "./WorkerPolicy.js"

/** Fault injection for tests: what a runner does when it accepts a prompt. */
export interface AcceptHook {
  readonly onAccept?: (request: { readonly step: number; readonly index: number }) => void
}

/**
 * The entity's handlers on a runner.
 *
 * @example
 * rolloutWorkerLayer({ runner: "127.0.0.1:34001" }).pipe(Layer.provide(WorkerPolicy.layer(options)))
 */
export const rolloutWorkerLayer = (options: { readonly runner: string } & AcceptHook) =>
  RolloutWorker.toLayer(
    Effect.gen(function*() {
      const copy = yield* WorkerPolicy
      return RolloutWorker.of({
        RolloutPrompt: ({ payload }) =>
          Effect.gen(function*() {
            options.onAccept?.({ step: payload.step, index: payload.index })
            const task = rolloutTask(yield* decodeRolloutTask(payload.task))
            const problem = JSON.parse(payload.problem) as TaskProblem
            const config = JSON.parse(payload.rollout) as RolloutConfig
            const accepted = performance.now()
            let began = accepted
            const batch = yield* copy.withVersion(
              payload.version,
              Effect.suspend(() => {
                began = performance.now()
                return rollout(task, [problem], config, { seed: payload.seed, step: payload.step })
              }),
            ).pipe(Effect.orDie)
            const group: Group = batch.groups[0]!
            return {
              group: JSON.stringify(group),
              version: payload.version,
              runner: options.runner,
              seconds: (performance.now() - began) / 1000,
              waitSeconds: (began - accepted) / 1000,
            }
          }),
      })
    }),
    { concurrency: "unbounded" },
  )
