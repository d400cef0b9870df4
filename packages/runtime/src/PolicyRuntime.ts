/**
 * The live policy: a transformer, its tokenizer, one optimiser and the generator
 * that shuffles micro-batches, held together so that the `Policy` and
 * `CheckpointStore` layers see the same weights and state.
 *
 * @category constructors
 */
import * as tf from "@tensorflow/tfjs"
import type { OptimizerConfig } from "@turnwise/dsl"
import type { Transformer } from "./model/transformer.js"
import { Rng } from "@turnwise/core"
import type { TokenizerShape } from "@turnwise/dsl"
import { createUpdateEngine } from "./train/trainer.js"
import type { UpdateEngine } from "./train/trainer.js"

/** Everything that changes while training and must be checkpointed. */
export interface PolicyRuntime {
  readonly model: Transformer
  readonly tokenizer: TokenizerShape
  readonly engine: UpdateEngine
  /** Shuffles sequences into micro-batches; its state is saved with checkpoints. */
  readonly rng: Rng
  /** Updates the schedule is planned for (decay reaches its floor there). */
  readonly totalSteps: number
  /** Free the weights and the optimiser state. */
  readonly dispose: () => void
}

/**
 * Bind a model to an optimiser configured from a recipe's optimizer section.
 *
 * @example
 * const runtime = makePolicyRuntime(createTransformer(presets.tiny), byteTokenizer, gtpo.optimizer, { seed: 1, totalSteps: 100 })
 */
export const makePolicyRuntime = (
  model: Transformer,
  tokenizer: TokenizerShape,
  optimizer: OptimizerConfig,
  options: { readonly seed: number; readonly totalSteps: number },
): PolicyRuntime => {
  const rng = Rng.fromSeed(options.seed)
  // Each optimiser update is one mini-batch of one epoch of one call, so the schedule
  // (warm-up included) counts updates, not steps.
  const totalUpdates = Math.max(1, options.totalSteps * optimizer.epochs * optimizer.miniBatches)
  const engine = createUpdateEngine(model, {
    optimizer: { beta1: optimizer.beta1, beta2: optimizer.beta2, epsilon: optimizer.eps, weightDecay: optimizer.weightDecay },
    schedule: { peakLr: optimizer.lr, warmupSteps: optimizer.warmupSteps, totalSteps: totalUpdates, decay: optimizer.decay, minLr: optimizer.lr * 0.1 },
    epochs: optimizer.epochs,
    miniBatches: optimizer.miniBatches,
    reference: optimizer.reference === "initial",
    microBatchSize: optimizer.microBatchSize,
    maxGradNorm: optimizer.maxGradNorm === 0 ? null : optimizer.maxGradNorm,
    rng,
    padId: tokenizer.pad,
  })
  return {
    model,
    tokenizer,
    engine,
    rng,
    totalSteps: options.totalSteps,
    dispose: () => {
      engine.dispose()
      model.dispose()
    },
  }
}

/**
 * The policy's own embedding of code strings: the mean of the final hidden states over
 * each string's tokens (BOS first). Used by code-similarity shaping with
 * `embedding: "policy"`. Read asynchronously, as webgpu in Node requires.
 */
export const embedCodes = async (runtime: PolicyRuntime, codes: ReadonlyArray<string>): Promise<Array<Array<number>>> => {
  if (codes.length === 0) return []
  const { model, tokenizer } = runtime
  const encoded = codes.map((code) => [tokenizer.bos, ...tokenizer.encode(code)].slice(0, model.maxSeqLen))
  const T = Math.max(...encoded.map((ids) => ids.length))
  const ids = encoded.flatMap((row) => [...row, ...Array.from({ length: T - row.length }, () => tokenizer.pad)])
  const mask = encoded.flatMap((row) => [...row.map(() => 1), ...Array.from({ length: T - row.length }, () => 0)])
  const vectors = tf.tidy(() => {
    const tokens = tf.tensor2d(ids, [codes.length, T], "int32") // [B, T]
    const hidden = model.hiddenStates(tokens) // [B, T, D]
    const m = tf.tensor3d(mask, [codes.length, T, 1]) // [B, T, 1]
    // Causal attention: padding on the right never changes the states before it.
    return tf.div(tf.sum(tf.mul(hidden, m), 1), tf.sum(m, 1)) // [B, D]
  })
  try {
    return (await vectors.array()) as Array<Array<number>>
  } finally {
    vectors.dispose()
  }
}
