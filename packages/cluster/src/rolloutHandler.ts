/**
 * The runner's side of {@link RolloutWorker}: roll one prompt out with the asked
 * policy version and return its group, tagged with that version.
 *
 * The rollout is the pipeline's own (`rollout` from @turnwise/dsl) on a batch of
 * one problem, with the prompt's identity seed, so a group is the same whichever
 * runner produces it. Tasks are looked up by name among the exact-answer tasks
 * (arithmetic and JSONL data sets); a task the runner does not know fails the
 * message with a defect that names it.
 *
 * @category layers
 */
import { Effect } from "effect"
import type { Group } from "@turnwise/core"
import { rollout } from "@turnwise/dsl"
import type { RolloutConfig } from "@turnwise/dsl"
import { exactAnswerTask } from "@turnwise/tasks"
import type { Problem } from "@turnwise/tasks"
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
            const problem = JSON.parse(payload.problem) as Problem
            const config = JSON.parse(payload.rollout) as RolloutConfig
            const batch = yield* copy.withVersion(
              payload.version,
              rollout(exactAnswerTask(payload.task), [problem], config, { seed: payload.seed, step: payload.step }),
            )
            const group: Group = batch.groups[0]!
            return { group: JSON.stringify(group), version: payload.version, runner: options.runner }
          }).pipe(Effect.orDie),
      })
    }),
    { concurrency: "unbounded" },
  )
