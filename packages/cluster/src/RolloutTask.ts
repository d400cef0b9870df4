/**
 * What a runner needs to rebuild the learner's task, sent with every prompt: the
 * task's kind and name and, for program synthesis, the limits its grader runs the
 * hidden tests with. The runner decodes it with {@link RolloutTaskSpec} and builds
 * the very task the learner's process would ({@link rolloutTask}); tool calls and
 * grading then run in the runner's own sandbox pool.
 *
 * The language is not part of it: the rollout section (sent with the prompt) names the
 * policy's interpreter, and a program problem carries the language its tests run in.
 *
 * A task a runner cannot build (an unknown kind or name, or a program task without
 * limits) fails the prompt with {@link RolloutTaskError}, which names it; the learner
 * refuses such a task by the same error before it sends anything.
 *
 * @category models
 */
import { Effect, Schema } from "effect"
import type { RolloutConfig, Task, TaskProblem } from "@turnwise/dsl"
import { exactAnswerTask, programSynthesisTask } from "@turnwise/tasks"

/** Exact-answer tasks: the built-in arithmetic task and JSONL question/answer sets. */
export const exactAnswerTaskNames = ["arithmetic", "jsonl"] as const

/** Program-synthesis tasks: the built-in problems and JSONL problem sets. */
export const programTaskNames = ["program", "program-jsonl"] as const

/** An exact-answer task: graded by comparing the final answer with the problem's. */
export const ExactAnswerTaskSpec = Schema.Struct({
  kind: Schema.Literal("exact-answer"),
  name: Schema.Literals(exactAnswerTaskNames),
})

/** A program-synthesis task: graded by running the hidden tests in the sandbox with these per-cell limits. */
export const ProgramTaskSpec = Schema.Struct({
  kind: Schema.Literal("program"),
  name: Schema.Literals(programTaskNames),
  limits: Schema.Struct({ timeoutMs: Schema.Number, memoryMb: Schema.Number }),
})

/** A task a runner can build. */
export const RolloutTaskSpec = Schema.Union([ExactAnswerTaskSpec, ProgramTaskSpec])
export type RolloutTaskSpec = typeof RolloutTaskSpec.Type

/** A task that cannot be rolled out on runners; `task` names it as it was given. */
export class RolloutTaskError extends Schema.TaggedError<RolloutTaskError>()("RolloutTaskError", {
  task: Schema.String,
  problem: Schema.String,
}) {
  override get message(): string {
    return `task "${this.task}" cannot be rolled out on cluster runners: ${this.problem}`
  }
}

const knownTasks = `known: ${exactAnswerTaskNames.join(", ")} (kind exact-answer), ${programTaskNames.join(", ")} (kind program, with grading limits)`

/** The name to report for a task description that did not decode: its name, else its kind, else the text itself. */
const describedName = (raw: unknown, text: string): string => {
  if (typeof raw === "object" && raw !== null) {
    const { name, kind } = raw as { readonly name?: unknown; readonly kind?: unknown }
    if (typeof name === "string") return name
    if (typeof kind === "string") return kind
  }
  return text
}

/**
 * Decode a task description received with a prompt (JSON text).
 *
 * @example
 * yield* decodeRolloutTask('{"kind":"program","name":"program","limits":{"timeoutMs":2000,"memoryMb":64}}')
 */
export const decodeRolloutTask = (text: string): Effect.Effect<RolloutTaskSpec, RolloutTaskError> =>
  Effect.gen(function*() {
    const raw = yield* Effect.try({
      try: (): unknown => JSON.parse(text),
      catch: () => new RolloutTaskError({ task: text, problem: "the task description is not JSON" }),
    })
    return yield* Schema.decodeUnknownEffect(RolloutTaskSpec)(raw).pipe(
      Effect.mapError((issue) =>
        new RolloutTaskError({ task: describedName(raw, text), problem: `not a task a runner can build (${knownTasks}): ${issue.message}` })
      ),
    )
  })

/**
 * The description of the task named `name` (as the learner's task calls itself, or as
 * `task.kind` names it), with a program task's grading limits taken from the rollout
 * section: the program task grades with the rollout's tool-call limits.
 *
 * @example
 * yield* rolloutTaskSpec("program", recipe.rollout) // { kind: "program", name: "program", limits: { timeoutMs: 2000, memoryMb: 64 } }
 */
export const rolloutTaskSpec = (name: string, rollout: Pick<RolloutConfig, "timeoutMs" | "memoryMb">): Effect.Effect<RolloutTaskSpec, RolloutTaskError> => {
  if ((exactAnswerTaskNames as ReadonlyArray<string>).includes(name)) {
    return Effect.succeed({ kind: "exact-answer", name: name as (typeof exactAnswerTaskNames)[number] })
  }
  if ((programTaskNames as ReadonlyArray<string>).includes(name)) {
    return Effect.succeed({
      kind: "program",
      name: name as (typeof programTaskNames)[number],
      limits: { timeoutMs: rollout.timeoutMs, memoryMb: rollout.memoryMb },
    })
  }
  return Effect.fail(new RolloutTaskError({ task: name, problem: `no such task (${knownTasks})` }))
}

/**
 * A task as the learner's loop is given it: its name (`task.kind`, or the name the
 * learner's task carries) or its full description.
 */
export type ClusterTask = string | RolloutTaskSpec

/**
 * The description to send for a {@link ClusterTask}: a name is looked up with
 * {@link rolloutTaskSpec}; a description is checked as a runner will decode it, so a
 * task no runner can build is refused here, by name, before any prompt leaves.
 *
 * @example
 * yield* clusterTaskSpec("program", recipe.rollout)
 */
export const clusterTaskSpec = (task: ClusterTask, rollout: Pick<RolloutConfig, "timeoutMs" | "memoryMb">): Effect.Effect<RolloutTaskSpec, RolloutTaskError> =>
  typeof task === "string" ? rolloutTaskSpec(task, rollout) : decodeRolloutTask(JSON.stringify(task))

/**
 * The task a description stands for, as the learner's process builds it.
 *
 * @example
 * const task = rolloutTask({ kind: "exact-answer", name: "arithmetic" })
 */
export const rolloutTask = (spec: RolloutTaskSpec): Task<TaskProblem> =>
  spec.kind === "exact-answer"
    ? (exactAnswerTask(spec.name) as unknown as Task<TaskProblem>)
    : (programSynthesisTask({ name: spec.name, limits: spec.limits }) as unknown as Task<TaskProblem>)
