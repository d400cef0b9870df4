/**
 * `turnwise train`: a full training run with its run directory.
 *
 * The run directory holds recipe.json (the resolved recipe, loadable with
 * `turnwise train runs/x/recipe.json`), config.json, metrics.jsonl, checkpoints/,
 * results.json and report.html. `--resume` continues from the newest checkpoint with
 * the same data order, so an interrupted run ends where an uninterrupted one would.
 *
 * @category constructors
 */
import { promises as fs } from "node:fs"
import * as path from "node:path"
import { Effect } from "effect"
import { evaluate, Recipe, trainLoop } from "@turnwise/dsl"
import type { RecipeType } from "@turnwise/dsl"
import { openRun, runWith } from "./context.js"
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

/** Run training end to end. */
export const runTrain = async (options: TrainOptions): Promise<TrainResult> => {
  const started = performance.now()
  const { run, outDir } = options
  // The task may raise rollout limits it needs; recipe.json records what actually ran.
  const { recipe, task, train, heldout, adjustments } = runTask(run, options.recipe)
  for (const line of adjustments) options.log(`task ${task.name}: ${line}`)
  const encoded = Recipe.encode(recipe)
  if (!options.resume) {
    const existing = await fs.readdir(path.join(outDir, "checkpoints")).catch(() => [])
    if (existing.length > 0) throw new Error(`${outDir} already holds checkpoints; pass --resume to continue it or choose another --out`)
    await fs.rm(path.join(outDir, "metrics.jsonl"), { force: true })
  }
  await writeJson(path.join(outDir, "recipe.json"), encoded)
  await writeJson(path.join(outDir, "config.json"), run)

  const context = await openRun({ run, optimizer: recipe.optimizer, outDir, totalSteps: run.train.steps, encodedRecipe: encoded, log: options.log })
  const progress = new Progress(run.train.steps, options.tty, options.log)
  try {
    const program = Effect.gen(function* () {
      const before = options.evalBefore && !options.resume ? (yield* evaluate(recipe, task, heldout, { seed: run.train.seed })).metrics : {}
      if (options.evalBefore && !options.resume) options.log(`held-out accuracy before: ${(before["outcome/accuracy"] ?? 0).toFixed(3)}`)
      const loop = yield* trainLoop(recipe, task, {
        trainProblems: train,
        evalProblems: heldout,
        steps: run.train.steps,
        promptsPerStep: run.train.promptsPerStep,
        seed: run.train.seed,
        evalEvery: run.train.evalEvery,
        checkpointEvery: run.train.checkpointEvery,
        resume: options.resume,
        onStep: (step, metrics) => progress.update(step, metrics),
      })
      const after = Object.keys(loop.finalEval).length > 0 ? loop.finalEval : (yield* evaluate(recipe, task, heldout, { seed: run.train.seed })).metrics
      return { before, after, loop }
    })
    const { before, after, loop } = await runWith(context, program)
    progress.done()
    const stepSeconds = loop.trainMetrics.map((m) => m["time/step_s"] ?? 0)
    const meanStepSeconds = stepSeconds.length === 0 ? 0 : stepSeconds.reduce((a, b) => a + b, 0) / stepSeconds.length
    const result = {
      outDir,
      before,
      after,
      steps: run.train.steps,
      seconds: (performance.now() - started) / 1000,
      meanStepSeconds,
      reportPath: path.join(outDir, "report.html"),
    }
    await writeJson(path.join(outDir, "results.json"), { recipe: recipe.name, backend: context.backend, ...result })
    await writeRunReport(outDir)
    return result
  } finally {
    context.runtime.dispose()
  }
}
