/**
 * Runs whose files are thrown away: `eval` and `sample` open the same runtime as
 * training (backend, model, tokenizer, sandbox pool) in a temporary directory and
 * remove it afterwards, whatever happened.
 *
 * @category constructors
 */
import { promises as fs } from "node:fs"
import * as path from "node:path"
import type { RecipeType } from "@turnwise/dsl"
import { checkpointModelPath, openRun } from "../run/context.js"
import type { RunContext } from "../run/context.js"
import { defaultRunConfig } from "../run/resolve.js"
import type { RunConfig } from "../run/RunConfig.js"

/** Open a scratch run, run `use`, and clean up. */
export const withScratchRun = async <A>(
  kind: string,
  run: RunConfig,
  recipe: RecipeType,
  log: (line: string) => void,
  use: (context: RunContext) => Promise<A>,
): Promise<A> => {
  const outDir = path.join(".turnwise-tmp", `${kind}-${process.pid}`)
  const context = await openRun({ run, optimizer: recipe.optimizer, outDir, totalSteps: 1, log })
  try {
    return await use(context)
  } finally {
    context.runtime.dispose()
    await fs.rm(outDir, { recursive: true, force: true })
  }
}

/**
 * Run defaults for a command that reads a checkpoint: `model.init` is the checkpoint,
 * and `model.path` the pretrained directory its run recorded, if any, so the same
 * model and tokenizer are rebuilt without repeating `--set model.path`.
 */
export const fromCheckpoint = async (checkpoint: string): Promise<RunConfig> => ({
  ...defaultRunConfig,
  model: { ...defaultRunConfig.model, init: checkpoint, path: await checkpointModelPath(checkpoint).catch(() => "") },
})
