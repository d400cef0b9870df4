/**
 * Where a run's weights come from: `model.init` resolved to a checkpoint directory or
 * to nothing (the preset's initial weights, or a pretrained model's own weights), with
 * a sentence that says which.
 *
 * `model.init: "auto"` (the default) picks the warm start shipped in assets/warm-start
 * when it fits the run: no `model.path`, and the same model preset and task kind the
 * warm start was made for. Any other run starts from its initial weights. An explicit
 * directory, or "" for the initial weights, is taken as given.
 *
 * @category constructors
 */
import { promises as fs } from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { decodeModelConfig, FileCheckpointStore, presets } from "@turnwise/runtime"
import type { RunConfig } from "./RunConfig.js"

const repositoryWarmStart = fileURLToPath(new URL("../../../../assets/warm-start", import.meta.url))

/** The warm-start checkpoint shipped with the repository (relative to the working directory when inside it). */
export const shippedWarmStart = ((): string => {
  const relative = path.relative(process.cwd(), repositoryWarmStart)
  return relative === "" || relative.startsWith("..") || path.isAbsolute(relative) ? repositoryWarmStart : relative
})()

/** The value of `model.init` that picks the shipped warm start when it fits. */
export const autoInit = "auto"

/** What a checkpoint was made for: its model config (seed left out) and task kind. */
interface CheckpointFit {
  readonly model: string
  readonly taskKind: string
}

const modelKey = (raw: unknown): string => {
  const { seed: _seed, ...rest } = decodeModelConfig(raw)
  return JSON.stringify(rest)
}

/** What the checkpoint under `dir` was made for, or null when it has none readable. */
const checkpointFit = async (dir: string): Promise<CheckpointFit | null> => {
  const chosen = await new FileCheckpointStore(dir).latest()
  if (chosen === null) return null
  try {
    const state = JSON.parse(await fs.readFile(path.join(chosen, "state.json"), "utf8")) as {
      readonly config?: { readonly model?: unknown; readonly run?: { readonly task?: { readonly kind?: unknown } } }
    }
    const kind = state.config?.run?.task?.kind
    return { model: modelKey(state.config?.model), taskKind: typeof kind === "string" ? kind : "arithmetic" }
  } catch {
    return null
  }
}

/** A run's starting weights. */
export interface ResolvedInit {
  /** The run config with `model.init` a directory or "" (never "auto"). */
  readonly run: RunConfig
  /** One sentence for the log: what the run starts from. */
  readonly description: string
}

/**
 * Resolve `model.init`; "auto" becomes the shipped warm start when it fits the run, else "".
 *
 * @example
 * const { run: resolved, description } = await resolveInit(run) // description: "starting from the shipped warm start assets/warm-start ..."
 */
export const resolveInit = async (run: RunConfig, warmStart: string = shippedWarmStart): Promise<ResolvedInit> => {
  const withInit = (init: string): RunConfig => ({ ...run, model: { ...run.model, init } })
  const initial = `the initial weights of preset ${run.model.preset} (seed ${run.model.seed})`
  if (run.model.init !== autoInit) {
    if (run.model.init !== "") return { run, description: `starting from checkpoint ${run.model.init} (model.init)` }
    return { run, description: `starting from ${run.model.path === "" ? initial : `the weights of ${run.model.path}`} (model.init is "")` }
  }
  if (run.model.path !== "") {
    return { run: withInit(""), description: `starting from the weights of ${run.model.path} (model.path; the shipped warm start is for the built-in presets)` }
  }
  const fit = await checkpointFit(warmStart)
  if (fit === null) return { run: withInit(""), description: `starting from ${initial}: no warm start at ${warmStart}` }
  const preset = modelKey({ ...presets[run.model.preset], seed: run.model.seed })
  if (fit.model !== preset || fit.taskKind !== run.task.kind) {
    const madeFor = Object.entries(presets).find(([, config]) => modelKey({ ...config, seed: 0 }) === fit.model)?.[0]
    return {
      run: withInit(""),
      description: `starting from ${initial}: the shipped warm start ${warmStart} is for ${
        madeFor === undefined ? "another model" : `preset ${madeFor}`
      } and task kind ${fit.taskKind} (--set model.init=DIR picks a checkpoint)`,
    }
  }
  return {
    run: withInit(warmStart),
    description: `starting from the shipped warm start ${warmStart} (model.init "auto"; --set model.init= starts from the initial weights instead)`,
  }
}
