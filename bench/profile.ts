/**
 * Where one training step's time goes: a per-kernel profile (tf.profile) of the RL
 * trainer's own step (createTrainer with the default clipped-surrogate policy loss:
 * forward, backward, micro-batch accumulation, clipping, AdamW) on random sequences.
 *
 * One warm-up step runs first (kernel set-up, first allocations), then `--plain`
 * unprofiled steps are timed (the step's wall time without the profiler), then
 * `--steps` steps are profiled; figures are per step, averaged over the profiled steps.
 *
 * What a kernel's time is: tf.profile records every registered kernel call with its
 * input and output shapes and `kernelTimeMs`, which on wasm and cpu is the wall time
 * around the kernel's synchronous call (on GPU backends it is device time). Entries
 * that are not registered kernels (customGrad forwards, which wrap kernels already
 * counted) are left out. The step's wall time minus the kernels' sum is JS overhead:
 * op dispatch, the gradient tape, tensor bookkeeping, reads back to JS, GC.
 *
 * Matrix products (BatchMatMul, MatMul, _FusedMatMul) are also grouped by shape class
 * (attention products by which of QKᵀ / PV / dK / dV shape they have; linear layers by
 * whether the contraction runs over the micro-batch's tokens, i.e. a weight gradient)
 * and by exact shape, with achieved GFLOP/s = 2·batch·M·K·N / time. The classes are
 * read from the shapes and the model's dimensions, so a dimension equal to the
 * micro-batch's token count can be mislabelled.
 *
 * Usage: npx tsx bench/profile.ts [--size medium] [--backend wasm] [--batch 8]
 *        [--seq 128] [--micro 4] [--steps 1] [--plain 1] [--ceiling GFLOPS]
 *        [--attention auto|batched|split[,...]]
 * `--attention` profiles once per listed mode of attention's products, in order, in
 * this one process (packages/runtime/src/model/batched-matmul.ts; `batched` is the
 * path before the split, `auto` the default); every output line names its mode.
 * `--ceiling` (e.g. the sgemm figure of ../shared/tools/sgemm-peak.py) adds each matmul
 * line's fraction of it. The defaults match bench/training.ts as bench/run-all.ts runs
 * it. At medium on wasm a run takes about 18 s on the 2-core development machine
 * (`--steps 2`, four trainer steps in all); `npm run bench` runs it at medium and keeps
 * the step, kernel (≥1% of the step) and matmul-class lines.
 * Prints JSON lines: one `step` summary, then `kernel`, `matmul-class` and
 * `matmul-shape` lines, each sorted by time.
 */
import * as tf from "@tensorflow/tfjs"
import { getThreadsCount } from "@tensorflow/tfjs-backend-wasm"
import { defaultPolicyLossOptions, policyLoss, type TrainingSequence } from "@turnwise/core"
import { parseArgs } from "node:util"
import { setBackend, type BackendName } from "../packages/runtime/src/backend.js"
import { attentionMatMulMode, setAttentionMatMulMode, type AttentionMatMulMode } from "../packages/runtime/src/model/batched-matmul.js"
import type { ModelConfig } from "../packages/runtime/src/model/config.js"
import { createTransformer } from "../packages/runtime/src/model/transformer.js"
import { Rng } from "../packages/core/src/rng.js"
import { planMicroBatches } from "../packages/runtime/src/train/batching.js"
import { constantSchedule } from "../packages/runtime/src/train/schedule.js"
import { createTrainer } from "../packages/runtime/src/train/trainer.js"
import { benchSize } from "./sizes.js"

/** Kernels whose FLOPs are counted as matrix products. */
const matmulKernels = new Set(["BatchMatMul", "MatMul", "_FusedMatMul"])

/** A matrix product's dimensions: out [batch, M, N] = a [batch, M, K] · b [batch, K, N]. */
export interface MatmulDims {
  readonly batch: number
  readonly m: number
  readonly k: number
  readonly n: number
}

/**
 * The dimensions of a matmul kernel call from its first input's and its output's shape
 * (transpose attributes are not recorded, so K is a's size over M).
 *
 * @example
 * matmulDims([8, 384, 64], [8, 384, 128]) // { batch: 8, m: 384, k: 64, n: 128 }
 */
export const matmulDims = (aShape: ReadonlyArray<number>, outShape: ReadonlyArray<number>): MatmulDims => {
  const m = outShape.at(-2) ?? 1
  const n = outShape.at(-1) ?? 1
  const batch = outShape.slice(0, -2).reduce((x, y) => x * y, 1)
  const k = ((aShape.at(-1) ?? 1) * (aShape.at(-2) ?? 1)) / m
  return { batch, m, k, n }
}

/** The dimensions the shape classes are read against. */
export interface ClassDims {
  /** Sequence length T. */
  readonly seqLen: number
  /** Head width Dh. */
  readonly dHead: number
  /** Query rows per kv head, G·T (G = nHeads / nKvHeads). */
  readonly queryRows: number
  /** Rows (B·T) of the micro-batches: a contraction over these is a weight gradient. */
  readonly tokenRows: ReadonlySet<number>
}

/**
 * The shape class of a matmul call. Attention runs as [B·Hkv, G·T, ·] batched products;
 * its backward pass has the forward's two shapes again (dP = dY·Vᵀ has the scores'
 * shape, dQ = dS·K the values') plus dK and dV. On wasm they run split into B·Hkv
 * 2-D products (packages/runtime/src/model/batched-matmul.ts): batch-1 calls with an
 * attention shape (G·T rows, or a contraction over G·T) get the same classes.
 *
 * @example
 * matmulClass({ batch: 1, m: 1024, k: 512, n: 384 }, { seqLen: 128, dHead: 64, queryRows: 384, tokenRows: new Set([512]) }) // "linear dW (over tokens)"
 * matmulClass({ batch: 1, m: 384, k: 64, n: 128 }, { seqLen: 128, dHead: 64, queryRows: 384, tokenRows: new Set([512]) }) // "attention scores (QKᵀ, dP)"
 */
export const matmulClass = (d: MatmulDims, c: ClassDims): string => {
  const attention = d.batch > 1 || d.m === c.queryRows || d.k === c.queryRows
  if (attention) {
    if (d.k === c.dHead && d.n === c.seqLen) return "attention scores (QKᵀ, dP)"
    if (d.k === c.seqLen && d.n === c.dHead) return "attention values (PV, dQ)"
    if (d.m === c.dHead && d.n === c.seqLen) return "attention dK"
    if (d.m === c.seqLen && d.n === c.dHead) return "attention dV"
    if (d.batch > 1) return "batched (other)"
  }
  if (c.tokenRows.has(d.k)) return "linear dW (over tokens)"
  if (c.tokenRows.has(d.m)) return "linear (x·Wᵀ, dX)"
  return "matmul (other)"
}

/** Time, calls and FLOPs summed over a group of kernel calls. */
interface Tally {
  ms: number
  count: number
  flops: number
}

const addTo = <K>(map: Map<K, Tally>, key: K, ms: number, flops: number): void => {
  const t = map.get(key) ?? { ms: 0, count: 0, flops: 0 }
  t.ms += ms
  t.count += 1
  t.flops += flops
  map.set(key, t)
}

const round = (x: number, digits: number): number => Number(x.toFixed(digits))

const main = async (): Promise<void> => {
  const { values: args } = parseArgs({
    options: {
      size: { type: "string", default: "medium" },
      backend: { type: "string", default: "wasm" },
      batch: { type: "string", default: "8" },
      seq: { type: "string", default: "128" },
      micro: { type: "string", default: "4" },
      steps: { type: "string", default: "1" },
      plain: { type: "string", default: "1" },
      ceiling: { type: "string" },
      attention: { type: "string" },
    },
  })
  const sizeName = args.size ?? "medium"
  const batchSize = Number(args.batch)
  const micro = Number(args.micro)
  const steps = Math.max(1, Number(args.steps))
  const plainSteps = Math.max(0, Number(args.plain))
  const ceiling = args.ceiling === undefined ? null : Number(args.ceiling)
  const attentionModes = (args.attention ?? attentionMatMulMode()).split(",") as Array<AttentionMatMulMode>
  const backend = await setBackend(args.backend as BackendName)

  const config: ModelConfig = benchSize(sizeName)
  // One profile per attention-product mode, in the order given, in this one process.
  for (const attention of attentionModes) {
    setAttentionMatMulMode(attention)
    const model = createTransformer({ ...config, seed: 1 })
    const params = [...model.variables.values()].reduce((n, v) => n + v.size, 0)
    const seqLen = Math.min(Number(args.seq), model.maxSeqLen)
    const rng = Rng.fromSeed(1)
    const uniformLogprob = -Math.log(model.vocabSize)
    const makeBatch = (): Array<TrainingSequence> =>
      Array.from({ length: batchSize }, () => {
        const tokens = Array.from({ length: seqLen }, () => rng.int(model.vocabSize))
        const advantage = rng.int(2) === 0 ? -1 : 1
        return {
          tokens,
          mask: tokens.map((_, k) => (k === 0 ? 0 : 1)),
          oldLogprobs: tokens.map((_, k) => (k === 0 ? 0 : uniformLogprob)),
          advantages: tokens.map((_, k) => (k === 0 ? 0 : advantage)),
          turnIndex: tokens.map((_, k) => (k === 0 ? -1 : 0)),
        }
      })
    const trainer = createTrainer(model, {
      loss: (inputs) => policyLoss(inputs, defaultPolicyLossOptions),
      schedule: constantSchedule(1e-5),
      microBatchSize: micro,
    })
    const groups = planMicroBatches(Array.from({ length: batchSize }, () => seqLen), { maxSequences: micro })
    const classDims: ClassDims = {
      seqLen,
      dHead: config.dModel / config.nHeads,
      queryRows: (config.nHeads / config.nKvHeads) * seqLen,
      tokenRows: new Set(groups.map((g) => g.length * seqLen)),
    }

    let started = performance.now()
    await trainer.step(makeBatch())
    const warmupMs = performance.now() - started

    let plainMs = 0
    for (let i = 0; i < plainSteps; i++) {
      const batch = makeBatch()
      started = performance.now()
      await trainer.step(batch)
      plainMs += performance.now() - started
    }

    const byKernel = new Map<string, Tally>()
    const byClass = new Map<string, Tally>()
    const byShape = new Map<string, Tally & { readonly kernel: string; readonly cls: string; readonly dims: MatmulDims }>()
    let stepMs = 0
    let scopeEntries = 0
    let timingErrors = 0
    for (let i = 0; i < steps; i++) {
      const batch = makeBatch()
      let wall = 0
      const info = await tf.profile(async () => {
        const t0 = performance.now()
        await trainer.step(batch)
        wall = performance.now() - t0
      })
      stepMs += wall
      for (const entry of info.kernels) {
        // customGrad forwards appear under their scope's name and wrap kernels counted on their own.
        if (tf.getKernel(entry.name, tf.getBackend()) === undefined) {
          scopeEntries += 1
          continue
        }
        const time = await entry.kernelTimeMs
        if (typeof time !== "number") {
          timingErrors += 1
          continue
        }
        if (!matmulKernels.has(entry.name)) {
          addTo(byKernel, entry.name, time, 0)
          continue
        }
        const dims = matmulDims(entry.inputShapes[0] ?? [], entry.outputShapes[0] ?? [])
        const flops = 2 * dims.batch * dims.m * dims.k * dims.n
        const cls = matmulClass(dims, classDims)
        addTo(byKernel, entry.name, time, flops)
        addTo(byClass, `${entry.name}\u0000${cls}`, time, flops)
        const key = `${entry.name} ${dims.batch}x${dims.m}x${dims.k}x${dims.n}`
        const shape = byShape.get(key) ?? { kernel: entry.name, cls, dims, ms: 0, count: 0, flops: 0 }
        shape.ms += time
        shape.count += 1
        shape.flops += flops
        byShape.set(key, shape)
      }
    }
    trainer.dispose()
    model.dispose()

    // Per-step figures: everything summed over `steps` profiled steps is divided by it.
    const perStep = (t: Tally) => {
      const ms = t.ms / steps
      const gflops = t.flops > 0 && t.ms > 0 ? t.flops / (t.ms / 1000) / 1e9 : null
      return {
        ms: round(ms, 1),
        share: round(ms / (stepMs / steps), 4),
        count: round(t.count / steps, 1),
        ...(t.flops > 0 ? { gflop: round(t.flops / steps / 1e9, 3), gflopPerSecond: gflops === null ? null : round(gflops, 2) } : {}),
        ...(t.flops > 0 && ceiling !== null && gflops !== null ? { fractionOfCeiling: round(gflops / ceiling, 4) } : {}),
      }
    }
    const kernelMs = [...byKernel.values()].reduce((s, t) => s + t.ms, 0) / steps
    const matmul = [...byClass.values()].reduce((s, t) => ({ ms: s.ms + t.ms, count: s.count + t.count, flops: s.flops + t.flops }), {
      ms: 0,
      count: 0,
      flops: 0,
    })
    const tokens = batchSize * seqLen
    const modelFlops = 6 * params * tokens + 12 * config.nLayers * config.dModel * seqLen * tokens
    const meanStep = stepMs / steps
    console.log(
      JSON.stringify({
        bench: "profile",
        kind: "step",
        attention,
        size: sizeName,
        backend,
        ...(backend === "wasm" ? { wasmThreads: getThreadsCount() } : {}),
        params,
        batch: batchSize,
        seqLen,
        microBatchSize: micro,
        microBatches: groups.length,
        profiledSteps: steps,
        warmupMs: round(warmupMs, 0),
        plainStepMs: plainSteps > 0 ? round(plainMs / plainSteps, 0) : null,
        stepMs: round(meanStep, 0),
        kernelMs: round(kernelMs, 0),
        kernelFraction: round(kernelMs / meanStep, 4),
        otherMs: round(meanStep - kernelMs, 0),
        kernelCalls: round([...byKernel.values()].reduce((s, t) => s + t.count, 0) / steps, 0),
        matmulShare: round(matmul.ms / steps / meanStep, 4),
        matmulGflopPerSecond: matmul.ms > 0 ? round(matmul.flops / (matmul.ms / 1000) / 1e9, 2) : null,
        modelGflop: round(modelFlops / 1e9, 2),
        stepGflopPerSecond: round(modelFlops / (meanStep / 1000) / 1e9, 2),
        plainStepGflopPerSecond: plainSteps > 0 ? round(modelFlops / (plainMs / plainSteps / 1000) / 1e9, 2) : null,
        ...(ceiling === null ? {} : { ceilingGflops: ceiling }),
        scopeEntries: scopeEntries / steps,
        timingErrors,
      }),
    )
    const sorted = <V extends Tally>(map: Map<string, V>) => [...map.entries()].sort((a, b) => b[1].ms - a[1].ms)
    for (const [name, t] of sorted(byKernel)) console.log(JSON.stringify({ bench: "profile", kind: "kernel", attention, name, ...perStep(t) }))
    for (const [key, t] of sorted(byClass)) {
      const [kernel, cls] = key.split("\u0000")
      console.log(JSON.stringify({ bench: "profile", kind: "matmul-class", attention, kernel, class: cls, ...perStep(t) }))
    }
    for (const [, t] of sorted(byShape)) {
      const { batch, m, k, n } = t.dims
      console.log(
        JSON.stringify({
          bench: "profile",
          kind: "matmul-shape",
          attention,
          kernel: t.kernel,
          class: t.cls,
          batch,
          m,
          k,
          n,
          msPerCall: round(t.ms / t.count, 2),
          ...perStep(t),
        }),
      )
    }
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await main()
