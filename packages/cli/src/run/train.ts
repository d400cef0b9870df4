/**
 * `turnwise train`: a full training run with its run directory.
 *
 * The run directory holds recipe.json (the resolved recipe, loadable with
 * `turnwise train runs/x/recipe.json`), config.json, metrics.jsonl, checkpoints/,
 * results.json and report.html. `--resume` continues from the newest checkpoint with
 * the same data order, so an interrupted run ends where an uninterrupted one would
 * (same weights, same metrics), and keeps its "before" figures and elapsed time.
 *
 * @category constructors
 */
import { promises as fs } from "node:fs"
import * as path from "node:path"
import { Effect } from "effect"
import { evaluate, MetricsSink, Recipe, trainLoop } from "@turnwise/dsl"
import type { RecipeType } from "@turnwise/dsl"
import {
  clusterDirs,
  clusterTrainLoop,
  Coordinator,
  formatHostPort,
  learnerClusterLayer,
  learnerCoordinatorLayer,
  lockExpirationMs,
  parseHostPort,
  startLocalRunners,
} from "@turnwise/cluster"
import { FileCheckpointStore } from "@turnwise/runtime"
import { openRun, runWith } from "./context.js"
import { resolveInit } from "./init.js"
import { cutMetricsLog, metricsLogLayer, readMetricsLog } from "./metrics-log.js"
import type { LoggedRecord } from "./metrics-log.js"
import { checkRunDirectory, checkRunProblems, checkRunSettings, resumedSettingChanges } from "./preflight.js"
import { Progress } from "./progress.js"
import { writeRunReport } from "./report.js"
import type { RunConfig } from "./RunConfig.js"
import { runTask } from "./task-source.js"

/** What a run reports at the end. */
export interface TrainResult {
  readonly outDir: string
  readonly before: Readonly<Record<string, number>>
  readonly after: Readonly<Record<string, number>>
  readonly steps: number
  /** Wall-clock seconds of the run, including the part before an interruption (up to its checkpoint). */
  readonly seconds: number
  readonly meanStepSeconds: number
  readonly reportPath: string
}

/** Options of a training run. */
export interface TrainOptions {
  readonly recipe: RecipeType
  readonly run: RunConfig
  readonly outDir: string
  readonly resume: boolean
  /** Evaluate on the held-out split before training (the "before" column). */
  readonly evalBefore: boolean
  readonly log: (line: string) => void
  /** Show a live progress line (TTY) instead of plain lines. */
  readonly tty: boolean
}

const writeJson = async (file: string, value: unknown): Promise<void> => {
  await fs.mkdir(path.dirname(file), { recursive: true })
  const tmp = `${file}.tmp-${process.pid}`
  await fs.writeFile(tmp, JSON.stringify(value, null, 2) + "\n")
  await fs.rename(tmp, file)
}

/** The step of the newest complete checkpoint under `dir`, or 0 when there is none. */
const latestCheckpointStep = async (dir: string): Promise<number> => {
  const latest = await new FileCheckpointStore(dir).latest()
  const match = latest === null ? null : /step-(\d+)$/.exec(latest)
  return match === null ? 0 : Number(match[1])
}

/**
 * Run training end to end.
 *
 * Every input is checked before the run directory is created: the directory itself
 * (see preflight.ts), the starting weights (`model.init`, resolved and loaded), the
 * task's data and the model; a rejected run leaves nothing behind. The held-out
 * evaluation before training is recorded in metrics.jsonl as step 0, so a resumed
 * run keeps it, and every record carries the run's elapsed time, so a resumed run
 * reports the time of the whole run.
 */
export const runTrain = async (options: TrainOptions): Promise<TrainResult> => {
  const sessionStarted = performance.now()
  const { outDir } = options
  await checkRunDirectory(outDir, { resume: options.resume })
  checkRunSettings(options.run)
  const { run, description } = await resolveInit(options.run)
  options.log(description)
  // The task may raise rollout limits it needs; recipe.json records what actually ran.
  const { recipe, task, train, heldout, adjustments } = runTask(run, options.recipe)
  for (const line of adjustments) options.log(`task ${task.name}: ${line}`)
  checkRunProblems(run, train, heldout)
  const encoded = Recipe.encode(recipe)
  const metricsFile = path.join(outDir, "metrics.jsonl")

  // What an interrupted run kept: the records up to its newest checkpoint.
  const resumeStep = options.resume ? await latestCheckpointStep(path.join(outDir, "checkpoints")) : 0
  const kept = options.resume ? (await readMetricsLog(metricsFile)).filter((record) => record.step <= resumeStep) : []
  const elapsedBefore = Math.max(0, ...kept.map((record) => record.elapsedSeconds ?? 0))
  const elapsed = () => elapsedBefore + (performance.now() - sessionStarted) / 1000
  const records: Array<LoggedRecord> = [...kept]
  const progress = new Progress(run.train.steps, { tty: options.tty, log: options.log }, {
    evalEvery: run.train.evalEvery,
    heldout: heldout.length,
    firstStep: resumeStep,
  })
  const metricsSink = metricsLogLayer(metricsFile, {
    elapsed,
    onRecord: (record) => {
      records.push(record)
      progress.record(record)
    },
  })

  // Loads and checks the starting weights (and a pretrained model) before anything is written.
  const context = await openRun({
    run,
    optimizer: recipe.optimizer,
    outDir,
    totalSteps: Math.max(1, run.train.steps),
    encodedRecipe: encoded,
    log: options.log,
    metricsSink,
    onSessionClosed: (rows) => progress.sessionClosed(rows),
  })
  try {
    if (options.resume) {
      for (const change of await resumedSettingChanges(outDir, { run, recipe: encoded })) options.log(`resuming with a changed setting: ${change}`)
      await cutMetricsLog(metricsFile, resumeStep)
      options.log(`resuming ${outDir} after step ${resumeStep} (${kept.length} metrics records kept)`)
    } else {
      await fs.rm(metricsFile, { force: true })
    }
    await writeJson(path.join(outDir, "recipe.json"), encoded)
    await writeJson(path.join(outDir, "config.json"), run)

    const evaluateAt = (step: number, label: string) =>
      Effect.gen(function*() {
        progress.startEvaluation(label)
        const { metrics } = yield* evaluate(recipe, task, heldout, { seed: run.train.seed, samples: run.train.evalSamples })
        const sink = yield* MetricsSink
        yield* sink.record({ step, phase: "eval", metrics })
        return metrics
      })
    const evalRecordAt = (step: number) => records.filter((record) => record.phase === "eval" && record.step === step).at(-1)?.metrics

    const program = Effect.gen(function*() {
      let before = evalRecordAt(0) ?? {}
      if (options.evalBefore && evalRecordAt(0) === undefined) {
        before = yield* evaluateAt(0, run.train.steps === 0 ? "of the starting weights (train.steps is 0)" : "before training")
      } else if (evalRecordAt(0) !== undefined) {
        options.log(
          `held-out accuracy before training: ${(before["outcome/accuracy"] ?? Number.NaN).toFixed(3)} (recorded in metrics.jsonl before this run resumed)`,
        )
      }
      if (run.train.steps > 0) {
        if (resumeStep < run.train.steps) progress.stepStarted(resumeStep + 1)
        const loop = {
          trainProblems: train,
          evalProblems: heldout,
          steps: run.train.steps,
          promptsPerStep: run.train.promptsPerStep,
          seed: run.train.seed,
          evalEvery: run.train.evalEvery,
          evalSamples: run.train.evalSamples,
          checkpointEvery: run.train.checkpointEvery,
          resume: options.resume,
          onStep: (step: number, metrics: Readonly<Record<string, number>>) => progress.update(step, metrics),
        }
        if (run.cluster.runners === 0) {
          yield* trainLoop(recipe, task, loop)
        } else {
          // Rollouts on runner processes; the learner keeps evaluation, updates and checkpoints.
          const dirs = clusterDirs(outDir)
          const model = context.runtime.model
          const { mode, maxStaleness, importanceCap } = run.cluster
          const schedule = mode === "async" ? { mode, maxStaleness, importanceCap } : { mode }
          const clusterLoop = Effect.gen(function*() {
            options.log(mode === "async" ? `asynchronous rollouts, at most ${maxStaleness} versions behind` : "synchronous rollouts")
            yield* clusterTrainLoop(recipe, run.task.kind, task, { ...loop, model, weightsDir: dirs.weightsDir, schedule })
          })
          if (run.cluster.listen === "") {
            // Runners on this machine, stopped with this scope.
            yield* Effect.scoped(
              Effect.gen(function*() {
                yield* startLocalRunners(run.cluster.runners, {
                  dirs,
                  model: model.config,
                  optimizer: recipe.optimizer,
                  sandboxWorkers: run.sandboxWorkers,
                  log: options.log,
                })
                options.log(`rolling out on ${run.cluster.runners} local runner processes`)
                yield* clusterLoop.pipe(Effect.provide(learnerClusterLayer(dirs)))
              }),
            )
          } else {
            // Runners on other machines join through the coordinator; they leave when it closes with this run.
            const listen = parseHostPort(run.cluster.listen, "cluster.listen")
            yield* Effect.gen(function*() {
              const coordinator = yield* Coordinator
              options.log(
                `coordinator listening on ${
                  formatHostPort(coordinator.address)
                }; waiting for ${run.cluster.runners} runner(s): turnwise runner --join <this machine's address>:${coordinator.address.port}`,
              )
              const joined = yield* coordinator.awaitRunners(run.cluster.runners, run.cluster.joinTimeout)
              options.log(`rolling out on ${joined.length} joined runner(s): ${joined.join(", ")}`)
              yield* clusterLoop
            }).pipe(
              Effect.provide(
                learnerCoordinatorLayer({
                  listen,
                  weightsDir: dirs.weightsDir,
                  settings: { model: model.config, optimizer: recipe.optimizer, sandboxWorkers: run.sandboxWorkers },
                  lockExpirationMs,
                }),
              ),
            )
          }
        }
      }
      // The loop evaluates after its last step; with no steps (or a run that had finished
      // its steps before it was interrupted) the record is already there or made here.
      const after = evalRecordAt(run.train.steps) ?? (yield* evaluateAt(run.train.steps, "after training"))
      return { before, after }
    })
    const { before, after } = await runWith(context, program)
    progress.done()
    const stepSeconds = records.filter((record) => record.phase === "train").map((record) => record.metrics["time/step_s"] ?? 0)
    const meanStepSeconds = stepSeconds.length === 0 ? 0 : stepSeconds.reduce((a, b) => a + b, 0) / stepSeconds.length
    const result = {
      outDir,
      before,
      after,
      steps: run.train.steps,
      seconds: elapsed(),
      meanStepSeconds,
      reportPath: path.join(outDir, "report.html"),
    }
    await writeJson(path.join(outDir, "results.json"), { recipe: recipe.name, backend: context.backend, init: run.model.init, ...result })
    await writeRunReport(outDir)
    return result
  } finally {
    progress.done()
    context.runtime.dispose()
  }
}
