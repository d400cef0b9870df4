/**
 * The DSL's `CheckpointStore` service as safetensors checkpoints of a tfjs
 * {@link PolicyRuntime} (weights, optimizer moments, generator state), written
 * atomically; and carrying a warm start's optimizer state into a new run.
 *
 * @example
 * program.pipe(Effect.provide(SafetensorsCheckpoints.layer(runtime, "runs/a/checkpoints", { model: config })))
 *
 * @category layers
 */
import { Effect, Layer } from "effect"
import { CheckpointError, CheckpointStore } from "@turnwise/dsl"
import { FileCheckpointStore } from "../checkpoint/store.js"
import type { PolicyRuntime } from "../PolicyRuntime.js"
import { describeRuntimeError } from "./runtime-errors.js"

/**
 * The `CheckpointStore` service: safetensors checkpoints of the runtime's weights,
 * optimiser and generator state under `dir`, written atomically; `config` (the model
 * config and the resolved recipe) is stored with each. `weightsOnly` leaves the
 * optimiser moments out (warm-start checkpoints, which cannot be resumed).
 */
export const layer = (
  runtime: PolicyRuntime,
  dir: string,
  config: Readonly<Record<string, unknown>>,
  options: { readonly keepLast?: number; readonly weightsOnly?: boolean } = {},
): Layer.Layer<CheckpointStore> => {
  const keepLast = options.keepLast ?? 3
  const store = new FileCheckpointStore(dir, { keepLast })
  const toError = (error: unknown) => (error instanceof CheckpointError ? error : new CheckpointError({ path: dir, problem: describeRuntimeError(error) }))
  return Layer.succeed(CheckpointStore, {
    save: Effect.fn("CheckpointStore.save")(function*(step, meta) {
      return yield* Effect.tryPromise({
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
      })
    }),
    restoreLatest: Effect.fn("CheckpointStore.restoreLatest")(function*() {
      return yield* Effect.tryPromise({
        try: async () => {
          const restored = await store.restore({ variables: runtime.model.variables, optimizer: runtime.engine.optimizer })
          if (restored === null) return null
          runtime.rng.restore(restored.rngState)
          const saved = restored.config as { readonly meta?: Readonly<Record<string, unknown>> } | null
          return { step: restored.step, path: restored.path, meta: saved?.meta ?? {} }
        },
        catch: toError,
      })
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
  if (dir === "") {
    throw new CheckpointError({
      path: "model.init",
      problem: "optimizer.carryOptimizerState is set but there is no warm start (model.init) to carry the state from",
    })
  }
  const store = new FileCheckpointStore(dir)
  const chosen = (await store.latest()) ?? dir
  try {
    await store.restore({ variables: runtime.model.variables, optimizer: runtime.engine.optimizer }, chosen)
  } catch (error) {
    const problem = error instanceof Error ? error.message : String(error)
    if (/missing tensor exp_avg/.test(problem)) {
      throw new CheckpointError({
        path: chosen,
        problem:
          "saved no optimizer moments (a weights-only warm start); set optimizer.carryOptimizerState=false, or warm-start from a checkpoint saved with its optimizer state",
      })
    }
    throw error
  }
  runtime.engine.restartSchedule()
}
