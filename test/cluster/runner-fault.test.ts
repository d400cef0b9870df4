import * as fs from "node:fs"
import * as path from "node:path"
import { describe, expect, it } from "vitest"
import { Effect } from "effect"
import { clusterDirs, learnerClusterLayer, startLocalRunners } from "@turnwise/cluster"
import type { ClusterStepResult } from "@turnwise/cluster"
import { clusterSteps, makeLearner, modelConfig, problemsOfStep, recipe, tempRunDir } from "./harness.js"

const steps = 3
const perStep = 4
const faultStep = 1

describe("cluster: a runner killed in the middle of a step", () => {
  it("the step completes on the other runner with every prompt's group present exactly once", async () => {
    const dirs = clusterDirs(tempRunDir())
    const learner = await makeLearner()
    const results: Array<ClusterStepResult> = []
    const exits = await Effect.runPromise(
      Effect.scoped(
        Effect.gen(function*() {
          const runners = yield* startLocalRunners(2, { dirs, model: modelConfig, optimizer: recipe.optimizer, sandboxWorkers: 1, dieAtStep: faultStep })
          yield* clusterSteps(learner, dirs.weightsDir, steps, perStep, results).pipe(Effect.provide(learnerClusterLayer(dirs)))
          // Read before the scope stops the runners: which one died, and how.
          return runners.map((runner) => ({ port: runner.port, signal: runner.process.signalCode, code: runner.process.exitCode }))
        }).pipe(Effect.provide(learner.layer)),
      ),
    )
    learner.runtime.dispose()

    const killed = exits.filter((exit) => exit.signal === "SIGKILL")
    const alive = exits.filter((exit) => exit.signal === null && exit.code === null)
    expect(killed).toHaveLength(1)
    expect(alive).toHaveLength(1)

    results.forEach((result, step) => {
      const expected = problemsOfStep(step, perStep).map((problem) => `s${step}-${problem.id}`)
      expect(result.batch.groups.map((group) => group.groupId)).toEqual(expected)
      expect(new Set(result.batch.groups.map((group) => group.groupId)).size).toBe(perStep)
      for (const group of result.batch.groups) expect(group.trajectories).toHaveLength(recipe.rollout.groupSize)
      expect(result.versions).toEqual(Array(perStep).fill(step))
      expect(result.metrics["train/skipped"]).toBe(0)
    })
    // The killed runner had accepted a prompt of the fault step and died with it; that prompt's group came from the other runner.
    const claimed = JSON.parse(fs.readFileSync(path.join(dirs.storageDir, "..", "fault-claimed", "claimed.json"), "utf8")) as {
      step: number
      index: number
      port: number
    }
    expect(claimed.port).toBe(killed[0]!.port)
    expect(results[claimed.step]!.runners[claimed.index]).toBe(`127.0.0.1:${alive[0]!.port}`)
    // After the fault every group comes from the runner that is still alive.
    for (const result of results.slice(faultStep + 1)) expect(new Set(result.runners)).toEqual(new Set([`127.0.0.1:${alive[0]!.port}`]))
  }, 180_000)
})
