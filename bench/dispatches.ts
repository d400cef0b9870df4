/**
 * Kernel dispatches: how many backend kernels one training step and one decoded token
 * launch. On a GPU each kernel is at least one dispatch with its own buffer, bind-group
 * and uniform set-up, so this count, not FLOPs, bounds small-batch speed there; it is
 * the figure fused kernels must bring down. It is counted the same way on every
 * backend (tfjs's profiler sees every kernel the engine runs, gradients included).
 *
 * `trainStep`: kernels of one optimisation step (forward, backward, accumulation over
 * micro-batches, clipping, AdamW) of the supervised objective on random tokens.
 * `decodeTokenPerLayer`: kernels of one KV-cached decode step of a batch, divided by
 * the number of layers (the embedding, final norm and head are shared out with it).
 * Kernels that only relabel a tensor (Reshape, Identity) are counted apart, as
 * `shapeOnly`, because no backend launches work for them; so are custom-gradient
 * wrappers (`tf.customGrad` scopes, which the profiler lists under their scope's name,
 * "unnamed scope" or ""), as `scopes`: their inner kernels are counted. On webgpu,
 * `trainStepGpuPrograms` and `decodeTokenGpuPrograms` also count the shader programs
 * the backend really ran (some tfjs kernels run several, small ones run on the CPU).
 * `decodeReadFloatsPerToken`: numbers read back to the host per decode step of the
 * batch, measured on the tensors' reads (rows * 2 where the webgpu decode samples on the
 * device, rows * vocabulary where the host samples from the logits).
 *
 * Usage: npx tsx bench/dispatches.ts [--size medium] [--batch 8] [--seq 128] [--micro 4]
 *        [--rows 16] [--prompt 16] [--tokens 8] [--backend wasm|cpu|webgpu|...]
 * webgpu runs on the GPU if Dawn finds one, else on Mesa's software GPU (counts are the same).
 * Prints one JSON line:
 * {"bench":"dispatches","backend":...,"trainStep":N,"decodeTokenPerLayer":M,...}
 */
import * as tf from "@tensorflow/tfjs"
import type { TrainingSequence } from "@turnwise/core"
import { parseArgs } from "node:util"
import { Rng } from "../packages/core/src/rng.js"
import { setBackend, type BackendName } from "../packages/runtime/src/backend.js"
import { createTransformer } from "../packages/runtime/src/model/transformer.js"
import { createSamplingSession } from "../packages/runtime/src/sampler.js"
import { constantSchedule } from "../packages/runtime/src/train/schedule.js"
import { createSupervisedTrainer } from "../packages/runtime/src/train/supervised.js"
import { benchSize } from "./sizes.js"

/** Kernels that change only a tensor's shape or name: no backend launches work for them. */
const shapeOnlyKernels = new Set(["Reshape", "Identity"])

/** Kernel counts of one profiled piece of work. */
export interface KernelCount {
  readonly kernels: number
  readonly shapeOnly: number
  /** Custom-gradient wrappers: profiler entries that are not kernels of the backend. */
  readonly scopes: number
  /** Shader programs the webgpu backend ran; undefined on other backends. */
  readonly gpuPrograms: number | undefined
  /** The most frequent kernels, most frequent first. */
  readonly top: ReadonlyArray<readonly [string, number]>
}

/** Count the kernels `work` runs (awaited inside the profiler). */
export const countKernels = async (work: () => Promise<void>): Promise<KernelCount> => {
  const backend = tf.backend() as unknown as { runWebGPUProgram?: (...args: Array<unknown>) => unknown }
  const run = backend.runWebGPUProgram
  let gpuPrograms = 0
  if (run !== undefined) {
    backend.runWebGPUProgram = (...args: Array<unknown>) => {
      gpuPrograms++
      return run.apply(backend, args)
    }
  }
  let info: Awaited<ReturnType<typeof tf.profile>>
  try {
    info = await tf.profile(async () => {
      await work()
      return tf.scalar(0)
    })
  } finally {
    if (run !== undefined) backend.runWebGPUProgram = run
  }
  const byName = new Map<string, number>()
  for (const kernel of info.kernels) byName.set(kernel.name, (byName.get(kernel.name) ?? 0) + 1)
  const shapeOnly = info.kernels.filter((k) => shapeOnlyKernels.has(k.name)).length
  const scopes = info.kernels.filter((k) => !shapeOnlyKernels.has(k.name) && tf.getKernel(k.name, tf.getBackend()) === undefined).length
  const top = [...byName.entries()].sort((a, b) => b[1] - a[1]).slice(0, 12)
  return { kernels: info.kernels.length - shapeOnly - scopes, shapeOnly, scopes, gpuPrograms: run === undefined ? undefined : gpuPrograms, top }
}

/** Numbers read back to the host (tensor `data`/`dataSync` calls) while `work` runs. */
export const countReadFloats = async (work: () => Promise<void>): Promise<number> => {
  const proto = tf.Tensor.prototype
  const { data, dataSync } = proto
  let floats = 0
  proto.data = function(this: tf.Tensor) {
    floats += this.size
    return data.call(this)
  } as typeof data
  proto.dataSync = function(this: tf.Tensor) {
    floats += this.size
    return dataSync.call(this)
  } as typeof dataSync
  try {
    await work()
  } finally {
    proto.data = data
    proto.dataSync = dataSync
  }
  return floats
}

const main = async (): Promise<void> => {
  const { values: args } = parseArgs({
    options: {
      size: { type: "string", default: "medium" },
      batch: { type: "string", default: "8" },
      seq: { type: "string", default: "128" },
      micro: { type: "string", default: "4" },
      rows: { type: "string", default: "16" },
      prompt: { type: "string", default: "16" },
      tokens: { type: "string", default: "8" },
      backend: { type: "string", default: "wasm" },
    },
  })
  // Kernel counts do not depend on the device, so webgpu falls back to the software GPU where there is none.
  const backend = await setBackend(args.backend as BackendName, { softwareGpu: "fallback" })
  const config = benchSize(args.size!)
  const model = createTransformer({ ...config, seed: 1 })
  const rng = Rng.fromSeed(1)
  const seqLen = Math.min(Number(args.seq), model.maxSeqLen)
  const batch = (): Array<TrainingSequence> =>
    Array.from({ length: Number(args.batch) }, () => {
      const tokens = Array.from({ length: seqLen }, () => rng.int(model.vocabSize))
      const zeros = tokens.map(() => 0)
      return { tokens, mask: tokens.map((_, k) => (k === 0 ? 0 : 1)), oldLogprobs: zeros, advantages: zeros, turnIndex: zeros }
    })
  const trainer = createSupervisedTrainer(model, { schedule: constantSchedule(1e-4), microBatchSize: Number(args.micro) })
  await trainer.step(batch()) // the first step creates the optimizer's moments; count a steady one
  const train = await countKernels(async () => {
    await trainer.step(batch())
  })
  trainer.dispose()

  const rows = Number(args.rows)
  const tokens = Number(args.tokens)
  const session = createSamplingSession(model, { rows, seed: 1 })
  const all = Array.from({ length: rows }, (_, r) => r)
  for (const r of all) session.append(r, Array.from({ length: Number(args.prompt) }, () => rng.int(256)))
  // The first call prefills the prompts; the counted call decodes `tokens` steps from the cache.
  await session.generateAsync(all, { maxNewTokens: 1, eos: null })
  const decode = await countKernels(async () => {
    await session.generateAsync(all, { maxNewTokens: tokens, eos: null })
  })
  const readFloats = await countReadFloats(async () => {
    await session.generateAsync(all, { maxNewTokens: tokens, eos: null })
  })
  session.dispose()
  console.log(
    JSON.stringify({
      bench: "dispatches",
      backend,
      size: args.size,
      nLayers: config.nLayers,
      batch: Number(args.batch),
      seqLen,
      microBatchSize: Number(args.micro),
      trainStep: train.kernels,
      trainStepShapeOnly: train.shapeOnly,
      trainStepScopes: train.scopes,
      trainStepGpuPrograms: train.gpuPrograms,
      decodeRows: rows,
      decodeTokenPerLayer: Number((decode.kernels / tokens / config.nLayers).toFixed(2)),
      decodeTokenShapeOnly: Number((decode.shapeOnly / tokens).toFixed(2)),
      decodeTokenGpuPrograms: decode.gpuPrograms === undefined ? undefined : Number((decode.gpuPrograms / tokens / config.nLayers).toFixed(2)),
      decodeReadFloatsPerToken: readFloats / tokens,
      trainTop: train.top,
      decodeTop: decode.top,
    }),
  )
}

if (import.meta.url === `file://${process.argv[1]}`) await main()
