import { describe, expect, it } from "vitest"
import * as fs from "node:fs"
import * as path from "node:path"
import { Effect } from "effect"
import { problemsForStep } from "@turnwise/dsl"
import type { MetricsRecord } from "@turnwise/dsl"
import { exactAnswerTask, generateProblems } from "@turnwise/tasks"
import { clusterDirs, clusterTrainLoop, learnerClusterLayer, startLocalRunners } from "@turnwise/cluster"
import type { ClusterStepResult } from "@turnwise/cluster"
import { learnerRunLayer, makeLearner, modelConfig, problems, recipe, tempRunDir } from "./harness.js"

const steps = 4
const perStep = 3
const seed = 11
const maxStaleness = 1
const evalProblems = generateProblems({ seed: 6, count: 2, split: "heldout", levels: [1] })

interface AsyncRun {
  readonly runners: number
  readonly steps: number
  readonly maxStaleness: number
  readonly resume?: boolean
  readonly checkpointEvery?: number
  readonly dieAtStep?: number
}

/**
 * Train `steps` steps in asynchronous mode on local runners; each phase of `runs` is one
 * loop on the same run directory and runners (a later phase may resume from the earlier one's checkpoints).
 */
const trainAsync = async (runs: ReadonlyArray<AsyncRun>) => {
  const task = exactAnswerTask("arithmetic")
  const runDir = tempRunDir()
  const dirs = clusterDirs(runDir)
  const learner = await makeLearner()
  const records: Array<MetricsRecord> = []
  const results: Array<ClusterStepResult> = []
  const first = runs[0]!
  const exits = await Effect.runPromise(
    Effect.scoped(
      Effect.gen(function*() {
        const runners = yield* startLocalRunners(first.runners, {
          dirs,
          model: modelConfig,
          optimizer: recipe.optimizer,
          sandboxWorkers: 1,
          ...(first.dieAtStep === undefined ? {} : { dieAtStep: first.dieAtStep }),
        })
        for (const run of runs) {
          yield* clusterTrainLoop(recipe, "arithmetic", task, {
            trainProblems: problems,
            evalProblems,
            steps: run.steps,
            promptsPerStep: perStep,
            seed,
            evalEvery: 0,
            checkpointEvery: run.checkpointEvery ?? 0,
            resume: run.resume ?? false,
            model: learner.runtime.model,
            weightsDir: dirs.weightsDir,
            schedule: { mode: "async", maxStaleness: run.maxStaleness, importanceCap: 2 },
            onResult: (step, result) => {
              results[step] = result
            },
          }).pipe(Effect.provide(learnerClusterLayer(dirs)))
        }
        return runners.map((runner) => ({ port: runner.port, signal: runner.process.signalCode, code: runner.process.exitCode }))
      }).pipe(
        Effect.provide(learnerRunLayer(learner, records, runDir)),
      ),
    ),
  )
  learner.runtime.dispose()
  return { records, results, exits, dirs }
}

/** Each step's batch holds the loop's own prompts, once each, in order, with whole groups. */
const expectLoopPrompts = (results: ReadonlyArray<ClusterStepResult | undefined>, from: number, to: number) => {
  for (let step = from; step < to; step++) {
    const result = results[step]!
    const asked = problemsForStep(problems, perStep, step, seed).map((p) => p.id)
    expect(result.batch.groups.map((g) => g.promptId)).toEqual(asked)
    expect(result.batch.groups.every((g) => g.trajectories.length === recipe.rollout.groupSize)).toBe(true)
  }
}

describe("cluster: asynchronous mode", () => {
  it("two runners roll out later steps while the learner trains, every group at most maxStaleness versions behind", async () => {
    const { records, results } = await trainAsync([{ runners: 2, steps, maxStaleness }])

    const train = records.filter((r) => r.phase === "train")
    expect(train.map((r) => r.step)).toEqual([1, 2, 3, 4])
    expectLoopPrompts(results, 0, steps)
    for (let step = 0; step < steps; step++) {
      const result = results[step]!
      // The bound, from the recorded versions: no group from a future version, none more than maxStaleness behind.
      for (const version of result.versions) {
        expect(version).toBeLessThanOrEqual(step)
        expect(step - version).toBeLessThanOrEqual(maxStaleness)
      }
      // The schedule: step s was sent at step s - 1 with version s - 1 (step 0 at its own start).
      expect(result.versions).toEqual(Array(perStep).fill(Math.max(0, step - maxStaleness)))
      const metrics = train[step]!.metrics
      expect(metrics["cluster/staleness_max"]).toBe(Math.min(step, maxStaleness))
      expect(metrics["cluster/staleness_mean"]).toBe(Math.min(step, maxStaleness))
      expect(metrics["cluster/is_truncated_frac"]).toBeGreaterThanOrEqual(0)
      expect(metrics["cluster/is_truncated_frac"]).toBeLessThanOrEqual(1)
      expect(metrics["cluster/is_weight_max"]).toBeGreaterThanOrEqual(metrics["cluster/is_weight_mean"]!)
      expect(metrics["train/grad_norm"]).toBeGreaterThan(0)
    }
    // Step 0 was sampled by the weights it updates: the recomputed proximal log-probs equal the
    // recorded behaviour ones up to float rounding, so every importance weight is 1.
    expect(Math.abs(train[0]!.metrics["cluster/is_weight_mean"]! - 1)).toBeLessThan(1e-3)
    expect(Math.abs(train[0]!.metrics["cluster/is_weight_max"]! - 1)).toBeLessThan(1e-2)
    expect(train[0]!.metrics["cluster/is_truncated_frac"]).toBe(0)
  }, 240_000)

  it("a resumed run starts its schedule afresh from the restored step", async () => {
    // Two steps with a checkpoint after each, then the same loop resumed up to four steps.
    const { records, results } = await trainAsync([
      { runners: 1, steps: 2, maxStaleness: 1, checkpointEvery: 1 },
      { runners: 1, steps: 4, maxStaleness: 1, resume: true },
    ])
    expect(records.filter((r) => r.phase === "train").map((r) => r.step)).toEqual([1, 2, 3, 4])
    expectLoopPrompts(results, 0, 4)
    // Step 2 (the first after resuming) was sent at its own start with version 2; step 3 one step ahead, also with version 2.
    expect(results.map((r) => r.versions)).toEqual([[0, 0, 0], [0, 0, 0], [2, 2, 2], [2, 2, 2]])
  }, 240_000)

  it("a runner killed after the next step was sent ahead: every step still trains on each of its prompts once, within the bound", async () => {
    // The first runner to accept a prompt of step 2 dies; step 2 is sent at step 1, just before step 1's update.
    const { results, exits, dirs } = await trainAsync([{ runners: 2, steps, maxStaleness, dieAtStep: 2 }])
    const killed = exits.filter((exit) => exit.signal === "SIGKILL")
    const alive = exits.filter((exit) => exit.signal === null && exit.code === null)
    expect(killed).toHaveLength(1)
    expect(alive).toHaveLength(1)
    expectLoopPrompts(results, 0, steps)
    results.forEach((result, step) => {
      expect(result.versions).toEqual(Array(perStep).fill(Math.max(0, step - maxStaleness)))
      expect(result.metrics["train/skipped"]).toBe(0)
    })
    const claimed = JSON.parse(fs.readFileSync(path.join(dirs.storageDir, "..", "fault-claimed", "claimed.json"), "utf8")) as {
      step: number
      index: number
      port: number
    }
    expect(claimed.step).toBe(2)
    expect(claimed.port).toBe(killed[0]!.port)
    expect(results[claimed.step]!.runners[claimed.index]).toBe(`127.0.0.1:${alive[0]!.port}`)
  }, 240_000)
})
