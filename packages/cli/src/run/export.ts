/**
 * `turnwise export`: a run's fine-tuned weights written back in the Hugging Face
 * layout (config.json, model.safetensors, the source model's tokenizer files), so
 * Transformers, vLLM or `--set model.path=DIR` can load them.
 *
 * Run checkpoints stay in Turnwise's own format (weights plus optimiser state and
 * run config); exporting is a separate, explicit step. The model is rebuilt exactly
 * as a run would rebuild it (`loadModel` with the checkpoint as `model.init`), so the
 * exported network computes the checkpoint's logits.
 *
 * @category constructors
 */
import { setBackend } from "@turnwise/runtime"
import type { HfDtype } from "@turnwise/runtime"
import { saveHfModel } from "@turnwise/runtime"
import { checkpointModelPath, loadModel } from "./context.js"
import type { RunConfig } from "./RunConfig.js"

/** Settings of an export. */
export interface ExportOptions {
  /**
   * The run config: `model.init` is the checkpoint (a checkpoint directory or a run's
   * checkpoints/ directory, whose latest step is used); `model.path` the Hugging Face
   * directory the run started from, or "" to use the one the checkpoint recorded.
   */
  readonly run: RunConfig
  /** Directory to write (created when missing). */
  readonly outDir: string
  /** Storage precision of the weights. */
  readonly dtype: HfDtype
  readonly log: (line: string) => void
}

/** What an export wrote. */
export interface ExportResult {
  /** Files written under the output directory. */
  readonly files: ReadonlyArray<string>
  /** The Hugging Face directory whose config.json and tokenizer were used, or "" (fresh config.json, no tokenizer). */
  readonly source: string
}

/**
 * Load a checkpoint and save it in the Hugging Face layout.
 *
 * @example
 * await runExport({ run: { ...defaultRunConfig, model: { ...defaultRunConfig.model, init: "runs/q/checkpoints" } }, outDir: "out/q", dtype: "bfloat16", log: console.error })
 */
export const runExport = async (options: ExportOptions): Promise<ExportResult> => {
  const { run } = options
  await setBackend(run.backend)
  // A run from a pretrained model records its directory; exporting without it would
  // write a config.json with guessed token ids and no tokenizer.
  let source = run.model.path
  if (source === "") {
    source = await checkpointModelPath(run.model.init)
    if (source !== "") options.log(`source model: ${source} (recorded in the checkpoint; --set model.path=DIR overrides it)`)
  }
  const model = await loadModel({ ...run, model: { ...run.model, path: source } })
  try {
    const files = await saveHfModel(model, options.outDir, { dtype: options.dtype, ...(source === "" ? {} : { source }) })
    return { files, source }
  } finally {
    model.dispose()
  }
}
