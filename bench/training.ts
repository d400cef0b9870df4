/**
 * Training throughput: tokens/s and achieved GFLOP/s of full optimisation steps
 * (forward, backward, gradient accumulation, clipping, AdamW) through the shared
 * update engine, for any TrainableModel.
 *
 * FLOPs per step: 6 x parameters x tokens (forward 2, backward 4 per weight per token)
 * plus, when the model's dimensions are given, attention's score and value products,
 * 12 x layers x dModel x T per token (the PaLM appendix's count; causal masking is not
 * subtracted, as tfjs computes the full T x T products). The supervised objective is
 * used, so no policy loss is needed; its cost is negligible next to the model's.
 *
 * Usage: npx tsx bench/training.ts [--sizes tiny,small,medium,100m] [--batch 8] [--seq 128]
 *        [--micro 4] [--steps 3] [--backend wasm|cpu|tensorflow|tensorflow-gpu|webgpu]
 *        [--attention auto|batched|split[,...]]
 * `--attention` runs each size once per listed mode of attention's products
 * (packages/runtime/src/model/batched-matmul.ts), in order, in this one process.
 * Prints one JSON line per size and mode.
 */
import type { TrainingSequence } from "@turnwise/core"
import { parseArgs } from "node:util"
import { setBackend, type BackendName } from "../packages/runtime/src/backend.js"
import { attentionMatMulMode, setAttentionMatMulMode, type AttentionMatMulMode } from "../packages/runtime/src/model/batched-matmul.js"
import { parameterCount } from "../packages/runtime/src/model/config.js"
import { createTransformer } from "../packages/runtime/src/model/transformer.js"
import type { TrainableModel } from "../packages/runtime/src/model/types.js"
import { Rng } from "../packages/core/src/rng.js"
import { constantSchedule } from "../packages/runtime/src/train/schedule.js"
import { createSupervisedTrainer } from "../packages/runtime/src/train/supervised.js"
import { benchSize } from "./sizes.js"

/** Dimensions used for the attention term of the FLOP count (optional). */
export interface AttentionDims {
  readonly nLayers: number
  readonly dModel: number
}

/** What one benchmark run measures. */
export interface TrainingBenchResult {
  readonly name: string
  readonly params: number
  readonly batch: number
  readonly seqLen: number
  readonly microBatchSize: number
  readonly steps: number
  readonly secondsPerStep: number
  readonly tokensPerSecond: number
  readonly gflopPerSecond: number
}

/**
 * Time `steps` optimisation steps (after one warm-up step) of a model built by `factory`
 * on random token sequences of length seqLen.
 *
 * @example
 * const r = await benchTraining("small", () => createTransformer({ ...presets.small }), { batch: 8, seqLen: 128, microBatchSize: 4, steps: 3 }, presets.small)
 */
export const benchTraining = async (
  name: string,
  factory: () => TrainableModel,
  options: { readonly batch: number; readonly seqLen: number; readonly microBatchSize: number; readonly steps: number },
  dims?: AttentionDims,
): Promise<TrainingBenchResult> => {
  const model = factory()
  const params = [...model.variables.values()].reduce((n, v) => n + v.size, 0)
  const rng = Rng.fromSeed(1)
  const seqLen = Math.min(options.seqLen, model.maxSeqLen)
  const batch = (): Array<TrainingSequence> =>
    Array.from({ length: options.batch }, () => {
      const tokens = Array.from({ length: seqLen }, () => rng.int(model.vocabSize))
      const zeros = tokens.map(() => 0)
      return { tokens, mask: tokens.map((_, k) => (k === 0 ? 0 : 1)), oldLogprobs: zeros, advantages: zeros, turnIndex: zeros }
    })
  const trainer = createSupervisedTrainer(model, { schedule: constantSchedule(1e-4), microBatchSize: options.microBatchSize })
  await trainer.step(batch()) // warm-up: kernel compilation, first allocations
  const started = performance.now()
  for (let i = 0; i < options.steps; i++) await trainer.step(batch())
  const seconds = (performance.now() - started) / 1000
  trainer.dispose()
  const tokens = options.batch * seqLen * options.steps
  const attention = dims === undefined ? 0 : 12 * dims.nLayers * dims.dModel * seqLen * tokens
  const flops = 6 * params * tokens + attention
  return {
    name,
    params,
    batch: options.batch,
    seqLen,
    microBatchSize: options.microBatchSize,
    steps: options.steps,
    secondsPerStep: seconds / options.steps,
    tokensPerSecond: tokens / seconds,
    gflopPerSecond: flops / seconds / 1e9,
  }
}

const main = async (): Promise<void> => {
  const { values: args } = parseArgs({
    options: {
      sizes: { type: "string", default: "small" },
      batch: { type: "string", default: "8" },
      seq: { type: "string", default: "128" },
      micro: { type: "string", default: "4" },
      steps: { type: "string", default: "3" },
      backend: { type: "string", default: "wasm" },
      attention: { type: "string" },
    },
  })
  const attentionModes = (args.attention ?? attentionMatMulMode()).split(",") as Array<AttentionMatMulMode>
  const backend = await setBackend(args.backend as BackendName)
  for (const size of (args.sizes ?? "small").split(",")) {
    const config = benchSize(size)
    for (const attention of attentionModes) {
      setAttentionMatMulMode(attention)
      const result = await benchTraining(
        size,
        () => createTransformer({ ...config, seed: 1 }),
        { batch: Number(args.batch), seqLen: Number(args.seq), microBatchSize: Number(args.micro), steps: Number(args.steps) },
        config,
      )
      console.log(JSON.stringify({ bench: "training", backend, attention, configParams: parameterCount(config), ...result }))
    }
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await main()
