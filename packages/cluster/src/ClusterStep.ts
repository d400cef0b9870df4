/**
 * A training step whose rollouts run on cluster runners: publish the learner's
 * weights as a new policy version, send every prompt of the step to a
 * {@link RolloutWorker} entity, gather one group per prompt, and hand the batch to
 * the pipeline's own `trainOnBatch` (filter, rewards, shaping, returns,
 * advantages, update), exactly as the in-process step does.
 *
 * Synchronous mode: every group of a step is sampled with the version published at
 * its start, so a step is "rollout on runners + the same update". Each prompt's
 * sampling is seeded by its identity; {@link promptSeededRollout} runs the same
 * per-prompt rollouts in this process, which is what a run with the same seed and
 * no runners computes.
 *
 * Faults: a prompt whose runner dies is sent again to the same entity id; the engine
 * places it on a live runner once the dead one's shard locks expire. Results are
 * kept by prompt index, one slot each, so a prompt is never counted twice and the
 * step does not finish until every slot holds a group.
 *
 * @category combinators
 */
import { Cause, Data, Effect, Layer, Option, Schedule } from "effect"
import type { Sharding } from "effect/cluster/Sharding"
import { NodeClusterSocket } from "@effect/platform-node"
import type { Batch, Group } from "@turnwise/core"
import { rollout, trainOnBatch } from "@turnwise/dsl"
import type { Policy, RecipeType, RolloutConfig, RunError, Sandbox, StepResult, Task, TaskProblem, Tokenizer } from "@turnwise/dsl"
import type { Transformer } from "@turnwise/runtime"
import { shardingSettings, storageLayer } from "./ClusterSettings.js"
import { Coordinator } from "./Coordinator.js"
import type { CoordinatorOptions } from "./Coordinator.js"
import type { ClusterDirs } from "./ClusterSettings.js"
import { publishVersion, PolicyVersionError } from "./PolicyVersions.js"
import { clusterTaskSpec, RolloutTaskError } from "./RolloutTask.js"
import type { ClusterTask } from "./RolloutTask.js"
import { promptEntityId, promptSeed, RolloutWorker } from "./RolloutWorker.js"

/** A prompt could not be rolled out on any runner. */
export class ClusterRolloutError
  extends Data.TaggedError("ClusterRolloutError")<{ readonly step: number; readonly promptId: string; readonly reason: string }>
{
  override get message(): string {
    return `cluster rollout of prompt "${this.promptId}" at step ${this.step} failed on every try: ${this.reason}`
  }
}

/**
 * The learner's connection to the cluster: a client-only member (it hosts no entities).
 *
 * @example
 * program.pipe(Effect.provide(learnerClusterLayer(clusterDirs("runs/x"))))
 */
export const learnerClusterLayer = (dirs: ClusterDirs): Layer.Layer<Sharding, unknown> =>
  NodeClusterSocket.layer({ clientOnly: true, storage: "byo", shardingConfig: shardingSettings }).pipe(Layer.provide(storageLayer(dirs)))

/**
 * The learner's connection to a cluster whose runners join from other machines: the
 * same client-only member, with the runner storage its {@link Coordinator} serves.
 *
 * @example
 * program.pipe(Effect.provide(learnerCoordinatorLayer({ listen: { host: "0.0.0.0", port: 7400 }, weightsDir, settings, lockExpirationMs })))
 */
export const learnerCoordinatorLayer = (options: CoordinatorOptions): Layer.Layer<Sharding | Coordinator, unknown> =>
  NodeClusterSocket.layer({ clientOnly: true, storage: "byo", shardingConfig: shardingSettings }).pipe(Layer.provideMerge(Coordinator.layer(options)))

/** A step's batch and where it came from. */
export interface ClusterBatch {
  readonly batch: Batch
  /** The policy version of each group (all equal in synchronous mode). */
  readonly versions: ReadonlyArray<number>
  /** The runner that produced each group. */
  readonly runners: ReadonlyArray<string>
  /** How many prompt sends failed and were sent again by the learner (the engine's own resends after a runner leaves are not counted). */
  readonly resent: number
  /** Each group's rollout time on its runner, and its wait there before it started (other prompts, version load), in seconds. */
  readonly promptSeconds: ReadonlyArray<number>
  readonly promptWaitSeconds: ReadonlyArray<number>
}

const mean = (xs: ReadonlyArray<number>): number => (xs.length === 0 ? 0 : xs.reduce((a, b) => a + b, 0) / xs.length)

/**
 * The runners' own timings of a step's prompts: mean and largest rollout time per
 * prompt, and the mean wait before a prompt started on its runner.
 *
 * @example
 * runnerTimingMetrics(rolled) // { "time/prompt_rollout_s": 1.9, "time/prompt_rollout_max_s": 2.6, "time/prompt_wait_s": 1.1 }
 */
export const runnerTimingMetrics = (rolled: Pick<ClusterBatch, "promptSeconds" | "promptWaitSeconds">): Record<string, number> => ({
  "time/prompt_rollout_s": mean(rolled.promptSeconds),
  "time/prompt_rollout_max_s": rolled.promptSeconds.length === 0 ? 0 : Math.max(...rolled.promptSeconds),
  "time/prompt_wait_s": mean(rolled.promptWaitSeconds),
})

/**
 * Roll the step's prompts out on the cluster's runners with policy `version`.
 *
 * `task` is the task's name (then a program task grades with the rollout's tool-call
 * limits, as in the learner's process) or its full description. A task the runners
 * cannot build fails with {@link RolloutTaskError} before anything is sent, or when a
 * runner refuses it (not retried: every runner would refuse it).
 *
 * @example
 * const { batch } = yield* clusterRollout("arithmetic", problems, recipe.rollout, { step: 2, seed: 7, version: 2 })
 */
export const clusterRollout = <P extends TaskProblem>(
  task: ClusterTask,
  problems: ReadonlyArray<P>,
  config: RolloutConfig,
  options: { readonly step: number; readonly seed: number; readonly version: number },
): Effect.Effect<ClusterBatch, ClusterRolloutError | RolloutTaskError, Sharding> =>
  Effect.gen(function*() {
    const spec = yield* clusterTaskSpec(task, config)
    const taskJson = JSON.stringify(spec)
    const client = yield* RolloutWorker.client
    let resent = 0
    const replies = yield* Effect.forEach(
      problems,
      (problem, index) => {
        const send = client(promptEntityId(options.step, index)).RolloutPrompt({
          step: options.step,
          index,
          seed: promptSeed(options.seed, problem.id),
          version: options.version,
          task: taskJson,
          problem: JSON.stringify(problem),
          rollout: JSON.stringify(config),
        })
        // A dead runner shows up as a failure or a defect of the send, depending on when it died.
        const once = Effect.catchCause(send, (cause): Effect.Effect<never, ClusterRolloutError | RolloutTaskError> => {
          const error = Cause.findErrorOption(cause)
          if (Option.isSome(error) && error.value instanceof RolloutTaskError) return Effect.fail(error.value)
          return Effect.sync(() => resent++).pipe(
            Effect.andThen(Effect.fail(new ClusterRolloutError({ step: options.step, promptId: problem.id, reason: String(cause) }))),
          )
        })
        return Effect.retry(once, { schedule: Schedule.spaced("200 millis"), times: 150, while: (error) => error._tag === "ClusterRolloutError" })
      },
      { concurrency: "unbounded" },
    )
    const groups = replies.map((reply) => JSON.parse(reply.group) as Group)
    return {
      batch: { groups },
      versions: replies.map((r) => r.version),
      runners: replies.map((r) => r.runner),
      resent,
      promptSeconds: replies.map((r) => r.seconds),
      promptWaitSeconds: replies.map((r) => r.waitSeconds),
    }
  })

/**
 * The same per-prompt rollouts in this process (each prompt its own session, seeded by its identity).
 *
 * @example
 * const batch = yield* promptSeededRollout(task, problems, recipe.rollout, { step: 0, seed: 7 })
 */
export const promptSeededRollout = <P extends TaskProblem>(
  task: Task<P>,
  problems: ReadonlyArray<P>,
  config: RolloutConfig,
  options: { readonly step: number; readonly seed: number },
): Effect.Effect<Batch, RunError, Policy | Sandbox | Tokenizer> =>
  Effect.forEach(problems, (problem) => Effect.scoped(rollout(task, [problem], config, { seed: promptSeed(options.seed, problem.id), step: options.step })))
    .pipe(
      Effect.map((parts) => ({ groups: parts.flatMap((part) => part.groups) })),
    )

/** What a cluster step produced. */
export interface ClusterStepResult extends StepResult {
  readonly versions: ReadonlyArray<number>
  readonly runners: ReadonlyArray<string>
  readonly resent: number
}

/**
 * Write the learner's current weights as policy `version` for the runners to fetch.
 *
 * @example
 * yield* publishPolicyVersion(dirs.weightsDir, step, runtime.model)
 */
export const publishPolicyVersion = (weightsDir: string, version: number, model: Transformer): Effect.Effect<void, PolicyVersionError> =>
  Effect.tryPromise({
    try: () => publishVersion(weightsDir, version, model),
    catch: (error) =>
      error instanceof PolicyVersionError
        ? error
        : new PolicyVersionError({ version, dir: weightsDir, problem: error instanceof Error ? error.message : String(error) }),
  })

/**
 * One synchronous training step with rollouts on the runners: publish version `step`, roll out, update.
 *
 * @example
 * const result = yield* clusterTrainStep(recipe, "arithmetic", problems, { step, seed, model: runtime.model, weightsDir })
 */
export const clusterTrainStep = <P extends TaskProblem>(
  recipe: RecipeType,
  task: ClusterTask,
  problems: ReadonlyArray<P>,
  options: { readonly step: number; readonly seed: number; readonly model: Transformer; readonly weightsDir: string },
): Effect.Effect<ClusterStepResult, RunError | ClusterRolloutError | RolloutTaskError | PolicyVersionError, Policy | Sharding> =>
  Effect.gen(function*() {
    const publishing = performance.now()
    yield* publishPolicyVersion(options.weightsDir, options.step, options.model)
    const started = performance.now()
    const rolled = yield* clusterRollout(task, problems, recipe.rollout, { step: options.step, seed: options.seed, version: options.step })
    const rolledAt = performance.now()
    const result = yield* trainOnBatch(recipe, rolled.batch)
    const timings = {
      "time/publish_s": (started - publishing) / 1000,
      "time/rollout_s": (rolledAt - started) / 1000,
      "time/train_s": (performance.now() - rolledAt) / 1000,
      ...runnerTimingMetrics(rolled),
    }
    return { ...result, metrics: { ...result.metrics, ...timings }, versions: rolled.versions, runners: rolled.runners, resent: rolled.resent }
  })
