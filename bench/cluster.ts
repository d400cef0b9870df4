/**
 * Step time of training with rollouts in process, on 2 runner processes in
 * synchronous mode, and on 2 runner processes in asynchronous mode (later steps
 * rolled out while the learner trains), measured one after the other in this one
 * process with the same model, recipe, data and initial weights; plus the observed
 * staleness and importance weights of the asynchronous run.
 *
 * The step time is the mean of `time/step_s` over the steps after the first (the first
 * includes the runners' first version load, and in asynchronous mode a rollout nothing
 * overlapped). Ratios are against the in-process run of the same invocation, so they
 * compare like with like on a machine whose load changes.
 *
 * The reward counts even sampled token ids, so a randomly initialised model earns
 * uneven rewards and every step trains (an exact-answer reward would give a fresh
 * model all-zero advantages and no update to overlap with).
 *
 * `--task program` runs the program-synthesis task instead of arithmetic: the shipped
 * program warm start (compact preset) writes code, runs it in the sandbox and submits,
 * and every submission is graded by running its hidden tests in the sandbox, so a
 * rollout's time is sampling plus tool calls plus grading. The rollout then has the
 * task's minimums (256 tokens, 112 per turn, 3 turns; `--preset`, `--layers` and
 * `--tokens` do not apply), and the runners are told the task by name as the command
 * line does (grading with the rollout's tool-call limits).
 *
 * Each mode's line splits the step time into rollout (sampling + sandbox; in
 * asynchronous mode the learner's wait for the groups) and learner time (the update),
 * with the runners' own per-prompt rollout time and the weight-publish time; the last
 * line holds the ratios and the constants of the scaling estimate in docs/CLUSTER.md.
 *
 * Usage: npx tsx bench/cluster.ts [--task arithmetic|program] [--preset tiny|compact] [--layers 2] [--steps 6]
 *        [--prompts 4] [--group 4] [--tokens 24] [--staleness 1] [--lr <AdamW peak lr; default the recipe's>]
 *        [--modes sync-in-process,sync-2-runners,async-2-runners]
 * Prints one JSON line per mode, then one with the ratios (against the first mode run).
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { parseArgs } from "node:util"
import { Effect, Layer } from "effect"
import { MetricsSink, trainLoop, use } from "@turnwise/dsl"
import type { LoopOptions, MetricsRecord, RecipeType, RunError, RunServices, Task, TaskProblem } from "@turnwise/dsl"
import { byteTokenizer, createTransformer, makePolicyRuntime, presets, SafetensorsCheckpoints, setBackend, TfjsPolicy, TfjsTokenizer } from "@turnwise/runtime"
import type { PolicyRuntime, Transformer } from "@turnwise/runtime"
import { WorkerSandbox } from "@turnwise/sandbox"
import { exactAnswerTask, generateCodeProblems, generateProblems, programSynthesisTask } from "@turnwise/tasks"
import { clusterDirs, clusterTrainLoop, learnerClusterLayer, startLocalRunners } from "@turnwise/cluster"
import type { ClusterSchedule } from "@turnwise/cluster"
import grpo from "../recipes/grpo.js"
// The cluster tests' reward: a random tiny model earns it unevenly, so every update moves the weights.
import { evenTokensReward, programLimits, programModelConfig, programRecipe, programWarmStartModel } from "../test/cluster/harness.js"

const { values: args } = parseArgs({
  options: {
    task: { type: "string", default: "arithmetic" },
    preset: { type: "string", default: "tiny" },
    layers: { type: "string", default: "2" },
    steps: { type: "string", default: "6" },
    prompts: { type: "string", default: "4" },
    group: { type: "string", default: "4" },
    tokens: { type: "string", default: "24" },
    staleness: { type: "string", default: "1" },
    lr: { type: "string", default: "" },
    modes: { type: "string", default: "sync-in-process,sync-2-runners,async-2-runners" },
  },
})
if (args.task !== "arithmetic" && args.task !== "program") throw new Error(`--task: unknown task "${args.task}"; known: arithmetic, program`)
const program = args.task === "program"
const preset = args.preset === "compact" ? presets.compact : presets.tiny
const model = program ? programModelConfig : { ...preset, nLayers: Number(args.layers), seed: 3 }
const steps = Number(args.steps)
const maxStaleness = Number(args.staleness)
const optimizerOf = (base: RecipeType) => (args.lr === "" ? base.optimizer : { ...base.optimizer, lr: Number(args.lr) })

const recipe: RecipeType = program
  ? { ...programRecipe, optimizer: optimizerOf(programRecipe), rollout: { ...programRecipe.rollout, groupSize: Number(args.group) } }
  : {
    ...grpo,
    reward: use(evenTokensReward),
    optimizer: optimizerOf(grpo),
    rollout: {
      ...grpo.rollout,
      groupSize: Number(args.group),
      maxTurns: 2,
      maxNewTokensPerTurn: Number(args.tokens),
      maxTokens: 4 * Number(args.tokens),
      temperature: 1,
    },
  }
// The name the runners are given, as the command line gives `task.kind`.
const clusterTask = program ? "program" : "arithmetic"
const task: Task<TaskProblem> = program
  ? (programSynthesisTask({ limits: programLimits }) as unknown as Task<TaskProblem>)
  : (exactAnswerTask("arithmetic") as unknown as Task<TaskProblem>)
const loopOptions: LoopOptions<TaskProblem> = {
  trainProblems: program
    ? generateCodeProblems({ seed: 5, count: 64, split: "train", levels: [1, 2] })
    : generateProblems({ seed: 5, count: 64, split: "train", levels: [1] }),
  evalProblems: program
    ? generateCodeProblems({ seed: 6, count: 1, split: "heldout", levels: [1] })
    : generateProblems({ seed: 6, count: 2, split: "heldout", levels: [1] }),
  steps,
  promptsPerStep: Number(args.prompts),
  seed: 11,
  evalEvery: 0,
  checkpointEvery: 0,
  resume: false,
}

const initialModel = async (): Promise<Transformer> => (program ? programWarmStartModel() : createTransformer(model))

type Mode = { readonly name: string; readonly runners: number; readonly schedule?: ClusterSchedule }

const allModes: ReadonlyArray<Mode> = [
  { name: "sync-in-process", runners: 0 },
  { name: "sync-2-runners", runners: 2, schedule: { mode: "sync" } },
  { name: "async-2-runners", runners: 2, schedule: { mode: "async", maxStaleness, importanceCap: 2 } },
]

const modes = args.modes.split(",").map((name) => {
  const mode = allModes.find((m) => m.name === name)
  if (mode === undefined) throw new Error(`--modes: unknown mode "${name}"; known: ${allModes.map((m) => m.name).join(", ")}`)
  return mode
})

const mean = (xs: ReadonlyArray<number>): number => (xs.length === 0 ? Number.NaN : xs.reduce((a, b) => a + b, 0) / xs.length)

const runMode = async (mode: Mode) => {
  await setBackend("wasm")
  const runDir = fs.mkdtempSync(path.join(os.tmpdir(), "turnwise-bench-cluster-"))
  const runtime: PolicyRuntime = makePolicyRuntime(await initialModel(), byteTokenizer, recipe.optimizer, { seed: 1, totalSteps: steps })
  const records: Array<MetricsRecord> = []
  const services = Layer.mergeAll(
    TfjsPolicy.layer(runtime),
    TfjsTokenizer.layer(byteTokenizer),
    WorkerSandbox.layer({ size: 1 }),
    MetricsSink.memory(records),
    SafetensorsCheckpoints.layer(runtime, path.join(runDir, "checkpoints"), { bench: true }),
  )
  const dirs = clusterDirs(runDir)
  const loop: Effect.Effect<unknown, unknown, RunServices> = mode.runners === 0
    ? (trainLoop(recipe, task, loopOptions) as Effect.Effect<unknown, RunError, RunServices>)
    : Effect.scoped(
      Effect.gen(function*() {
        yield* startLocalRunners(mode.runners, { dirs, model, optimizer: recipe.optimizer, sandboxWorkers: 1, log: () => {} })
        return yield* clusterTrainLoop(recipe, clusterTask, task, {
          ...loopOptions,
          model: runtime.model,
          weightsDir: dirs.weightsDir,
          ...(mode.schedule === undefined ? {} : { schedule: mode.schedule }),
        }).pipe(Effect.provide(learnerClusterLayer(dirs)))
      }),
    )
  const started = performance.now()
  await Effect.runPromise(loop.pipe(Effect.provide(services)) as Effect.Effect<unknown, unknown, never>)
  const totalSeconds = (performance.now() - started) / 1000
  runtime.dispose()
  fs.rmSync(runDir, { recursive: true, force: true })
  const train = records.filter((r) => r.phase === "train").map((r) => r.metrics)
  const later = train.slice(1)
  const metric = (name: string) => later.map((m) => m[name]).filter((x): x is number => x !== undefined)
  const stepSeconds = mean(metric("time/step_s"))
  const rolloutSeconds = mean(metric(mode.schedule?.mode === "async" ? "time/rollout_wait_s" : "time/rollout_s"))
  const trainSeconds = mean(metric("time/train_s"))
  return {
    mode: mode.name,
    task: args.task,
    runners: mode.runners,
    steps,
    stepSeconds,
    // In asynchronous mode: the learner's wait for a step's groups (publishing included).
    rolloutSeconds,
    trainSeconds,
    // The step split: rollout (sampling + sandbox; the learner's wait for groups in async mode) and learner (the update).
    rolloutShare: rolloutSeconds / stepSeconds,
    learnerShare: trainSeconds / stepSeconds,
    ...(mode.runners > 0
      ? {
        publishSeconds: mean(metric("time/publish_s")),
        promptRolloutSeconds: mean(metric("time/prompt_rollout_s")),
        promptRolloutMaxSeconds: mean(metric("time/prompt_rollout_max_s")),
        promptWaitSeconds: mean(metric("time/prompt_wait_s")),
        runnersUsed: mean(metric("cluster/runners_used")),
      }
      : {}),
    totalSeconds,
    trainedSteps: train.filter((m) => m["train/updates"] !== undefined && m["train/updates"] > 0).length,
    ...(mode.schedule?.mode === "async"
      ? {
        maxStaleness,
        rolloutWaitSeconds: mean(metric("time/rollout_wait_s")),
        proximalSeconds: mean(metric("time/proximal_s")),
        stalenessMax: Math.max(...train.map((m) => m["cluster/staleness_max"] ?? Number.NaN)),
        stalenessMean: mean(train.map((m) => m["cluster/staleness_mean"] ?? Number.NaN)),
        isWeightMean: mean(train.map((m) => m["cluster/is_weight_mean"] ?? Number.NaN)),
        isWeightMax: Math.max(...train.map((m) => m["cluster/is_weight_max"] ?? Number.NaN)),
        isTruncatedFrac: mean(train.map((m) => m["cluster/is_truncated_frac"] ?? Number.NaN)),
      }
      : {}),
  }
}

const results = []
for (const mode of modes) {
  const result = await runMode(mode)
  results.push(result)
  console.log(JSON.stringify(result))
}
const base = results[0]!.stepSeconds
const synchronousOnRunners = results.find((r) => r.mode === "sync-2-runners")
const inProcess = results.find((r) => r.mode === "sync-in-process")
console.log(
  JSON.stringify({
    summary: `step time relative to ${results[0]!.mode} (lower is faster)`,
    task: args.task,
    preset: program ? "compact (program warm start)" : args.preset,
    layers: model.nLayers,
    promptsPerStep: loopOptions.promptsPerStep,
    groupSize: recipe.rollout.groupSize,
    maxNewTokensPerTurn: recipe.rollout.maxNewTokensPerTurn,
    lr: recipe.optimizer.lr,
    cpus: os.cpus().length,
    loadAverage: os.loadavg()[0],
    ratios: Object.fromEntries(results.map((r) => [r.mode, r.stepSeconds / base])),
    // Constants of the scaling estimate: the learner's update, one prompt's rollout on a runner, publishing a version.
    scaling: {
      learnerSeconds: inProcess?.trainSeconds ?? Number.NaN,
      promptRolloutSeconds: synchronousOnRunners?.promptRolloutSeconds ?? Number.NaN,
      publishSeconds: synchronousOnRunners?.publishSeconds ?? Number.NaN,
    },
  }),
)
