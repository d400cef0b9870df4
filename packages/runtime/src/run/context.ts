/**
 * Opening a run: backend, model (fresh or from a warm-start checkpoint), optimiser,
 * sandbox pool, and the Layers that provide the DSL's services over them.
 *
 * @category constructors
 */
import { promises as fs } from "node:fs"
import * as path from "node:path"
import { Effect, Layer } from "effect"
import { CheckpointError, MetricsSink } from "@turnwise/dsl"
import type { CheckpointStore, OptimizerConfig, Policy, RecipeType, Sandbox as DslSandbox, Tokenizer } from "@turnwise/dsl"
import { setBackend } from "../backend.js"
import { FileCheckpointStore } from "../checkpoint/store.js"
import { decodeModelConfig, presets } from "../model/config.js"
import type { ModelConfig } from "../model/config.js"
import { Transformer } from "../model/transformer.js"
import { Sandbox } from "../sandbox/Sandbox.js"
import { byteTokenizer } from "../tokenizer.js"
import { checkpointLayer, policyLayer, tokenizerLayer } from "../layers/layers.js"
import { makePolicyRuntime } from "../layers/PolicyRuntime.js"
import type { PolicyRuntime } from "../layers/PolicyRuntime.js"
import type { RunConfig } from "./RunConfig.js"

/** The model config a checkpoint was saved with (from its state.json). */
export const checkpointModelConfig = async (dir: string): Promise<ModelConfig> => {
  const chosen = (await new FileCheckpointStore(dir).latest()) ?? dir
  const statePath = path.join(chosen, "state.json")
  const text = await fs.readFile(statePath, "utf8").catch(() => {
    throw new CheckpointError({ path: statePath, problem: "not found: expected a checkpoint directory (or a directory of step-* checkpoints)" })
  })
  let state: { readonly config?: { readonly model?: unknown } }
  try {
    state = JSON.parse(text) as typeof state
  } catch {
    throw new CheckpointError({ path: statePath, problem: "is not valid JSON" })
  }
  if (state.config?.model === undefined) throw new CheckpointError({ path: statePath, problem: "config.model is missing; cannot rebuild the model" })
  return decodeModelConfig(state.config.model)
}

/** Build the model: from `init` (weights only) when given, else fresh from the preset. */
export const loadModel = async (run: RunConfig): Promise<Transformer> => {
  if (run.model.init === "") return new Transformer(decodeModelConfig({ ...presets[run.model.preset], seed: run.model.seed }))
  const config = await checkpointModelConfig(run.model.init)
  const model = new Transformer(config)
  const store = new FileCheckpointStore(run.model.init)
  const chosen = (await store.latest()) ?? run.model.init
  await store.restore({ variables: model.variables }, chosen)
  return model
}

/** Services of a training run. */
export type RunLayer = Layer.Layer<Policy | DslSandbox | Tokenizer | MetricsSink | CheckpointStore>

/** An opened run. */
export interface RunContext {
  readonly backend: string
  readonly runtime: PolicyRuntime
  /** Provide this to the pipeline Effect; the sandbox pool lives as long as the program. */
  readonly layer: RunLayer
}

/**
 * Open a run writing under `outDir` (metrics.jsonl, checkpoints/).
 *
 * @example
 * const ctx = await openRun({ run, optimizer: recipe.optimizer, outDir, totalSteps: 60 })
 * await Effect.runPromise(trainLoop(recipe, task, opts).pipe(Effect.provide(ctx.layer)))
 */
export const openRun = async (options: {
  readonly run: RunConfig
  readonly optimizer: OptimizerConfig
  readonly outDir: string
  readonly totalSteps: number
  readonly recipe?: RecipeType
  readonly encodedRecipe?: unknown
  readonly log?: (line: string) => void
  /** Save weights without optimiser moments (warm-start checkpoints). */
  readonly weightsOnly?: boolean
}): Promise<RunContext> => {
  const backend = await setBackend(options.run.backend)
  options.log?.(`backend: ${backend}`)
  const model = await loadModel(options.run)
  const runtime = makePolicyRuntime(model, byteTokenizer, options.optimizer, { seed: options.run.train.seed, totalSteps: options.totalSteps })
  const layer = Layer.mergeAll(
    policyLayer(runtime),
    tokenizerLayer(byteTokenizer),
    Sandbox.layer({ size: options.run.sandboxWorkers }),
    MetricsSink.jsonl(path.join(options.outDir, "metrics.jsonl")),
    checkpointLayer(runtime, path.join(options.outDir, "checkpoints"), { model: model.config, recipe: options.encodedRecipe ?? null, run: options.run }, {
      weightsOnly: options.weightsOnly ?? false,
    }),
  )
  return { backend, runtime, layer }
}

/** Run a pipeline Effect with a run's services. */
export const runWith = <A, E>(context: RunContext, program: Effect.Effect<A, E, Policy | DslSandbox | Tokenizer | MetricsSink | CheckpointStore>): Promise<A> =>
  Effect.runPromise(program.pipe(Effect.provide(context.layer)))
