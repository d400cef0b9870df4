/**
 * Layers that provide the DSL's services from the tfjs runtime: `Policy` and
 * `CheckpointStore` over one {@link PolicyRuntime}, `Tokenizer` over a tokenizer.
 * A host app that embeds Turnwise can take these, or provide its own.
 *
 * @category layers
 */
import { Effect, Layer } from "effect"
import { CheckpointError, CheckpointStore, Policy, PolicyError, Tokenizer } from "@turnwise/dsl"
import type { Generation, SamplingSession } from "@turnwise/dsl"
import { FileCheckpointStore } from "../checkpoint/store.js"
import { createSamplingSession } from "../sampler.js"
import type { Tokenizer as TokenizerImpl } from "../tokenizer.js"
import { crossEntropyObjective } from "../train/supervised.js"
import { policyObjective } from "../train/trainer.js"
import type { StepReport } from "../train/trainer.js"
import { embedCodes } from "./PolicyRuntime.js"
import type { PolicyRuntime } from "./PolicyRuntime.js"

/**
 * The error's message; the wasm backend's bare "Aborted()" (its heap could not grow)
 * gets the likely cause and the setting that fixes it.
 */
const describe = (error: unknown): string => {
  const message = error instanceof Error ? error.message : String(error)
  return /^Aborted\(/.test(message)
    ? `${message} (the wasm backend most likely ran out of memory: lower optimizer.microBatchSize, e.g. --set optimizer.microBatchSize=8, or shorten rollout.maxTokens)`
    : message
}

const trainReport = (report: StepReport) => ({
  skipped: report.skipped,
  ...(report.reason === undefined ? {} : { reason: report.reason }),
  metrics: report.metrics,
})

/**
 * The `Policy` service over a runtime.
 *
 * @example
 * program.pipe(Effect.provide(policyLayer(runtime)))
 */
export const policyLayer = (runtime: PolicyRuntime): Layer.Layer<Policy> =>
  Layer.succeed(Policy, {
    maxSeqLen: runtime.model.maxSeqLen,
    session: (rows, seed) =>
      Effect.acquireRelease(
        Effect.try({
          try: () => createSamplingSession(runtime.model, { rows, seed, tokenizer: runtime.tokenizer }),
          catch: (error) => new PolicyError({ operation: "session", reason: describe(error) }),
        }),
        (session) => Effect.sync(() => session.dispose()),
      ).pipe(
        Effect.map(
          (session): SamplingSession => ({
            append: (row, tokens) =>
              Effect.try({ try: () => session.append(row, tokens), catch: (error) => new PolicyError({ operation: "append", reason: describe(error) }) }),
            generate: (rows, options) =>
              // Asynchronous reads: the only kind the webgpu backend supports in Node.
              Effect.tryPromise({
                try: async () =>
                  (await session.generateAsync(rows, { ...options, eos: runtime.tokenizer.eos })).map(
                    (g): Generation => ({ tokens: g.tokens, logprobs: g.logprobs, text: g.text, finish: g.finish }),
                  ),
                catch: (error) => new PolicyError({ operation: "generate", reason: describe(error) }),
              }),
            length: (row) => session.length(row),
          }),
        ),
      ),
    train: (sequences, options) =>
      Effect.tryPromise({
        try: () => runtime.engine.run(sequences, policyObjective(options.loss), options.temperature, options.accumulation),
        catch: (error) => new PolicyError({ operation: "train", reason: describe(error) }),
      }).pipe(Effect.map(trainReport)),
    trainSupervised: (sequences) =>
      Effect.tryPromise({
        try: () => runtime.engine.run(sequences, crossEntropyObjective, 1, "tokens", "supervised"),
        catch: (error) => new PolicyError({ operation: "trainSupervised", reason: describe(error) }),
      }).pipe(Effect.map(trainReport)),
    embedCode: (codes) =>
      Effect.tryPromise({ try: () => embedCodes(runtime, codes), catch: (error) => new PolicyError({ operation: "embedCode", reason: describe(error) }) }),
  })

/** The `Tokenizer` service over a tokenizer (its prompt format too, when it has one). */
export const tokenizerLayer = (tokenizer: TokenizerImpl): Layer.Layer<Tokenizer> =>
  Layer.succeed(Tokenizer, {
    vocabSize: tokenizer.vocabSize,
    bos: tokenizer.bos,
    eos: tokenizer.eos,
    pad: tokenizer.pad,
    encode: (text) => tokenizer.encode(text),
    decode: (ids) => tokenizer.decode(ids),
    ...(tokenizer.formatPrompt === undefined ? {} : { formatPrompt: (text: string) => tokenizer.formatPrompt?.(text) ?? text }),
  })

/**
 * The `CheckpointStore` service: safetensors checkpoints of the runtime's weights,
 * optimiser and generator state under `dir`, written atomically; `config` (the model
 * config and the resolved recipe) is stored with each. `weightsOnly` leaves the
 * optimiser moments out (warm-start checkpoints, which cannot be resumed).
 */
export const checkpointLayer = (
  runtime: PolicyRuntime,
  dir: string,
  config: Readonly<Record<string, unknown>>,
  options: { readonly keepLast?: number; readonly weightsOnly?: boolean } = {},
): Layer.Layer<CheckpointStore> => {
  const keepLast = options.keepLast ?? 3
  const store = new FileCheckpointStore(dir, { keepLast })
  const toError = (error: unknown) => (error instanceof CheckpointError ? error : new CheckpointError({ path: dir, problem: describe(error) }))
  return Layer.succeed(CheckpointStore, {
    save: (step, meta) =>
      Effect.tryPromise({
        try: async () => {
          const path = await store.save({
            weights: runtime.model.variables,
            // A warm-start checkpoint needs no optimiser moments (a new run starts its own); leaving them out keeps it small.
            optimizer: options.weightsOnly === true ? { step: 0, tensors: new Map() } : runtime.engine.optimizer.state(),
            rngState: runtime.rng.state(),
            step,
            config: { ...config, meta },
          })
          return { step, path, meta }
        },
        catch: toError,
      }),
    restoreLatest: () =>
      Effect.tryPromise({
        try: async () => {
          const restored = await store.restore({ variables: runtime.model.variables, optimizer: runtime.engine.optimizer })
          if (restored === null) return null
          runtime.rng.restore(restored.rngState)
          const saved = restored.config as { readonly meta?: Readonly<Record<string, unknown>> } | null
          return { step: restored.step, path: restored.path, meta: saved?.meta ?? {} }
        },
        catch: toError,
      }),
  })
}

/**
 * Carry the optimizer state saved with a warm-start checkpoint (a directory of step-*
 * checkpoints, or one checkpoint) into the runtime: AdamW's moments and update count
 * continue from there, and the learning-rate schedule starts at its beginning. Fails
 * with a CheckpointError naming the directory when it saved no optimizer moments
 * (weights-only warm starts, as `turnwise sft` writes).
 *
 * @example
 * await carryOptimizerState(runtime, "runs/sft/checkpoints")
 */
export const carryOptimizerState = async (runtime: PolicyRuntime, dir: string): Promise<void> => {
  if (dir === "") throw new CheckpointError({ path: "model.init", problem: "optimizer.carryOptimizerState is set but there is no warm start (model.init) to carry the state from" })
  const store = new FileCheckpointStore(dir)
  const chosen = (await store.latest()) ?? dir
  try {
    await store.restore({ variables: runtime.model.variables, optimizer: runtime.engine.optimizer }, chosen)
  } catch (error) {
    const problem = error instanceof Error ? error.message : String(error)
    if (/missing tensor exp_avg/.test(problem)) {
      throw new CheckpointError({
        path: chosen,
        problem: "saved no optimizer moments (a weights-only warm start); set optimizer.carryOptimizerState=false, or warm-start from a checkpoint saved with its optimizer state",
      })
    }
    throw error
  }
  runtime.engine.restartSchedule()
}

