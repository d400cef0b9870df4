import { describe, expect, it } from "vitest"
import { Effect } from "effect"
import { trainOnBatch } from "@turnwise/dsl"
import { exactAnswerTask } from "@turnwise/tasks"
import { clusterDirs, clusterTrainStep, learnerClusterLayer, promptSeededRollout, startLocalRunners } from "@turnwise/cluster"
import { makeLearner, modelConfig, problemsOfStep, recipe, stepSeed, tempRunDir, withoutTimings } from "./harness.js"

const steps = 2
const perStep = 3

describe("cluster: synchronous mode", () => {
  it("one runner gives the same groups and metrics as the same steps rolled out in process", async () => {
    const task = exactAnswerTask("arithmetic")

    const local = await makeLearner()
    const inProcess: Array<{ metrics: Record<string, number>; groups: string }> = []
    await Effect.runPromise(
      Effect.gen(function* () {
        for (let step = 0; step < steps; step++) {
          const batch = yield* promptSeededRollout(task, problemsOfStep(step, perStep), recipe.rollout, { step, seed: stepSeed(step) })
          const result = yield* trainOnBatch(recipe, batch)
          inProcess.push({ metrics: withoutTimings(result.metrics), groups: JSON.stringify(batch.groups) })
        }
      }).pipe(Effect.provide(local.layer)),
    )
    local.runtime.dispose()

    const runDir = tempRunDir()
    const dirs = clusterDirs(runDir)
    const learner = await makeLearner()
    const distributed: Array<{ metrics: Record<string, number>; groups: string; versions: ReadonlyArray<number> }> = []
    await Effect.runPromise(
      Effect.scoped(
        Effect.gen(function* () {
          yield* startLocalRunners(1, { dirs, model: modelConfig, optimizer: recipe.optimizer, sandboxWorkers: 1 })
          yield* Effect.gen(function* () {
            for (let step = 0; step < steps; step++) {
              const result = yield* clusterTrainStep(recipe, "arithmetic", problemsOfStep(step, perStep), {
                step,
                seed: stepSeed(step),
                model: learner.runtime.model,
                weightsDir: dirs.weightsDir,
              })
              distributed.push({ metrics: withoutTimings(result.metrics), groups: JSON.stringify(result.batch.groups), versions: result.versions })
            }
          }).pipe(Effect.provide(learnerClusterLayer(dirs)))
        }).pipe(Effect.provide(learner.layer)),
      ),
    )
    learner.runtime.dispose()

    for (let step = 0; step < steps; step++) {
      expect(distributed[step]!.versions).toEqual(Array(perStep).fill(step))
      expect(distributed[step]!.groups).toBe(inProcess[step]!.groups)
      expect(distributed[step]!.metrics).toEqual(inProcess[step]!.metrics)
    }
    // The first update had a gradient, so the second step sampled from moved weights (version 1 on the runner).
    expect(inProcess[0]!.metrics["train/grad_norm"]).toBeGreaterThan(0)
  }, 180_000)
})
