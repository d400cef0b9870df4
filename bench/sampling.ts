/**
 * Sampling throughput with and without the KV cache.
 *
 * For each model size, B rows of ragged prompts generate N new tokens (temperature 1,
 * no eos, so every row runs to N): once through a cached session, once through the
 * reference path that recomputes the whole forward pass every token. Prints one JSON
 * line per size: tokens/s of each path and their ratio.
 *
 * The no-cache path at the medium size takes many minutes on a shared 2-core machine,
 * so by default it is measured on 5 of the N steps (at 0, 1/4, 1/2, 3/4 of the way
 * and the last) and the remaining steps are interpolated linearly in between (the
 * cost of one step grows about linearly with the length); `--nocache full` times
 * every step instead. The JSON line says which was used.
 *
 * Reads are asynchronous (`generateAsync`), as the rollout's are, so the bench runs on
 * every backend, webgpu in Node included.
 *
 * Usage: npx tsx bench/sampling.ts [--sizes small,medium,100m] [--batch 16] [--new 128]
 *        [--backend wasm|cpu|tensorflow|tensorflow-gpu|webgpu] [--nocache sampled|full]
 */
import { parseArgs } from "node:util"
import { setBackend, type BackendName } from "../packages/runtime/src/backend.js"
import { parameterCount } from "../packages/runtime/src/model/config.js"
import { createTransformer, type Transformer } from "../packages/runtime/src/model/transformer.js"
import { createSamplingSession, generateNoCacheAsync } from "../packages/runtime/src/sampler.js"
import { byteTokenizer as tok } from "../packages/runtime/src/tokenizer.js"
import { benchSize } from "./sizes.js"

const { values: args } = parseArgs({
  options: {
    sizes: { type: "string", default: "small,medium" },
    batch: { type: "string", default: "16" },
    new: { type: "string", default: "128" },
    backend: { type: "string", default: "wasm" },
    nocache: { type: "string", default: "sampled" },
  },
})
const batch = Number(args.batch)
const newTokens = Number(args.new)
const backend = await setBackend(args.backend as BackendName)

const prompts = Array.from({ length: batch }, (_, i) => [tok.bos, ...tok.encode(`Problem ${i}: compute ${"1234".repeat(1 + (i % 4))} * ${i + 7} with code.\n`)])
const options = { maxNewTokens: newTokens, temperature: 1, eos: null }
const rows = prompts.map((_, i) => i)
const seconds = async (f: () => Promise<unknown>): Promise<number> => {
  const t0 = performance.now()
  await f()
  return (performance.now() - t0) / 1000
}

const cachedRun = async (model: Transformer) => {
  const session = createSamplingSession(model, { rows: batch, seed: 1 })
  prompts.forEach((p, i) => session.append(i, p))
  let histories: Array<Array<number>> = []
  const time = await seconds(async () => {
    const outs = await session.generateAsync(rows, options)
    histories = outs.map((o, i) => [...(prompts[i] ?? []), ...o.tokens])
  })
  session.dispose()
  return { time, histories }
}

/** Seconds for the no-cache path; `sampled` times a few single steps and interpolates. */
const noCacheRun = async (model: Transformer, histories: Array<Array<number>>, mode: string): Promise<number> => {
  if (mode === "full") return seconds(() => generateNoCacheAsync(model, prompts, options, 1))
  const at = [...new Set([0, Math.floor(newTokens / 4), Math.floor(newTokens / 2), Math.floor((3 * newTokens) / 4), newTokens - 1])]
  const cost: Array<number> = []
  for (const k of at) {
    const prefix = histories.map((h, i) => h.slice(0, (prompts[i]?.length ?? 0) + k))
    cost.push(await seconds(() => generateNoCacheAsync(model, prefix, { ...options, maxNewTokens: 1 }, 1)))
  }
  let total = 0
  for (let step = 0; step < newTokens; step++) {
    const j = Math.max(0, at.findIndex((k, i) => step >= k && step <= (at[i + 1] ?? newTokens)))
    const k0 = at[j] ?? 0
    const k1 = at[j + 1] ?? k0
    const c0 = cost[j] ?? 0
    const c1 = cost[j + 1] ?? c0
    total += k1 === k0 ? c0 : c0 + ((c1 - c0) * (step - k0)) / (k1 - k0)
  }
  return total
}

for (const size of String(args.sizes).split(",")) {
  const config = { ...benchSize(size), seed: 0 }
  const model = createTransformer(config)
  // Warm-up: first calls compile wasm kernels and size buffers.
  await generateNoCacheAsync(model, prompts.slice(0, 2), { ...options, maxNewTokens: 2 }, 0)
  const warm = createSamplingSession(model, { rows: batch, seed: 0 })
  prompts.forEach((p, i) => warm.append(i, p))
  await warm.generateAsync(rows, { ...options, maxNewTokens: 4 })
  warm.dispose()

  const cached = await cachedRun(model)
  const noCache = await noCacheRun(model, cached.histories, String(args.nocache))
  const generated = batch * newTokens
  console.log(
    JSON.stringify({
      bench: "sampling",
      size,
      params: parameterCount(config),
      backend,
      batch,
      newTokens,
      promptTokensMean: prompts.reduce((s, p) => s + p.length, 0) / batch,
      cacheTokensPerSec: Math.round(generated / cached.time),
      noCacheTokensPerSec: Number((generated / noCache).toFixed(1)),
      ratio: Number((noCache / cached.time).toFixed(1)),
      cacheSeconds: Number(cached.time.toFixed(2)),
      noCacheSeconds: Number(noCache.toFixed(2)),
      noCacheMethod: args.nocache === "full" ? "measured every step" : "5 steps measured, rest interpolated",
    }),
  )
  model.dispose()
}
