/**
 * The rollout worker as an Effect cluster entity: one prompt in, one group out.
 *
 * The learner sends each prompt of a step to the entity `s<step>-p<index>`; the
 * engine places that id on a shard and the shard on a runner, so prompts spread
 * over the runners without the learner choosing. The message names the policy
 * version to sample with; the runner's {@link WorkerPolicy} fetches it if it holds
 * an older one. Sampling is seeded by the prompt's identity ({@link promptSeed}),
 * never by the runner, so a prompt run again on another runner after a fault gives
 * the same group. The task travels as a description the runner rebuilds it from
 * (RolloutTask.ts). Problems, rollout settings and groups travel as JSON text, which
 * keeps token ids and log-probabilities exact (JavaScript numbers print and parse
 * back to the same double).
 *
 * @category models
 */
import { Schema } from "effect"
import * as Entity from "effect/cluster/Entity"
import * as Rpc from "effect/rpc/Rpc"
import { RolloutTaskError } from "./RolloutTask.js"

/** One prompt of one step, to be rolled out with a given policy version. */
export const RolloutPrompt = Rpc.make("RolloutPrompt", {
  payload: {
    step: Schema.Number,
    index: Schema.Number,
    /** The sampling seed of this prompt (from the step seed and the problem's id). */
    seed: Schema.Number,
    version: Schema.Number,
    /** The task, as JSON (a `RolloutTaskSpec`: kind, name, grading limits); the worker grades with the same task the learner would. */
    task: Schema.String,
    /** The problem, as JSON. */
    problem: Schema.String,
    /** The recipe's rollout section, as JSON. */
    rollout: Schema.String,
  },
  success: Schema.Struct({
    /** The group (token ids, log-probs, observations, outcomes), as JSON. */
    group: Schema.String,
    /** The policy version that sampled every trajectory of the group. */
    version: Schema.Number,
    /** The runner that produced it (host:port), for reports. */
    runner: Schema.String,
    /** Seconds the rollout took on the runner (sampling, tool calls, grading). */
    seconds: Schema.Number,
    /** Seconds between accepting the prompt and starting it: waiting for the policy copy (other prompts) and loading the version. */
    waitSeconds: Schema.Number,
  }),
  /** The runner cannot build the task it was sent. */
  error: RolloutTaskError,
})

/**
 * The entity type of rollout workers.
 *
 * @example
 * const client = yield* RolloutWorker.client
 * const reply = yield* client("s0-p3").RolloutPrompt(request)
 */
export const RolloutWorker = Entity.make("RolloutWorker", [RolloutPrompt])

/** The entity id of a step's prompt. */
export const promptEntityId = (step: number, index: number): string => `s${step}-p${index}`

/**
 * The sampling seed of one prompt: the step seed mixed with the problem's id (FNV-1a),
 * so it does not depend on which runner rolls the prompt out or in which order.
 *
 * @example
 * promptSeed(1_000_003, "arith-17") // the same number on every runner
 */
export const promptSeed = (stepSeed: number, problemId: string): number => {
  let hash = 0x811c9dc5
  for (const ch of `${stepSeed}:${problemId}`) {
    hash ^= ch.charCodeAt(0)
    hash = Math.imul(hash, 0x01000193) >>> 0
  }
  return hash
}
