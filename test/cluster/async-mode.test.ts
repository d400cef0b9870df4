import { describe, expect, it } from "vitest"
import * as path from "node:path"
import { Effect, Layer } from "effect"
import { MetricsSink, problemsForStep } from "@turnwise/dsl"
import type { MetricsRecord } from "@turnwise/dsl"
import { SafetensorsCheckpoints } from "@turnwise/runtime"
import { exactAnswerTask, generateProblems } from "@turnwise/tasks"
import { clusterDirs, clusterTrainLoop, learnerClusterLayer, startLocalRunners } from "@turnwise/cluster"
import type { ClusterStepResult } from "@turnwise/cluster"
import { makeLearner, modelConfig, problems, recipe, tempRunDir } from "./harness.js"

const steps = 4
const perStep = 3
const seed = 11
const maxStaleness = 1
const evalProblems = generateProblems({ seed: 6, count: 2, split: "heldout", levels: [1] })

describe("cluster: asynchronous mode", () => {
  it("two runners roll out later steps while the learner trains, every group at most maxStaleness versions behind", async () => {
    const task = exactAnswerTask("arithmetic")
    const runDir = tempRunDir()
    const dirs = clusterDirs(runDir)
    const learner = await makeLearner()
    const records: Array<MetricsRecord> = []
    const results: Array<ClusterStepResult> = []
    await Effect.runPromise(
      Effect.scoped(
        Effect.gen(function*() {
          yield* startLocalRunners(2, { dirs, model: modelConfig, optimizer: recipe.optimizer, sandboxWorkers: 1 })
          yield* clusterTrainLoop(recipe, "arithmetic", task, {
            trainProblems: problems,
            evalProblems,
            steps,
            promptsPerStep: perStep,
            seed,
            evalEvery: 0,
            checkpointEvery: 0,
            resume: false,
            model: learner.runtime.model,
            weightsDir: dirs.weightsDir,
            schedule: { mode: "async", maxStaleness, importanceCap: 2 },
            onResult: (step, result) => {
              results[step] = result
            },
          }).pipe(Effect.provide(learnerClusterLayer(dirs)))
        }).pipe(
          Effect.provide(
            Layer.mergeAll(
              learner.layer,
              MetricsSink.memory(records),
              SafetensorsCheckpoints.layer(learner.runtime, path.join(runDir, "checkpoints"), { test: true }),
            ),
          ),
        ),
      ),
    )
    learner.runtime.dispose()

    const train = records.filter((r) => r.phase === "train")
    expect(train.map((r) => r.step)).toEqual([1, 2, 3, 4])
    for (let step = 0; step < steps; step++) {
      const result = results[step]!
      // The loop's own prompts, each group once, in prompt order.
      const asked = problemsForStep(problems, perStep, step, seed).map((p) => p.id)
      expect(result.batch.groups.map((g) => g.promptId)).toEqual(asked)
      expect(result.batch.groups.every((g) => g.trajectories.length === recipe.rollout.groupSize)).toBe(true)
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
    expect(new Set(results.flatMap((r) => r.runners)).size).toBeGreaterThanOrEqual(1)
  }, 240_000)
})
