/**
 * Runners that join from "another machine": processes started with the command a user
 * runs there (`turnwise runner --join HOST:PORT`), in a directory of their own, told
 * nothing but the coordinator's address. They must get the model, the runner storage
 * and every policy version through the coordinator, and give the same groups and
 * metrics as the same steps in process.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { describe, expect, it } from "vitest"
import { Effect } from "effect"
import type { MetricsRecord } from "@turnwise/dsl"
import { exactAnswerTask, generateProblems } from "@turnwise/tasks"
import { clusterDirs, clusterTrainLoop, Coordinator, freePort, learnerCoordinatorLayer, lockExpirationMs, parseHostPort } from "@turnwise/cluster"
import type { ClusterStepResult } from "@turnwise/cluster"
import {
  clusterSteps,
  learnerRunLayer,
  makeLearner,
  modelConfig,
  problems,
  problemsOfStep,
  recipe,
  startJoinedRunner,
  syncLoopOptions,
  tempRunDir,
  trainInProcess,
  withoutTimings,
} from "./harness.js"

const steps = 2
const perStep = 4
const seed = 11
const evalProblems = generateProblems({ seed: 6, count: 2, split: "heldout", levels: [1] })

const coordinatorLayer = (weightsDir: string) =>
  learnerCoordinatorLayer({
    listen: parseHostPort("127.0.0.1:0", "test"),
    weightsDir,
    settings: { model: modelConfig, optimizer: recipe.optimizer, sandboxWorkers: 1 },
    lockExpirationMs,
  })

describe("cluster: runners joined through the coordinator", () => {
  it("two `turnwise runner --join` processes give the same groups and metrics as the same steps in process, then leave with the run", async () => {
    const task = exactAnswerTask("arithmetic")
    const inProcess = await trainInProcess(await makeLearner(), task, recipe, problems, { steps, perStep, seed })

    const runDir = tempRunDir()
    const dirs = clusterDirs(runDir)
    const learner = await makeLearner()
    const records: Array<MetricsRecord> = []
    const distributed: Array<{ groups: string; versions: ReadonlyArray<number> }> = []
    const runners: Array<ReturnType<typeof startJoinedRunner>> = []
    const runnersUsed: Array<ReadonlyArray<string>> = []
    try {
      await Effect.runPromise(
        Effect.gen(function*() {
          const coordinator = yield* Coordinator
          const join = `127.0.0.1:${coordinator.address.port}`
          runners.push(startJoinedRunner(join), startJoinedRunner(join))
          const joined = yield* coordinator.awaitRunners(2, 120)
          expect(joined).toHaveLength(2)
          yield* clusterTrainLoop(recipe, "arithmetic", task, {
            ...syncLoopOptions(learner, dirs, problems, evalProblems, { steps, perStep, seed }, distributed),
            onResult: (_, result) => {
              distributed.push({ groups: JSON.stringify(result.batch.groups), versions: result.versions })
              runnersUsed.push(result.runners)
            },
          })
        }).pipe(
          Effect.provide(coordinatorLayer(dirs.weightsDir)),
          Effect.provide(learnerRunLayer(learner, records, runDir)),
        ),
      )
      // The coordinator closed with the run: each runner notices, leaves and exits by itself.
      const codes = await Promise.all(runners.map((runner) => runner.exited))
      expect(codes).toEqual([0, 0])
      for (const runner of runners) {
        expect(runner.lines.some((line) => line.includes("joined the coordinator at"))).toBe(true)
        expect(runner.lines.some((line) => line.includes("stopped answering") && line.includes("left the cluster"))).toBe(true)
      }
    } finally {
      for (const runner of runners) if (runner.child.exitCode === null && runner.child.signalCode === null) runner.child.kill("SIGKILL")
      learner.runtime.dispose()
    }

    const trainRecords = records.filter((r) => r.phase === "train")
    expect(trainRecords.map((r) => r.step)).toEqual([1, 2])
    for (let step = 0; step < steps; step++) {
      expect(distributed[step]!.versions).toEqual(Array(perStep).fill(step))
      expect(distributed[step]!.groups).toBe(inProcess[step]!.groups)
      const { ["cluster/runners_used"]: _used, ...metrics } = withoutTimings(trainRecords[step]!.metrics)
      expect(metrics).toEqual(inProcess[step]!.metrics)
    }
    // Every group came from a joined runner, by the address it advertised.
    const advertised = new Set(runnersUsed.flat())
    expect([...advertised].every((address) => /^127\.0\.0\.1:\d+$/.test(address))).toBe(true)
    // Nothing went through files: no runner storage in the run directory, nothing written where the runners ran.
    expect(fs.existsSync(dirs.storageDir)).toBe(false)
    for (const runner of runners) expect(fs.readdirSync(runner.cwd)).toEqual([])
    // The second step sampled from moved weights, which the runners could only have fetched from the coordinator.
    expect(inProcess[0]!.metrics["train/grad_norm"]).toBeGreaterThan(0)
  }, 240_000)

  it("a joined runner killed with SIGKILL in the middle of a step: the step completes on the other, every group exactly once", async () => {
    const steps = 3
    const faultStep = 1
    const dirs = clusterDirs(tempRunDir())
    const marker = path.join(tempRunDir(), "fault-claimed")
    const learner = await makeLearner()
    const results: Array<ClusterStepResult> = []
    const children: Array<ReturnType<typeof startJoinedRunner> & { readonly port: number }> = []
    try {
      await Effect.runPromise(
        Effect.gen(function*() {
          const coordinator = yield* Coordinator
          for (let k = 0; k < 2; k++) {
            // A runner advertises its address before it binds, so it is given a free port.
            const port = yield* Effect.promise(() => freePort())
            children.push({ port, ...startJoinedRunner(`127.0.0.1:${coordinator.address.port}`, { port, dieAtStep: faultStep, dieMarker: marker }) })
          }
          yield* coordinator.awaitRunners(2, 120)
          yield* clusterSteps(learner, dirs.weightsDir, steps, perStep, results)
        }).pipe(Effect.provide(coordinatorLayer(dirs.weightsDir)), Effect.provide(learner.layer)),
      )
      const exits = await Promise.all(children.map((c) => c.exited))
      expect(exits.filter((exit) => exit === "SIGKILL")).toHaveLength(1)
      // The survivor left by itself once the coordinator closed.
      expect(exits.filter((exit) => exit === 0)).toHaveLength(1)
    } finally {
      for (const c of children) if (c.child.exitCode === null && c.child.signalCode === null) c.child.kill("SIGKILL")
      learner.runtime.dispose()
    }
    results.forEach((result, step) => {
      const expected = problemsOfStep(step, perStep).map((problem) => `s${step}-${problem.id}`)
      expect(result.batch.groups.map((group) => group.groupId)).toEqual(expected)
      for (const group of result.batch.groups) expect(group.trajectories).toHaveLength(recipe.rollout.groupSize)
      expect(result.versions).toEqual(Array(perStep).fill(step))
    })
    const claimed = JSON.parse(fs.readFileSync(path.join(marker, "claimed.json"), "utf8")) as { step: number; index: number; port: number }
    const survivor = children.find((c) => c.port !== claimed.port)!
    expect(results[claimed.step]!.runners[claimed.index]).toBe(`127.0.0.1:${survivor.port}`)
    for (const result of results.slice(faultStep + 1)) expect(new Set(result.runners)).toEqual(new Set([`127.0.0.1:${survivor.port}`]))
  }, 240_000)
})
