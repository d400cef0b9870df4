/**
 * The program-synthesis task on runners: the runner rebuilds the task from the
 * description each prompt carries (kind, name, grading limits), runs tool calls and
 * grading in its own sandbox pool, and a step gives what the same step gives in
 * process. Tasks a runner cannot build are refused by name, on the learner and on
 * the runner.
 */
import { describe, expect, it } from "vitest"
import { Effect, Exit } from "effect"
import type { MetricsRecord } from "@turnwise/dsl"
import { WorkerSandbox } from "@turnwise/sandbox"
import { generateCodeProblems, gradeSubmission, programSynthesisTask } from "@turnwise/tasks"
import type { Group } from "@turnwise/core"
import {
  clusterDirs,
  clusterRollout,
  clusterTaskSpec,
  clusterTrainLoop,
  learnerClusterLayer,
  RolloutTaskError,
  RolloutWorker,
  startLocalRunners,
} from "@turnwise/cluster"
import {
  codeProblems,
  learnerRunLayer,
  makeProgramLearner,
  programLimits,
  programModelConfig,
  programRecipe,
  syncLoopOptions,
  tempRunDir,
  trainInProcess,
  withoutTimings,
} from "./harness.js"

const steps = 2
const perStep = 2
const seed = 11
const evalProblems = generateCodeProblems({ seed: 6, count: 1, split: "heldout", levels: [1] })

// Grading limits other than the rollout's tool-call limits (64 MB), and a hidden test
// whose array takes 16 MB, twice what they allow (QuickJS's own allocation limit refuses
// it whatever the worker's history; close to the limit the outcome would depend on how
// far the worker's heap had already grown): a runner that graded with anything but the
// limits it was sent would score these problems differently.
const gradingLimits = { timeoutMs: programLimits.timeoutMs, memoryMb: 8 }
const hungryTest = "const held = new Array(2_000_000).fill(7); assert(held.length === 2_000_000)"
const problems = codeProblems.map((problem) => ({ ...problem, tests: [...problem.tests, hungryTest] }))

const refusal = <A, E>(exit: Exit.Exit<A, E>): unknown => (Exit.isFailure(exit) ? exit.cause.reasons.map((r) => (r._tag === "Fail" ? r.error : r)) : exit.value)

describe("cluster: the program-synthesis task", () => {
  it("one runner gives the same groups and metrics as the same steps in process, and refuses an unknown task by name", async () => {
    const task = programSynthesisTask({ limits: gradingLimits })
    const inProcess = await trainInProcess(await makeProgramLearner(), task, programRecipe, problems, { steps, perStep, seed })

    const runDir = tempRunDir()
    const dirs = clusterDirs(runDir)
    const learner = await makeProgramLearner()
    const records: Array<MetricsRecord> = []
    const distributed: Array<{ groups: string; versions: ReadonlyArray<number> }> = []
    let refusedByRunner: unknown
    await Effect.runPromise(
      Effect.scoped(
        Effect.gen(function*() {
          yield* startLocalRunners(1, { dirs, model: programModelConfig, optimizer: programRecipe.optimizer, sandboxWorkers: 1 })
          yield* clusterTrainLoop(
            programRecipe,
            { kind: "program", name: "program", limits: gradingLimits },
            task,
            syncLoopOptions(learner, dirs, problems, evalProblems, { steps, perStep, seed }, distributed),
          )
          // A description the runner cannot build, sent past the learner's own check.
          const client = yield* RolloutWorker.client
          refusedByRunner = refusal(
            yield* Effect.exit(
              client("s9-p0").RolloutPrompt({
                step: 9,
                index: 0,
                seed: 1,
                version: 0,
                task: JSON.stringify({ kind: "proof-search", name: "lean-proofs" }),
                problem: JSON.stringify(codeProblems[0]),
                rollout: JSON.stringify(programRecipe.rollout),
              }),
            ),
          )
        }).pipe(Effect.provide(learnerClusterLayer(dirs))),
      ).pipe(
        Effect.provide(learnerRunLayer(learner, records, runDir)),
      ),
    )
    learner.runtime.dispose()

    const trainRecords = records.filter((r) => r.phase === "train")
    expect(trainRecords.map((r) => r.step)).toEqual([1, 2])
    for (let step = 0; step < steps; step++) {
      expect(distributed[step]!.versions).toEqual(Array(perStep).fill(step))
      expect(distributed[step]!.groups).toBe(inProcess[step]!.groups)
      const { ["cluster/runners_used"]: runnersUsed, ...metrics } = withoutTimings(trainRecords[step]!.metrics)
      expect(runnersUsed).toBe(1)
      expect(metrics).toEqual(inProcess[step]!.metrics)
    }
    // The warm start called the tool and some submissions passed hidden tests, the memory-hungry one never
    // (its array alone takes 16 MB of the 8 MB sent): the runner's sandbox ran tool calls and grading with the limits sent.
    const trajectories = distributed.flatMap((d) => (JSON.parse(d.groups) as Array<Group>).flatMap((g) => g.trajectories))
    expect(trajectories.some((t) => t.turns.some((turn) => turn.toolCall !== null && turn.toolStatus === "ok" && turn.feedbackText !== ""))).toBe(true)
    expect(trajectories.some((t) => t.outcome.score > 0)).toBe(true)
    expect(trajectories.filter((t) => t.outcome.correct)).toEqual([])
    expect(inProcess[0]!.metrics["train/grad_norm"]).toBeGreaterThan(0)

    // The runner's typed refusal crossed the wire as itself (not a defect, not a transport failure).
    const [refused, ...more] = refusedByRunner as Array<RolloutTaskError>
    expect(more).toEqual([])
    expect(refused).toBeInstanceOf(RolloutTaskError)
    expect(refused!.task).toBe("lean-proofs")
    expect(refused!.message).toMatch(/^task "lean-proofs" cannot be rolled out on cluster runners: not a task a runner can build \(known: arithmetic, jsonl/)
  }, 240_000)

  it("the memory-hungry hidden test passes under the rollout's 64 MB and fails under the 8 MB grading limit", async () => {
    const [problem] = problems
    const grade = (memoryMb: number) =>
      Effect.runPromise(gradeSubmission(problem!, problem!.reference!, { ...gradingLimits, memoryMb }).pipe(Effect.provide(WorkerSandbox.layer({ size: 1 }))))
    expect(programRecipe.rollout.memoryMb).toBe(64)
    expect(await grade(64)).toEqual({ correct: true, score: 1 })
    expect(await grade(gradingLimits.memoryMb)).toEqual({ correct: false, score: 5 / 6 })
  }, 60_000)

  it("refuses a task no runner can build on the learner, by name, before sending; by name a program task takes the rollout's limits", async () => {
    // No runner is started: the refusal must come before any prompt is sent.
    const unknown = await Effect.runPromiseExit(
      clusterRollout("lean-proofs", codeProblems.slice(0, 1), programRecipe.rollout, { step: 0, seed: 1, version: 0 }).pipe(
        Effect.provide(learnerClusterLayer(clusterDirs(tempRunDir()))),
      ),
    )
    const [error] = refusal(unknown) as Array<RolloutTaskError>
    expect(error).toBeInstanceOf(RolloutTaskError)
    expect(error!.task).toBe("lean-proofs")
    expect(error!.message).toContain(`task "lean-proofs" cannot be rolled out on cluster runners: no such task`)

    // A program task's description without its grading limits is refused too.
    const noLimits = await Effect.runPromiseExit(clusterTaskSpec({ kind: "program", name: "program" } as never, programRecipe.rollout))
    expect((refusal(noLimits) as Array<RolloutTaskError>)[0]!.task).toBe("program")

    // By name, a program task takes the rollout's limits; exact-answer tasks need none.
    expect(await Effect.runPromise(clusterTaskSpec("program", { timeoutMs: 1234, memoryMb: 32 }))).toEqual({
      kind: "program",
      name: "program",
      limits: { timeoutMs: 1234, memoryMb: 32 },
    })
    expect(await Effect.runPromise(clusterTaskSpec("arithmetic", programRecipe.rollout))).toEqual({ kind: "exact-answer", name: "arithmetic" })
  }, 60_000)
})
