/**
 * A tiny learner for cluster tests: the tiny model preset, a short rollout, and the
 * same services the in-process run uses; and a small one for the program-synthesis
 * task (the shipped program warm start, which writes code, calls the tool and
 * submits, so tool calls and grading really run).
 */
import { spawn } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { Effect, Layer } from "effect"
import { MetricsSink, problemsForStep, trainOnBatch } from "@turnwise/dsl"
import type { LoopOptions, MetricsRecord, RecipeType } from "@turnwise/dsl"
import { clusterTrainStep, promptSeededRollout } from "@turnwise/cluster"
import type { ClusterDirs, ClusterStepResult } from "@turnwise/cluster"
import type { Task, TaskProblem } from "@turnwise/dsl"
import {
  byteTokenizer,
  createTransformer,
  FileCheckpointStore,
  makePolicyRuntime,
  presets,
  SafetensorsCheckpoints,
  setBackend,
  TfjsPolicy,
  TfjsTokenizer,
} from "@turnwise/runtime"
import type { PolicyRuntime, Transformer } from "@turnwise/runtime"
import { WorkerSandbox } from "@turnwise/sandbox"
import { generateCodeProblems, generateProblems } from "@turnwise/tasks"
import { Schema } from "effect"
import { perTrajectory } from "@turnwise/core"
import type { RewardAssigner } from "@turnwise/core"
import { use } from "@turnwise/dsl"
import grpo from "../../recipes/grpo.js"

export const modelConfig = { ...presets.tiny, nLayers: 2, seed: 3 }

/**
 * A reward a random tiny model earns unevenly (how many of its sampled token ids are even), so
 * advantages are not all zero and every update moves the weights.
 */
export const evenTokensReward: RewardAssigner<"trajectory", {}> = {
  name: "test-even-tokens",
  summary: "even sampled token ids / 10",
  level: "trajectory",
  options: Schema.Struct({}),
  defaults: {},
  run: ({ batch }) =>
    perTrajectory(
      "reward",
      batch.groups.map((g) => g.trajectories.map((t) => t.turns.reduce((n, turn) => n + turn.policyTokens.filter((id) => id % 2 === 0).length, 0) / 10)),
    ),
}

export const recipe: RecipeType = {
  ...grpo,
  reward: use(evenTokensReward),
  rollout: { ...grpo.rollout, groupSize: 2, maxTurns: 2, maxNewTokensPerTurn: 12, maxTokens: 48, temperature: 1 },
}

export const problems = generateProblems({ seed: 5, count: 12, split: "train", levels: [1] })

/** The prompts of a step (a fixed slice; the order does not matter to the cluster). */
export const problemsOfStep = (step: number, perStep: number) => problems.slice((step * perStep) % problems.length).concat(problems).slice(0, perStep)

export const stepSeed = (step: number) => 11 * 1_000_003 + step

export const tempRunDir = (): string => fs.mkdtempSync(path.join(os.tmpdir(), "turnwise-cluster-"))

/** A fresh learner: the same initial weights every time. */
export const makeLearner = async () => {
  await setBackend("wasm")
  const runtime = makePolicyRuntime(createTransformer(modelConfig), byteTokenizer, recipe.optimizer, { seed: 1, totalSteps: 4 })
  return { runtime, layer: learnerLayer(runtime) }
}

/** The model of the shipped program warm start (compact preset). */
export const programModelConfig = { ...presets.compact, seed: 0 }

const programWarmStart = path.join(import.meta.dirname, "..", "..", "assets", "warm-start-program")

/** The program task's rollout (the task's minimums: 256 tokens, 112 per turn, 3 turns) with two-trajectory groups. */
export const programRecipe: RecipeType = {
  ...grpo,
  reward: use(evenTokensReward),
  rollout: { ...grpo.rollout, groupSize: 2, maxTurns: 3, maxNewTokensPerTurn: 112, maxTokens: 256, temperature: 1, language: "js" },
  optimizer: { ...grpo.optimizer, microBatchSize: Math.min(grpo.optimizer.microBatchSize, 8) },
}

/** The grading limits the program task uses in process: the rollout's tool-call limits. */
export const programLimits = { timeoutMs: programRecipe.rollout.timeoutMs, memoryMb: programRecipe.rollout.memoryMb }

export const codeProblems = generateCodeProblems({ seed: 5, count: 12, split: "train", levels: [1] })

/** The program warm start's model (compact preset, its shipped weights). */
export const programWarmStartModel = async (): Promise<Transformer> => {
  const model = createTransformer(programModelConfig)
  const store = new FileCheckpointStore(programWarmStart)
  await store.restore({ variables: model.variables }, (await store.latest()) ?? programWarmStart)
  return model
}

/** A fresh learner on the program warm start: the same initial weights every time. */
export const makeProgramLearner = async (options: { readonly totalSteps?: number; readonly recipe?: RecipeType } = {}) => {
  await setBackend("wasm")
  const model = await programWarmStartModel()
  const runtime = makePolicyRuntime(model, byteTokenizer, (options.recipe ?? programRecipe).optimizer, { seed: 1, totalSteps: options.totalSteps ?? 4 })
  return { runtime, layer: learnerLayer(runtime) }
}

const learnerLayer = (runtime: PolicyRuntime) => Layer.mergeAll(TfjsPolicy.layer(runtime), TfjsTokenizer.layer(byteTokenizer), WorkerSandbox.layer({ size: 1 }))

/** Metrics without wall-clock timings (they differ between any two runs). */
export const withoutTimings = (metrics: Readonly<Record<string, number>>): Record<string, number> =>
  Object.fromEntries(Object.entries(metrics).filter(([key]) => !key.startsWith("time/") && !key.includes("per_s") && !key.includes("seconds")))

/** A learner made by {@link makeLearner} or {@link makeProgramLearner}. */
export type Learner = Awaited<ReturnType<typeof makeLearner>>

/**
 * The cluster loop's steps run in process, as the reference a cluster run must match:
 * its data order and step seeds, each prompt rolled out with its identity seed, then one
 * update. Returns per step the metrics (without timings) and the groups as JSON, and
 * disposes of the learner's runtime.
 */
export const trainInProcess = async <P extends TaskProblem>(
  learner: Learner,
  task: Task<P>,
  stepRecipe: RecipeType,
  trainProblems: ReadonlyArray<P>,
  options: { readonly steps: number; readonly perStep: number; readonly seed: number },
): Promise<Array<{ readonly metrics: Record<string, number>; readonly groups: string }>> => {
  const out: Array<{ metrics: Record<string, number>; groups: string }> = []
  await Effect.runPromise(
    Effect.gen(function*() {
      for (let step = 0; step < options.steps; step++) {
        const batch = yield* promptSeededRollout(task, problemsForStep(trainProblems, options.perStep, step, options.seed), stepRecipe.rollout, {
          step,
          seed: options.seed * 1_000_003 + step,
        })
        const result = yield* trainOnBatch(stepRecipe, batch)
        out.push({ metrics: withoutTimings(result.metrics), groups: JSON.stringify(batch.groups) })
      }
    }).pipe(Effect.provide(learner.layer)),
  )
  learner.runtime.dispose()
  return out
}

/** What a cluster run's learner needs besides the cluster: its policy services, a metrics sink into `records`, checkpoints under `runDir`. */
export const learnerRunLayer = (learner: Learner, records: Array<MetricsRecord>, runDir: string) =>
  Layer.mergeAll(learner.layer, MetricsSink.memory(records), SafetensorsCheckpoints.layer(learner.runtime, path.join(runDir, "checkpoints"), { test: true }))

/**
 * Options of a synchronous cluster loop that matches {@link trainInProcess}: no
 * evaluation, no checkpoints, each step's groups (as JSON) and policy versions pushed to
 * `distributed`.
 */
export const syncLoopOptions = <P extends TaskProblem>(
  learner: Learner,
  dirs: ClusterDirs,
  trainProblems: ReadonlyArray<P>,
  evalProblems: ReadonlyArray<P>,
  options: { readonly steps: number; readonly perStep: number; readonly seed: number },
  distributed: Array<{ groups: string; versions: ReadonlyArray<number> }>,
): LoopOptions<P> & { readonly model: Transformer; readonly weightsDir: string; readonly onResult: (step: number, result: ClusterStepResult) => void } => ({
  trainProblems,
  evalProblems,
  steps: options.steps,
  promptsPerStep: options.perStep,
  seed: options.seed,
  evalEvery: 0,
  checkpointEvery: 0,
  resume: false,
  model: learner.runtime.model,
  weightsDir: dirs.weightsDir,
  onResult: (_, result) => distributed.push({ groups: JSON.stringify(result.batch.groups), versions: result.versions }),
})

/**
 * `steps` synchronous cluster steps of `recipe` on the arithmetic prompts of
 * {@link problemsOfStep}, each result pushed to `results`.
 */
export const clusterSteps = (learner: Learner, weightsDir: string, steps: number, perStep: number, results: Array<ClusterStepResult>) =>
  Effect.gen(function*() {
    for (let step = 0; step < steps; step++) {
      results.push(
        yield* clusterTrainStep(recipe, "arithmetic", problemsOfStep(step, perStep), { step, seed: stepSeed(step), model: learner.runtime.model, weightsDir }),
      )
    }
  })

const repository = path.join(import.meta.dirname, "..", "..")

/**
 * A runner process started as on another machine: in an empty directory of its own,
 * told only the coordinator's address. `turnwise runner --join` (the command a user
 * runs), or with `fault` the runner process of the package with its fault injection.
 * Collects its output lines.
 */
export const startJoinedRunner = (
  join: string,
  fault?: { readonly port: number; readonly dieAtStep: number; readonly dieMarker: string },
) => {
  const cwd = fs.mkdtempSync(path.join(os.tmpdir(), "turnwise-joined-runner-"))
  const tsx = path.join(repository, "node_modules", "tsx", "dist", "loader.mjs")
  const child = fault === undefined
    ? spawn(process.execPath, [
      "--import",
      tsx,
      path.join(repository, "packages", "cli", "src", "bin.ts"),
      "runner",
      "--join",
      join,
      "--host",
      "127.0.0.1",
      "--listen-host",
      "127.0.0.1",
    ], { cwd, stdio: ["ignore", "pipe", "pipe"] })
    : spawn(process.execPath, ["--import", tsx, path.join(repository, "packages", "cluster", "src", "runner-main.ts")], {
      cwd,
      env: { ...process.env, TURNWISE_RUNNER_SPEC: JSON.stringify({ join, ...fault }) },
      stdio: ["ignore", "pipe", "pipe"],
    })
  const lines: Array<string> = []
  const collect = (chunk: Buffer) => lines.push(...chunk.toString().split("\n").filter((line) => line.trim() !== ""))
  child.stdout.on("data", collect)
  child.stderr.on("data", collect)
  const exited = new Promise<NodeJS.Signals | number | null>((resolve) => child.once("exit", (code, signal) => resolve(signal ?? code)))
  return { cwd, child, lines, exited }
}
