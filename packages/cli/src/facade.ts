/**
 * The Promise facade: train a recipe without touching Effect.
 *
 * For apps that do not use Effect. It opens the same runtime as the CLI (backend,
 * model, sandbox pool, metrics and checkpoints in a run directory) and resolves with
 * the before/after evaluation. Apps that do use Effect run `trainLoop` with their own
 * Layers instead (see examples/embed.ts).
 *
 * @category constructors
 */
import type { RecipeType } from "@turnwise/dsl"
import { decodeRunConfig } from "./run/RunConfig.js"
import type { RunConfig } from "./run/RunConfig.js"
import { runTrain } from "./run/train.js"
import type { TrainResult } from "./run/train.js"

/** Run-config sections, each optional and partial. */
export interface RunOverrides {
  readonly model?: Partial<RunConfig["model"]>
  readonly task?: Partial<RunConfig["task"]>
  readonly train?: Partial<RunConfig["train"]>
  readonly backend?: RunConfig["backend"]
  readonly sandboxWorkers?: number
}

/**
 * Train a recipe and evaluate it before and after.
 *
 * @example
 * const result = await train(gtpo, { outDir: "runs/mine", run: { train: { steps: 20 } } })
 * console.log(result.before["outcome/accuracy"], result.after["outcome/accuracy"])
 */
export const train = (
  recipe: RecipeType,
  options: { readonly outDir: string; readonly run?: RunOverrides; readonly resume?: boolean; readonly log?: (line: string) => void },
): Promise<TrainResult> => {
  const run = decodeRunConfig(options.run ?? {})
  return runTrain({ recipe, run, outDir: options.outDir, resume: options.resume ?? false, evalBefore: true, log: options.log ?? (() => {}), tty: false })
}
