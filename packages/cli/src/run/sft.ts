/**
 * `turnwise sft`: warm-start a policy on demonstrations from the built-in task.
 *
 * The demonstrations use the real sandbox's outputs (including a share of failed calls
 * followed by a fix), so the warm-started policy has seen the exact protocol the
 * rollout uses. The result is a checkpoint a training run starts from with
 * `--set model.init=DIR`; the repository ships one made by this command. With
 * `model.path` the demonstrations are encoded by that model's tokenizer and chat template.
 *
 * @category constructors
 */
import * as path from "node:path"
import { Effect } from "effect"
import { CheckpointStore, MetricsSink, Policy } from "@turnwise/dsl"
import { Rng } from "@turnwise/core"
import { createSandboxPool } from "@turnwise/sandbox"
import { recipes } from "@turnwise/recipes"
import { defaultDemonstrationMix, demonstrationSequence } from "./data.js"
import type { DemonstrationMix } from "./data.js"
import { runTask } from "./task-source.js"
import { openRun, runWith } from "./context.js"
import { autoInit } from "./init.js"
import type { RunConfig } from "./RunConfig.js"

/** Settings of a warm-start. */
export interface SftOptions {
  readonly run: RunConfig
  readonly outDir: string
  readonly steps: number
  readonly batchSize: number
  readonly lr: number
  /** The demonstrations' mix (default: a share of failed calls, no mental answers). */
  readonly mix?: DemonstrationMix
  readonly log: (line: string) => void
}

/** What a warm-start produced. */
export interface SftResult {
  readonly checkpoint: string
  readonly demonstrations: number
  readonly finalLoss: number
  readonly finalAccuracy: number
  readonly seconds: number
}

/** Train on demonstrations and save a checkpoint under `outDir/checkpoints`. */
export const runSft = async (given: SftOptions): Promise<SftResult> => {
  const started = performance.now()
  // sft makes warm starts: "auto" (the shipped warm start for train) means the initial weights here.
  const options = given.run.model.init === autoInit ? { ...given, run: { ...given.run, model: { ...given.run.model, init: "" } } } : given
  const { demonstrations, train } = runTask(options.run, recipes.gtpo)
  options.log(`making demonstrations of ${train.length} problems (each tool call runs in the sandbox) ...`)
  const pool = createSandboxPool({ size: options.run.sandboxWorkers })
  const demos = await demonstrations(pool, options.run.train.seed, options.mix ?? defaultDemonstrationMix).finally(() => pool.close())
  options.log(
    `demonstrations: ${demos.length} (${demos.filter((d) => d.mistake !== null).length} with a failed call first, ${
      demos.filter((d) => d.style === "mental").length
    } answered with no call)`,
  )
  const context = await openRun({
    run: options.run,
    optimizer: {
      lr: options.lr,
      weightDecay: 0.01,
      beta1: 0.9,
      beta2: 0.99,
      eps: 1e-8,
      maxGradNorm: 1,
      warmupSteps: Math.min(20, options.steps),
      decay: "cosine",
      epochs: 1,
      miniBatches: 1,
      microBatchSize: options.batchSize,
      reference: "none",
      carryOptimizerState: false,
    },
    outDir: options.outDir,
    totalSteps: options.steps,
    log: options.log,
    weightsOnly: true,
  })
  // Encoded with the run's tokenizer (a pretrained model's, with `model.path`), so the
  // ids are the ones the rollout will feed this model.
  const sequences = demos.map((demo) => demonstrationSequence(demo, context.runtime.tokenizer))
  const rng = Rng.fromSeed(options.run.train.seed)
  const program = Effect.gen(function*() {
    const policy = yield* Policy
    const sink = yield* MetricsSink
    const store = yield* CheckpointStore
    let last: Readonly<Record<string, number>> = {}
    for (let step = 0; step < options.steps; step++) {
      const batch = Array.from({ length: options.batchSize }, () => sequences[rng.int(sequences.length)]!)
      const report = yield* policy.trainSupervised(batch)
      last = report.metrics
      yield* sink.record({ step: step + 1, phase: "sft", metrics: report.metrics })
      if ((step + 1) % 25 === 0 || step + 1 === options.steps) {
        options.log(
          `sft step ${step + 1}/${options.steps} loss ${(report.metrics["train/loss"] ?? NaN).toFixed(4)} accuracy ${
            (report.metrics["sft/accuracy"] ?? NaN).toFixed(3)
          }`,
        )
      }
    }
    const saved = yield* store.save(options.steps, { kind: "sft" })
    return { saved, last }
  })
  const { saved, last } = await runWith(context, program)
  context.runtime.dispose()
  return {
    checkpoint: path.dirname(saved.path),
    demonstrations: demos.length,
    finalLoss: last["train/loss"] ?? Number.NaN,
    finalAccuracy: last["sft/accuracy"] ?? Number.NaN,
    seconds: (performance.now() - started) / 1000,
  }
}
