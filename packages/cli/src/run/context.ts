/**
 * Opening a run: backend, model (fresh, from a warm-start checkpoint, or a pretrained
 * Hugging Face Llama/Qwen2 directory), tokenizer (byte-level, or the pretrained model's
 * tokenizer.json and chat template), optimiser, sandbox pool, and the Layers that
 * provide the DSL's services over them.
 *
 * @category constructors
 */
import { promises as fs } from "node:fs"
import * as path from "node:path"
import { Effect, Layer } from "effect"
import { CheckpointError, MetricsSink, Policy as PolicyService } from "@turnwise/dsl"
import type { CheckpointStore, OptimizerConfig, Policy, RecipeType, Sandbox as DslSandbox, Tokenizer, TokenizerShape } from "@turnwise/dsl"
import { setBackend } from "@turnwise/runtime"
import { FileCheckpointStore } from "@turnwise/runtime"
import { decodeModelConfig, presets } from "@turnwise/runtime"
import type { ModelConfig } from "@turnwise/runtime"
import { readHfConfig } from "@turnwise/runtime"
import { loadHfModel } from "@turnwise/runtime"
import { loadHfTokenizer } from "@turnwise/runtime"
import { Transformer } from "@turnwise/runtime"
import { WorkerSandbox } from "@turnwise/sandbox"
import { byteTokenizer } from "@turnwise/runtime"
import { SafetensorsCheckpoints, TfjsPolicy, TfjsTokenizer } from "@turnwise/runtime"
import { makePolicyRuntime } from "@turnwise/runtime"
import type { PolicyRuntime } from "@turnwise/runtime"
import { autoInit, resolveInit } from "./init.js"
import type { RunConfig } from "./RunConfig.js"

/** The parts of a checkpoint's state.json that rebuilding its model reads. */
interface CheckpointState {
  readonly config?: { readonly model?: unknown; readonly run?: { readonly model?: { readonly path?: unknown } } }
}

/** The state.json of a checkpoint directory, or of the latest step-* checkpoint under it. */
const readCheckpointState = async (dir: string): Promise<{ readonly statePath: string; readonly state: CheckpointState }> => {
  const chosen = (await new FileCheckpointStore(dir).latest()) ?? dir
  const statePath = path.join(chosen, "state.json")
  const text = await fs.readFile(statePath, "utf8").catch(() => {
    throw new CheckpointError({ path: statePath, problem: "not found: expected a checkpoint directory (or a directory of step-* checkpoints)" })
  })
  try {
    return { statePath, state: JSON.parse(text) as CheckpointState }
  } catch {
    throw new CheckpointError({ path: statePath, problem: "is not valid JSON" })
  }
}

/** The model config a checkpoint was saved with (from its state.json). */
export const checkpointModelConfig = async (dir: string): Promise<ModelConfig> => {
  const { statePath, state } = await readCheckpointState(dir)
  if (state.config?.model === undefined) throw new CheckpointError({ path: statePath, problem: "config.model is missing; cannot rebuild the model" })
  return decodeModelConfig(state.config.model)
}

/**
 * The Hugging Face directory (`model.path`) the checkpoint's run started from, or ""
 * when it started from a preset (or the checkpoint predates `model.path`).
 *
 * @example
 * const source = await checkpointModelPath("runs/qwen-gtpo/checkpoints") // "models/Qwen2.5-0.5B-Instruct"
 */
export const checkpointModelPath = async (dir: string): Promise<string> => {
  const recorded = (await readCheckpointState(dir)).state.config?.run?.model?.path
  return typeof recorded === "string" ? recorded : ""
}

/**
 * Build the model: the Hugging Face directory `path` when given (then `init`, if also
 * given, replaces its weights with a checkpoint's), else from `init` (weights only),
 * else fresh from the preset. `init: "auto"` is resolved first (see init.ts).
 */
export const loadModel = async (given: RunConfig): Promise<Transformer> => {
  const run = given.model.init === autoInit ? (await resolveInit(given)).run : given
  if (run.model.path === "" && run.model.init === "") return new Transformer(decodeModelConfig({ ...presets[run.model.preset], seed: run.model.seed }))
  const model = run.model.path === "" ? new Transformer(await checkpointModelConfig(run.model.init)) : (await loadHfModel(run.model.path)).model
  if (run.model.init === "") return model
  const store = new FileCheckpointStore(run.model.init)
  const chosen = (await store.latest()) ?? run.model.init
  try {
    await store.restore({ variables: model.variables }, chosen)
  } catch (error) {
    model.dispose()
    throw error
  }
  return model
}

/**
 * The run's tokenizer: the byte tokenizer, or with `model.path` the directory's
 * tokenizer.json (its chat template formats prompts), sized to the model's vocabulary.
 *
 * @example
 * const tokenizer = await loadTokenizer(run, model)
 */
export const loadTokenizer = async (run: RunConfig, model: Transformer): Promise<TokenizerShape> => {
  if (run.model.path === "") return byteTokenizer
  const config = await readHfConfig(run.model.path)
  return loadHfTokenizer(run.model.path, { vocabSize: model.vocabSize, config })
}

/**
 * The Policy service of `inner`, calling `onSessionClosed(rows)` each time a sampling
 * session of `rows` sequences is released (a rollout or an evaluation chunk finished).
 */
const observedPolicy = (inner: Layer.Layer<Policy>, onSessionClosed: (rows: number) => void): Layer.Layer<Policy> =>
  Layer.effect(
    PolicyService,
    Effect.gen(function*() {
      const policy = yield* PolicyService
      return {
        ...policy,
        session: (rows: number, seed: number) =>
          policy.session(rows, seed).pipe(Effect.tap(() => Effect.addFinalizer(() => Effect.sync(() => onSessionClosed(rows))))),
      }
    }),
  ).pipe(Layer.provide(inner))

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
  /** Where metrics go (default: appended to `outDir/metrics.jsonl`). */
  readonly metricsSink?: Layer.Layer<MetricsSink>
  /** Told the size of each sampling session when it ends (progress of evaluations). */
  readonly onSessionClosed?: (rows: number) => void
}): Promise<RunContext> => {
  const backend = await setBackend(options.run.backend)
  options.log?.(`backend: ${backend}`)
  const model = await loadModel(options.run)
  const tokenizer = await loadTokenizer(options.run, model).catch((error: unknown) => {
    model.dispose()
    throw error
  })
  if (options.run.model.path !== "") {
    options.log?.(`model: ${options.run.model.path} (${model.config.nLayers} layers, width ${model.config.dModel}, vocabulary ${model.vocabSize})`)
  }
  const runtime = makePolicyRuntime(model, tokenizer, options.optimizer, { seed: options.run.train.seed, totalSteps: options.totalSteps })
  if (options.optimizer.carryOptimizerState) {
    await SafetensorsCheckpoints.carryOptimizerState(runtime, options.run.model.init).catch((error: unknown) => {
      runtime.dispose()
      throw error
    })
  }
  const layer = Layer.mergeAll(
    options.onSessionClosed === undefined ? TfjsPolicy.layer(runtime) : observedPolicy(TfjsPolicy.layer(runtime), options.onSessionClosed),
    TfjsTokenizer.layer(tokenizer),
    WorkerSandbox.layer({ size: options.run.sandboxWorkers }),
    options.metricsSink ?? MetricsSink.jsonl(path.join(options.outDir, "metrics.jsonl")),
    SafetensorsCheckpoints.layer(runtime, path.join(options.outDir, "checkpoints"), {
      model: model.config,
      recipe: options.encodedRecipe ?? null,
      run: options.run,
    }, {
      weightsOnly: options.weightsOnly ?? false,
    }),
  )
  return { backend, runtime, layer }
}

/** Run a pipeline Effect with a run's services. */
export const runWith = <A, E>(context: RunContext, program: Effect.Effect<A, E, Policy | DslSandbox | Tokenizer | MetricsSink | CheckpointStore>): Promise<A> =>
  Effect.runPromise(program.pipe(Effect.provide(context.layer)))
