import * as tf from "@tensorflow/tfjs"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { setBackend } from "../../packages/runtime/src/backend.js"
import { presets, type ModelConfig } from "../../packages/runtime/src/model/config.js"
import { createTransformer, type Transformer } from "../../packages/runtime/src/model/transformer.js"
import { Rng } from "../../packages/core/src/rng.js"
import {
  chooseToken,
  createSamplingSession,
  generateNoCache,
  generateNoCacheAsync,
  SamplingError,
  type DecodeOptions,
} from "../../packages/runtime/src/sampler.js"
import type { TokenizerShape } from "@turnwise/dsl"
import { byteTokenizer } from "../../packages/runtime/src/tokenizer.js"

const config: ModelConfig = { ...presets.tiny, dModel: 32, nLayers: 2, nHeads: 4, nKvHeads: 2, dFf: 48, maxSeqLen: 160, seed: 5 }
const tok = byteTokenizer
const prompt = (text: string) => [tok.bos, ...tok.encode(text)]
const prompts = [prompt("Hi"), prompt("What is 12 * 34? Use code."), prompt("x = 7\nprint(x)")]
const rowsOf = (n: number) => Array.from({ length: n }, (_, i) => i)

/** One letter per id, so any generated sequence is readable text for stop-string tests. */
const letters: TokenizerShape = {
  vocabSize: 259,
  bos: 256,
  eos: 257,
  pad: 258,
  encode: (text) => Array.from(text, (ch) => ch.charCodeAt(0) - 65),
  decode: (ids) => ids.filter((i) => i < 256).map((i) => String.fromCharCode(65 + (i % 26))).join(""),
}

const sessionRun = (model: Transformer, seed: number, options: DecodeOptions, tokenizer: TokenizerShape = tok) => {
  const session = createSamplingSession(model, { rows: prompts.length, seed, tokenizer })
  prompts.forEach((p, i) => session.append(i, p))
  const out = session.generate(rowsOf(prompts.length), options)
  session.dispose()
  return out
}

describe("chooseToken", () => {
  const logits = Float32Array.from([Math.log(0.5), Math.log(0.3), Math.log(0.2)])
  it("reports the full-vocabulary log-probability of the choice", () => {
    const rng = Rng.fromSeed(1)
    for (let i = 0; i < 20; i++) {
      const { token, logprob } = chooseToken(logits, { temperature: 1, topK: 2 }, rng)
      expect(logprob).toBeCloseTo(Math.log([0.5, 0.3, 0.2][token] ?? NaN), 6)
    }
    expect(chooseToken(logits, { temperature: 0 }, rng)).toEqual({ token: 0, logprob: expect.closeTo(Math.log(0.5), 6) })
    const half = chooseToken(logits, { temperature: 0.5 }, Rng.fromSeed(2))
    expect(half.logprob).toBeCloseTo(Math.log(([0.25, 0.09, 0.04][half.token] ?? NaN) / 0.38), 5)
  })

  it("samples in proportion, restricted by top-k and top-p", () => {
    const count = (options: DecodeOptions) => {
      const rng = Rng.fromSeed(3)
      const n = [0, 0, 0]
      for (let i = 0; i < 4000; i++) n[chooseToken(logits, options, rng).token]! += 1
      return n.map((c) => c / 4000)
    }
    const plain = count({ maxNewTokens: 1, temperature: 1 })
    expect(plain[0]).toBeCloseTo(0.5, 1)
    expect(plain[2]).toBeCloseTo(0.2, 1)
    const topK = count({ maxNewTokens: 1, topK: 2 })
    expect(topK[2]).toBe(0)
    expect(topK[0]).toBeCloseTo(0.625, 1)
    const topP = count({ maxNewTokens: 1, topP: 0.75 }) // 0.5 < 0.75 <= 0.8: keeps tokens 0 and 1
    expect(topP[2]).toBe(0)
    expect(count({ maxNewTokens: 1, topP: 0.4 })).toEqual([1, 0, 0])
  })
})

describe.each(["cpu", "wasm"] as const)("sampler on %s", (backend) => {
  let model: Transformer
  beforeAll(async () => {
    await setBackend(backend)
    model = createTransformer(config)
  })
  afterAll(() => model.dispose())

  it("greedy with the cache equals greedy without it, for ragged prompts", () => {
    const options = { maxNewTokens: 24, temperature: 0, eos: null }
    const cached = sessionRun(model, 1, options)
    const plain = generateNoCache(model, prompts, options, 1)
    cached.forEach((out, i) => {
      expect(out.tokens).toEqual(plain[i]?.tokens)
      expect(out.tokens).toHaveLength(24)
      expect(out.finish).toBe("length")
      out.logprobs.forEach((lp, j) => expect(lp).toBeCloseTo(plain[i]?.logprobs[j] ?? NaN, 4))
    })
    expect(new Set(cached.map((o) => o.tokens.join())).size).toBe(3) // rows really differ
  })

  it("the cached inference form equals the reference for a Qwen-like model with trained-looking gains and biases", () => {
    const qwen = createTransformer({ ...config, qkvBias: true, tieEmbeddings: false, ropeTheta: 1e6, seed: 8 })
    // Non-unit norm gains and non-zero biases, so folding them into the projections is exercised.
    for (const [name, v] of qwen.variables) {
      if (name.endsWith("norm.weight") || name.endsWith(".bias")) v.assign(tf.randomUniform(v.shape, 0.3, 1.7, "float32", name.length))
    }
    const options = { maxNewTokens: 16, temperature: 0, eos: null }
    const session = createSamplingSession(qwen, { rows: 3, seed: 1 })
    prompts.forEach((p, i) => session.append(i, p))
    const cached = session.generate(rowsOf(3), options)
    session.dispose()
    const plain = generateNoCache(qwen, prompts, options, 1)
    cached.forEach((out, i) => {
      expect(out.tokens).toEqual(plain[i]?.tokens)
      out.logprobs.forEach((lp, j) => expect(lp).toBeCloseTo(plain[i]?.logprobs[j] ?? NaN, 4))
    })
    qwen.dispose()
  })

  it("is deterministic for a seed, agrees with the reference path, and differs across seeds", () => {
    const options = { maxNewTokens: 20, temperature: 1.2, topK: 50, topP: 0.95, eos: null }
    const a = sessionRun(model, 7, options)
    expect(sessionRun(model, 7, options).map((o) => o.tokens)).toEqual(a.map((o) => o.tokens))
    expect(generateNoCache(model, prompts, options, 7).map((o) => o.tokens)).toEqual(a.map((o) => o.tokens))
    expect(sessionRun(model, 8, options).map((o) => o.tokens)).not.toEqual(a.map((o) => o.tokens))
  })

  it("gives a row the same samples whichever rows run beside it", () => {
    const options = { maxNewTokens: 16, temperature: 1, eos: null }
    const together = sessionRun(model, 9, options)
    const alone = createSamplingSession(model, { rows: 3, seed: 9 })
    alone.append(1, prompts[1] ?? [])
    expect(alone.generate([1], options)[0]?.tokens).toEqual(together[1]?.tokens)
    alone.dispose()
  })

  it("logprobs equal tokenLogprobs recomputed on the whole multi-turn history", () => {
    const temperature = 0.7
    const session = createSamplingSession(model, { rows: 2, seed: 4 })
    session.append(0, prompts[0] ?? [])
    session.append(1, prompts[1] ?? [])
    const generated: Array<Array<{ at: number; logprob: number }>> = [[], []]
    const record = (row: number, start: number, logprobs: ReadonlyArray<number>) =>
      logprobs.forEach((logprob, j) => generated[row]?.push({ at: start + j, logprob }))
    const starts = [session.length(0), session.length(1)]
    session.generate([0, 1], { maxNewTokens: 12, temperature, eos: null }).forEach((o, r) => record(r, starts[r] ?? 0, o.logprobs))
    session.append(0, tok.encode("<output>42</output>"))
    const start2 = session.length(0)
    record(0, start2, session.generate([0], { maxNewTokens: 10, temperature, eos: null })[0]?.logprobs ?? [])
    for (const row of [0, 1]) {
      const history = session.history(row)
      const lp = model.tokenLogprobs(tf.tensor2d([[...history]], [1, history.length], "int32"), temperature).arraySync()[0] ?? []
      for (const { at, logprob } of generated[row] ?? []) expect(lp[at]).toBeCloseTo(logprob, 4)
    }
    session.dispose()
  })

  it("continuing after append equals a fresh session given the whole history at once", () => {
    const greedy = { maxNewTokens: 10, temperature: 0, eos: null }
    const session = createSamplingSession(model, { rows: 3, seed: 2 })
    prompts.forEach((p, i) => session.append(i, p))
    session.generate([0, 1, 2], greedy)
    session.append(2, tok.encode("\nresult: 84"))
    session.append(0, tok.encode("ok"))
    const continued = session.generate([2, 0], greedy)
    const second = session.generate([1], greedy) // row 1 did not move while rows 0 and 2 advanced
    const fresh = createSamplingSession(model, { rows: 3, seed: 2 })
    const historyBefore = (row: number, out: ReadonlyArray<number>) => session.history(row).slice(0, session.length(row) - out.length)
    fresh.append(2, historyBefore(2, continued[0]?.tokens ?? []))
    fresh.append(0, historyBefore(0, continued[1]?.tokens ?? []))
    fresh.append(1, historyBefore(1, second[0]?.tokens ?? []))
    const again = fresh.generate([0, 1, 2], greedy)
    expect(again[2]?.tokens).toEqual(continued[0]?.tokens)
    expect(again[0]?.tokens).toEqual(continued[1]?.tokens)
    expect(again[1]?.tokens).toEqual(second[0]?.tokens)
    again[2]?.logprobs.forEach((lp, j) => expect(lp).toBeCloseTo(continued[0]?.logprobs[j] ?? NaN, 4))
    session.dispose()
    fresh.dispose()
  })

  it("stays exact after the cache compacts slots left empty by idle rows", () => {
    const greedy = { maxNewTokens: 40, temperature: 0, eos: null }
    const session = createSamplingSession(model, { rows: 3, seed: 2 })
    prompts.forEach((p, i) => session.append(i, p))
    for (const r of [0, 1, 2]) session.generate([r], greedy) // each row advances while the others idle
    const last = session.generate([0, 1, 2], { ...greedy, maxNewTokens: 8 })
    const reference = generateNoCache(model, [0, 1, 2].map((r) => session.history(r).slice(0, session.length(r) - 8)), { ...greedy, maxNewTokens: 8 }, 2)
    expect(last.map((o) => o.tokens)).toEqual(reference.map((o) => o.tokens))
    session.dispose()
  })

  it("stops at stop strings (kept in the output), eos, length and the context limit", () => {
    const free = sessionRun(model, 1, { maxNewTokens: 24, temperature: 0, eos: null }, letters)
    const text = free[1]?.text ?? ""
    const stop = text.slice(6, 9)
    const cut = text.indexOf(stop) + stop.length
    const stopped = sessionRun(model, 1, { maxNewTokens: 24, temperature: 0, eos: null, stop: ["ZZZZZZZZ", stop] }, letters)
    expect(stopped[1]).toMatchObject({ finish: "stop", stop, text: text.slice(0, cut) })
    expect(stopped[1]?.tokens).toEqual(free[1]?.tokens.slice(0, cut))

    const eos = free[0]?.tokens[4] ?? -1
    const first = free[0]?.tokens.indexOf(eos) ?? -1
    const ended = sessionRun(model, 1, { maxNewTokens: 24, temperature: 0, eos }, letters)
    expect(ended[0]).toMatchObject({ finish: "eos", tokens: free[0]?.tokens.slice(0, first + 1) })

    const short = createTransformer({ ...config, maxSeqLen: 30 })
    const session = createSamplingSession(short, { rows: 2, seed: 1 })
    session.append(0, prompts[1] ?? []) // 27 tokens: room for 3 more
    session.append(1, prompts[0] ?? [])
    const outs = session.generate([0, 1], { maxNewTokens: 5, temperature: 0, eos: null })
    expect(outs.map((o) => [o.finish, o.tokens.length])).toEqual([
      ["context", 3],
      ["length", 5],
    ])
    expect(generateNoCache(short, [prompts[1] ?? []], { maxNewTokens: 5, temperature: 0, eos: null }, 1)[0]?.tokens).toEqual(outs[0]?.tokens)
    expect(() => session.append(0, [1])).toThrow(SamplingError)
    session.dispose()
    short.dispose()
  })

  it("rejects misuse with SamplingError naming the problem", () => {
    const session = createSamplingSession(model, { rows: 2, seed: 1 })
    expect(() => session.generate([0], { maxNewTokens: 3 })).toThrow(/no context/)
    expect(() => session.append(2, [1])).toThrow(/row 2 is outside/)
    expect(() => session.append(0, [300])).toThrow(/token 300/)
    session.append(0, [tok.bos])
    expect(() => session.generate([0], { maxNewTokens: 3, topP: 0 })).toThrow(/topP must be in \(0, 1\]/)
    expect(() => session.generate([0, 0], { maxNewTokens: 3 })).toThrow(/rows repeat/)
    session.dispose()
    expect(() => session.length(0)).toThrow(/disposed/)
  })

  it("releases every tensor it made", () => {
    const before = tf.memory().numTensors
    sessionRun(model, 3, { maxNewTokens: 6, temperature: 1, eos: null })
    generateNoCache(model, prompts, { maxNewTokens: 3, temperature: 1, eos: null }, 3)
    expect(tf.memory().numTensors).toBe(before)
  })

  it("generateAsync (asynchronous reads, as on webgpu) samples exactly what generate does, over turns", async () => {
    const options = { maxNewTokens: 12, temperature: 1.1, topK: 40, stop: ["</code>"], eos: null }
    const run = async (mode: "sync" | "async") => {
      const session = createSamplingSession(model, { rows: 3, seed: 21 })
      prompts.forEach((p, i) => session.append(i, p))
      const gen = (rows: Array<number>) => (mode === "sync" ? session.generate(rows, options) : session.generateAsync(rows, options))
      const first = await gen([0, 1, 2])
      session.append(1, tok.encode("<output>7</output>"))
      const second = await gen([1, 2])
      const histories = [0, 1, 2].map((r) => session.history(r))
      session.dispose()
      return { outputs: [...first, ...second], histories }
    }
    const sync = await run("sync")
    const viaAsync = await run("async")
    expect(viaAsync).toEqual(sync)
    expect(sync.outputs.map((o) => o.tokens.length).every((n) => n > 0)).toBe(true)
    const noCache = await generateNoCacheAsync(model, prompts, { ...options, stop: [] }, 21)
    expect(noCache.map((o) => o.tokens)).toEqual(generateNoCache(model, prompts, { ...options, stop: [] }, 21).map((o) => o.tokens))
  })

  it("refuses to append or generate while a generateAsync runs, and to go on once disposed", async () => {
    const session = createSamplingSession(model, { rows: 1, seed: 2 })
    session.append(0, prompts[0] ?? [])
    const running = session.generateAsync([0], { maxNewTokens: 4, temperature: 1, eos: null })
    expect(() => session.append(0, [1])).toThrow(/generateAsync of this session is still running/)
    expect(() => session.generate([0], { maxNewTokens: 1 })).toThrow(/still running/)
    await running
    session.append(0, [1]) // idle again
    const disposedMidway = session.generateAsync([0], { maxNewTokens: 4, temperature: 1, eos: null })
    session.dispose()
    await expect(disposedMidway).rejects.toThrow(/disposed while generating/)
  })
})
