import { describe, expect, it } from "vitest"
import { Effect } from "effect"
import type { MetricsRecord } from "@turnwise/dsl"
import { exactAnswerTask, generateProblems } from "@turnwise/tasks"
import { clusterDirs, clusterTrainLoop, learnerClusterLayer, startLocalRunners } from "@turnwise/cluster"
import { learnerRunLayer, makeLearner, modelConfig, problems, recipe, syncLoopOptions, tempRunDir, trainInProcess, withoutTimings } from "./harness.js"

const steps = 2
const perStep = 3
const seed = 11
const evalProblems = generateProblems({ seed: 6, count: 2, split: "heldout", levels: [1] })

describe("cluster: synchronous mode", () => {
  it("one runner gives the same groups and metrics as the same steps rolled out in process", async () => {
    const task = exactAnswerTask("arithmetic")

    const inProcess = await trainInProcess(await makeLearner(), task, recipe, problems, { steps, perStep, seed })

    const runDir = tempRunDir()
    const dirs = clusterDirs(runDir)
    const learner = await makeLearner()
    const records: Array<MetricsRecord> = []
    const distributed: Array<{ groups: string; versions: ReadonlyArray<number> }> = []
    await Effect.runPromise(
      Effect.scoped(
        Effect.gen(function*() {
          yield* startLocalRunners(1, { dirs, model: modelConfig, optimizer: recipe.optimizer, sandboxWorkers: 1 })
          yield* clusterTrainLoop(recipe, "arithmetic", task, syncLoopOptions(learner, dirs, problems, evalProblems, { steps, perStep, seed }, distributed))
            .pipe(Effect.provide(learnerClusterLayer(dirs)))
        }).pipe(
          Effect.provide(learnerRunLayer(learner, records, runDir)),
        ),
      ),
    )
    learner.runtime.dispose()

    const trainRecords = records.filter((r) => r.phase === "train")
    expect(trainRecords.map((r) => r.step)).toEqual([1, 2])
    expect(records.filter((r) => r.phase === "eval").map((r) => r.step)).toEqual([steps])
    for (let step = 0; step < steps; step++) {
      expect(distributed[step]!.versions).toEqual(Array(perStep).fill(step))
      expect(distributed[step]!.groups).toBe(inProcess[step]!.groups)
      const { ["cluster/runners_used"]: runnersUsed, ...metrics } = withoutTimings(trainRecords[step]!.metrics)
      expect(runnersUsed).toBe(1)
      expect(metrics).toEqual(inProcess[step]!.metrics)
    }
    // The first update had a gradient, so the second step sampled from moved weights (version 1 on the runner).
    expect(inProcess[0]!.metrics["train/grad_norm"]).toBeGreaterThan(0)
  }, 180_000)
})
