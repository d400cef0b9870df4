/**
 * Batched, KV-cached sampling for multi-turn rollouts.
 *
 * A {@link KvCacheSession} holds B rows (one trajectory each) and a key/value cache
 * shared by the batch. Each row's history grows independently: `append` adds context
 * (prompt, tool feedback) and `generate` samples continuations for the rows it is
 * given. Tokens are fed to the model lazily: the next `generate` prefills only the
 * tokens the cache has not seen, so a trajectory is never re-encoded from scratch.
 *
 * How ragged rows share one cache: every forward step appends T slots (the longest
 * pending chunk) for all B rows; a slot is valid for a row only if that row fed a
 * real token into it. An additive mask hides invalid slots and future tokens, and
 * each row's rotary positions count its own valid tokens, so a row computes exactly
 * what it would alone. Rows not taking part in a step still ride along in the batch
 * (their queries are padding); when most slots are invalid the cache is compacted.
 *
 * Logprobs. `logprobs[i]` is log softmax(logits / temperature)[token i] over the
 * full vocabulary, before top-k / top-p truncation, so the trainer recomputes it
 * exactly with `model.tokenLogprobs(tokens, temperature)`. With temperature 0
 * (greedy) it is the logprob under temperature 1.
 *
 * Randomness: each row draws from its own generator forked from the session seed,
 * so a row's samples depend only on the seed, its row index and its own history.
 *
 * Weights: a session samples from a snapshot taken when it is created (see
 * ./model/inference.ts); open a new session after a training step.
 *
 * Reading back: each decoding loop is written once, as a generator that yields the one
 * tensor each forward step must read and receives its values. `generate` drives it
 * with synchronous reads; `generateAsync` with asynchronous ones, which is the only
 * read the webgpu backend offers in Node (its `dataSync` needs OffscreenCanvas). The
 * rollout uses `generateAsync`, so it runs on every backend.
 *
 * Where tokens are chosen: on the host, from the step's logits ([B, V] read back), by
 * {@link chooseToken}. When a session runs the webgpu decode (weights packed for it)
 * and neither top-k nor top-p is set, a shader samples instead
 * (./model/kernels/sample-token.ts) and the loop reads [B, 2] (token, logprob per row):
 * the host draws each generating row's uniform from that row's generator, exactly the
 * draw `chooseToken` would take (none when greedy), and hands the draws to the shader.
 * With top-k or top-p, and on every other backend, the logits are read and sampled
 * on the host. The device computes each token's probability in float32 where the host
 * uses float64 (the device's sums are exact integers), so the two can choose different
 * tokens only when a draw falls within float32 rounding of a boundary of the cumulative
 * distribution (about 1 draw in 2000 on random logits over 32k or 152k tokens); logprobs
 * agree to about 1e-5. The uncached reference ({@link generateNoCache}) always samples
 * on the host.
 *
 * @category models
 */
import * as tf from "@tensorflow/tfjs"
import { Data } from "effect"
import { type DecodeCache, decodeStep, type InferenceWeights, prepareInference } from "./model/inference.js"
import { fusedSampleToken } from "./model/kernels/sample-token.js"
import { MASKED, type Transformer } from "./model/transformer.js"
import { Rng } from "@turnwise/core"
import type { TokenizerShape } from "@turnwise/dsl"
import { byteTokenizer } from "./tokenizer.js"
import { fusedKernelsActive } from "./webgpu/program.js"

/**
 * A sampling request or session use broke a rule.
 *
 * @example
 * throw new SamplingError({ where: "row 3", problem: "no context: append a prompt first" })
 */
export class SamplingError extends Data.TaggedError("SamplingError")<{
  readonly where: string
  readonly problem: string
}> {
  override get message(): string {
    return `sampler: ${this.problem} (at ${this.where})`
  }
}

/** Options of one `generate` call. */
export interface DecodeOptions {
  /** Most tokens to generate per row in this call. */
  readonly maxNewTokens: number
  /** Softmax temperature; 0 means greedy (default 1). */
  readonly temperature?: number
  /** Nucleus sampling mass in (0, 1] (default 1: off). */
  readonly topP?: number
  /** Keep only the k most likely tokens (default 0: off). */
  readonly topK?: number
  /** Stop once the generated text contains one of these; the stop string stays in the output. */
  readonly stop?: ReadonlyArray<string>
  /** End-of-sequence id (default the tokenizer's eos; null disables). */
  readonly eos?: number | null
}

/** Why a row stopped generating. */
export type DecodeFinish = "stop" | "eos" | "length" | "context"

/** What one row produced in one `generate` call. */
export interface DecodedRow {
  /** Sampled token ids, including a final stop string's or eos token. */
  readonly tokens: ReadonlyArray<number>
  /** log p(token) under softmax(logits / temperature) over the full vocabulary. */
  readonly logprobs: ReadonlyArray<number>
  /** Decoded text of `tokens`. */
  readonly text: string
  readonly finish: DecodeFinish
  /** The stop string that ended the row, when finish is "stop". */
  readonly stop?: string
}

/** Options of {@link createSamplingSession}. */
export interface SessionOptions {
  /** Number of rows (trajectories) in the batch. */
  readonly rows: number
  /** Seed of the per-row generators. */
  readonly seed: number
  /** Tokenizer for stop strings and text (default the byte tokenizer). */
  readonly tokenizer?: TokenizerShape
}

/** A batch of growing token histories sharing a KV cache. See the module header. */
export interface KvCacheSession {
  /** Add context tokens to a row (fed lazily at the next generate). */
  append(row: number, tokens: ReadonlyArray<number>): void
  /** Sample continuations for `rows`, in that order; other rows do not advance. */
  generate(rows: ReadonlyArray<number>, options: DecodeOptions): Array<DecodedRow>
  /**
   * `generate` with asynchronous reads of the logits (needed on webgpu in Node). One
   * call at a time: appending or generating while it runs is an error.
   */
  generateAsync(rows: ReadonlyArray<number>, options: DecodeOptions): Promise<Array<DecodedRow>>
  /** Number of tokens in a row's history. */
  length(row: number): number
  /** A row's whole history (context and generated tokens). */
  history(row: number): ReadonlyArray<number>
  /** Free the cache and the weight snapshot. */
  dispose(): void
}

/**
 * A decoding loop: yields the tensor each step reads back (logits [B, V], or sampled
 * [token, logprob] pairs [B, 2]), receives its values, returns the result.
 */
type DecodeLoop<A> = Generator<tf.Tensor, A, Float32Array>

/** Run a loop reading each step's tensor synchronously (the reader disposes it). */
const runSync = <A>(loop: DecodeLoop<A>): A => {
  for (let step = loop.next();;) {
    if (step.done === true) return step.value
    const logits = step.value
    let values: Float32Array
    try {
      values = logits.dataSync<"float32">()
    } finally {
      logits.dispose()
    }
    step = loop.next(values)
  }
}

/** Run a loop reading each step's tensor asynchronously (the reader disposes it). */
const runAsync = async <A>(loop: DecodeLoop<A>): Promise<A> => {
  for (let step = loop.next();;) {
    if (step.done === true) return step.value
    const logits = step.value
    let values: Float32Array
    try {
      values = (await logits.data()) as Float32Array
    } finally {
      logits.dispose()
    }
    step = loop.next(values)
  }
}

/** Per-row generators, forked from the seed in row order (shared by both sampling paths). */
const rowRngs = (seed: number, rows: number): Array<Rng> => {
  const root = Rng.fromSeed(seed)
  return Array.from({ length: rows }, () => root.fork())
}

/** A sampled token and its full-vocabulary logprob. */
interface Choice {
  readonly token: number
  readonly logprob: number
}

/**
 * Whether a session's tokens are sampled on the device: its weights are packed for the
 * webgpu decode, which is active, and neither top-k nor top-p truncates (see the module header).
 */
const samplesOnDevice = (weights: InferenceWeights, options: DecodeOptions, vocabSize: number): boolean => {
  const topK = options.topK ?? 0
  return weights.form.kind === "packed" && fusedKernelsActive() && !(topK > 0 && topK < vocabSize) && (options.topP ?? 1) >= 1
}

/**
 * Choose a token from one row of logits; returns it and its full-vocabulary logprob
 * (see the module header). Consumes one draw from `rng` unless greedy; any source of
 * uniform draws in [0, 1) will do (tests hand it a fixed draw).
 *
 * @example
 * chooseToken(Float32Array.from([0, 2, 1]), { temperature: 0 }, rng) // { token: 1, logprob: -0.41 }
 */
export const chooseToken = (
  logits: Float32Array,
  options: Pick<DecodeOptions, "temperature" | "topP" | "topK">,
  rng: Pick<Rng, "next">,
): { token: number; logprob: number } => {
  const temperature = options.temperature ?? 1
  const scale = temperature > 0 ? 1 / temperature : 1
  const V = logits.length
  let max = -Infinity
  let argmax = 0
  for (let i = 0; i < V; i++) {
    const z = (logits[i] ?? 0) * scale
    if (z > max) {
      max = z
      argmax = i
    }
  }
  const probs = new Float64Array(V)
  let sum = 0
  for (let i = 0; i < V; i++) {
    const p = Math.exp((logits[i] ?? 0) * scale - max)
    probs[i] = p
    sum += p
  }
  const logZ = max + Math.log(sum)
  const logprobOf = (token: number) => (logits[token] ?? 0) * scale - logZ
  if (temperature <= 0) return { token: argmax, logprob: logprobOf(argmax) }

  const topK = options.topK ?? 0
  const topP = options.topP ?? 1
  let candidates: Array<number>
  if ((topK > 0 && topK < V) || topP < 1) {
    candidates = Array.from({ length: V }, (_, i) => i).sort((a, b) => (probs[b] ?? 0) - (probs[a] ?? 0) || a - b)
    if (topK > 0 && topK < V) candidates = candidates.slice(0, topK)
    if (topP < 1) {
      // Smallest prefix of the (top-k) candidates holding at least topP of the full mass.
      let mass = 0
      let keep = 0
      while (keep < candidates.length && mass < topP * sum) mass += probs[candidates[keep++] ?? 0] ?? 0
      candidates = candidates.slice(0, Math.max(1, keep))
    }
  } else {
    candidates = Array.from({ length: V }, (_, i) => i)
  }
  let total = 0
  for (const c of candidates) total += probs[c] ?? 0
  let u = rng.next() * total
  let token = candidates[candidates.length - 1] ?? argmax
  for (const c of candidates) {
    u -= probs[c] ?? 0
    if (u < 0) {
      token = c
      break
    }
  }
  return { token, logprob: logprobOf(token) }
}

/** One row's output under construction, with the stopping rules. */
class RowOutput {
  readonly tokens: Array<number> = []
  readonly logprobs: Array<number> = []
  finish: DecodeFinish | undefined
  stop: string | undefined

  constructor(
    private readonly options: DecodeOptions,
    private readonly tokenizer: TokenizerShape,
  ) {
    if (options.maxNewTokens <= 0) this.finish = "length"
  }

  push(token: number, logprob: number): void {
    this.tokens.push(token)
    this.logprobs.push(logprob)
    const eos = this.options.eos === undefined ? this.tokenizer.eos : this.options.eos
    if (eos !== null && token === eos) {
      this.finish = "eos"
      return
    }
    const stops = this.options.stop ?? []
    if (stops.length > 0) {
      const text = this.tokenizer.decode(this.tokens)
      const hit = stops.find((s) => s.length > 0 && text.includes(s))
      if (hit !== undefined) {
        this.finish = "stop"
        this.stop = hit
        return
      }
    }
    if (this.tokens.length >= this.options.maxNewTokens) this.finish = "length"
  }

  result(): DecodedRow {
    const base = {
      tokens: this.tokens,
      logprobs: this.logprobs,
      text: this.tokenizer.decode(this.tokens),
      finish: this.finish ?? "length",
    }
    return this.stop === undefined ? base : { ...base, stop: this.stop }
  }
}

const checkOptions = (o: DecodeOptions): void => {
  const problems: Array<string> = []
  if (!Number.isInteger(o.maxNewTokens) || o.maxNewTokens < 0) problems.push(`maxNewTokens must be a non-negative integer, got ${o.maxNewTokens}`)
  if (o.temperature !== undefined && !(o.temperature >= 0)) problems.push(`temperature must be >= 0, got ${o.temperature}`)
  if (o.topP !== undefined && !(o.topP > 0 && o.topP <= 1)) problems.push(`topP must be in (0, 1], got ${o.topP}`)
  if (o.topK !== undefined && !(Number.isInteger(o.topK) && o.topK >= 0)) problems.push(`topK must be a non-negative integer, got ${o.topK}`)
  if (problems.length > 0) throw new SamplingError({ where: "generate options", problem: problems.join("; ") })
}

const checkTokens = (tokens: ReadonlyArray<number>, vocabSize: number, where: string): void => {
  for (const t of tokens) {
    if (!Number.isInteger(t) || t < 0 || t >= vocabSize) {
      throw new SamplingError({ where, problem: `token ${t} is not an id in [0, ${vocabSize})` })
    }
  }
}

/**
 * Open a sampling session over a snapshot of the model's current weights.
 *
 * @example
 * const session = createSamplingSession(model, { rows: 2, seed: 7 })
 * session.append(0, [tok.bos, ...tok.encode("Q: 2+3?\n")])
 * session.append(1, [tok.bos, ...tok.encode("Q: 9*9?\n")])
 * const [a, b] = session.generate([0, 1], { maxNewTokens: 64, temperature: 0.8, stop: ["</code>"] })
 * session.append(0, tok.encode("<output>5</output>"))   // tool feedback
 * const [a2] = session.generate([0], { maxNewTokens: 64 }) // prefills only the feedback
 * session.dispose()
 */
export const createSamplingSession = (model: Transformer, options: SessionOptions): KvCacheSession => {
  const B = options.rows
  if (!Number.isInteger(B) || B <= 0) throw new SamplingError({ where: "createSamplingSession", problem: `rows must be a positive integer, got ${B}` })
  const tokenizer = options.tokenizer ?? byteTokenizer
  const rngs = rowRngs(options.seed, B)
  const weights = prepareInference(model)
  const histories: Array<Array<number>> = Array.from({ length: B }, () => [])
  const fed = new Array<number>(B).fill(0) // tokens of each row already in the cache
  let valid: Array<Array<boolean>> = Array.from({ length: B }, () => []) // [B][S]: slot holds a real token of the row
  let cache: DecodeCache | undefined
  let disposed = false
  // An asynchronous generate in flight owns the histories and the cache until it ends.
  let busy = false

  const checkRow = (row: number, fn: string): void => {
    if (disposed) throw new SamplingError({ where: fn, problem: "session was disposed" })
    if (!Number.isInteger(row) || row < 0 || row >= B) throw new SamplingError({ where: fn, problem: `row ${row} is outside [0, ${B})` })
  }

  const checkIdle = (fn: string): void => {
    if (busy) throw new SamplingError({ where: fn, problem: "a generateAsync of this session is still running" })
  }

  const setCache = (next: DecodeCache): void => {
    cache?.dispose()
    cache = next
  }

  /** Drop slots that no row uses, once they are the majority (gather along the slot axis). */
  const maybeCompact = (): void => {
    const S = valid[0]?.length ?? 0
    const kept = valid.map((slots) => slots.flatMap((ok, s) => (ok ? [s] : [])))
    const width = Math.max(1, ...kept.map((k) => k.length))
    if (cache === undefined || S < 64 || width * 2 > S) return
    const index = new Int32Array(B * width)
    kept.forEach((slots, b) => slots.forEach((s, j) => (index[b * width + j] = s)))
    setCache(cache.compact(index, width))
    valid = kept.map((slots) => Array.from({ length: width }, (_, j) => j < slots.length))
  }

  /** Feed every pending token of `rows` in one forward step; returns every row's next-token logits ([B, V]). */
  const feed = (rows: ReadonlyArray<number>): tf.Tensor2D => {
    const pending = new Map<number, Array<number>>()
    for (const r of rows) pending.set(r, histories[r]?.slice(fed[r]) ?? [])
    const T = Math.max(...[...pending.values()].map((p) => p.length))
    const S0 = valid[0]?.length ?? 0
    const S = S0 + T
    const tokens = new Int32Array(B * T).fill(tokenizer.pad)
    const positions = new Int32Array(B * T)
    const pick = new Int32Array(B)
    const mask = new Float32Array(B * T * S).fill(MASKED) // [B, T, S]
    for (let b = 0; b < B; b++) {
      const chunk = pending.get(b) ?? []
      const base = fed[b] ?? 0
      pick[b] = Math.max(0, chunk.length - 1)
      const rowValid = valid[b] ?? []
      for (let t = 0; t < T; t++) {
        tokens[b * T + t] = chunk[t] ?? tokenizer.pad
        positions[b * T + t] = base + t
        const m = (b * T + t) * S
        for (let s = 0; s < S0; s++) if (rowValid[s] === true) mask[m + s] = 0
        for (let u = 0; u <= t; u++) if (u < chunk.length) mask[m + S0 + u] = 0
      }
      for (let t = 0; t < T; t++) rowValid.push(t < chunk.length)
      fed[b] = base + chunk.length
    }
    const input = tf.tensor2d(tokens, [B, T], "int32") // [B, T]
    const out = decodeStep(model, weights, input, positions, mask, pick, cache)
    input.dispose()
    setCache(out.cache)
    return out.logits
  }

  /** Read a step's tensor back (the driver disposes it); the session must survive the wait. */
  function* readBack(t: tf.Tensor): DecodeLoop<Float32Array> {
    const values = yield t
    if (disposed) throw new SamplingError({ where: "generate", problem: "session was disposed while generating" })
    return values
  }

  /** Choose the tokens of `rows` on the host from the logits read back. */
  function* chooseOnHost(logits: tf.Tensor2D, rows: ReadonlyArray<number>, options: DecodeOptions): DecodeLoop<Map<number, Choice>> {
    const all = yield* readBack(logits) // [B, V]
    const V = model.vocabSize
    const chosen = new Map<number, Choice>()
    for (const r of rows) {
      const rng = rngs[r]
      if (rng !== undefined) chosen.set(r, chooseToken(all.subarray(r * V, (r + 1) * V), options, rng))
    }
    return chosen
  }

  /** Sample the tokens of `rows` on the device (see the module header); only [B, 2] is read back. */
  function* chooseOnDevice(logits: tf.Tensor2D, rows: ReadonlyArray<number>, options: DecodeOptions): DecodeLoop<Map<number, Choice>> {
    const temperature = options.temperature ?? 1
    // Rows not generating keep their generators untouched (their draw stays 0 and their pick is ignored).
    const draws = new Array<number>(B).fill(0)
    if (temperature > 0) { for (const r of rows) draws[r] = rngs[r]?.next() ?? 0 }
    let picked: tf.Tensor2D
    try {
      picked = fusedSampleToken(logits, draws, temperature) // [B, 2]
    } finally {
      logits.dispose()
    }
    const pairs = yield* readBack(picked) // [B, 2]
    const chosen = new Map<number, Choice>()
    for (const r of rows) {
      const token = pairs[2 * r] ?? NaN
      if (!Number.isInteger(token) || token < 0 || token >= model.vocabSize) {
        throw new SamplingError({ where: `generate row ${r}`, problem: `the device sampler returned ${token}, not a token id in [0, ${model.vocabSize})` })
      }
      chosen.set(r, { token, logprob: pairs[2 * r + 1] ?? NaN })
    }
    return chosen
  }

  function* decode(rows: ReadonlyArray<number>, generateOptions: DecodeOptions): DecodeLoop<Array<DecodedRow>> {
    checkOptions(generateOptions)
    rows.forEach((r) => checkRow(r, "generate"))
    if (new Set(rows).size !== rows.length) throw new SamplingError({ where: "generate", problem: `rows repeat: ${rows.join(", ")}` })
    for (const r of rows) {
      if ((histories[r]?.length ?? 0) === 0) {
        throw new SamplingError({ where: `generate row ${r}`, problem: "row has no context: append a prompt (at least BOS) first" })
      }
    }
    const choose = samplesOnDevice(weights, generateOptions, model.vocabSize) ? chooseOnDevice : chooseOnHost
    const outputs = new Map(rows.map((r) => [r, new RowOutput(generateOptions, tokenizer)] as const))
    for (;;) {
      const active = rows.filter((r) => {
        const out = outputs.get(r)
        if (out === undefined || out.finish !== undefined) return false
        if ((histories[r]?.length ?? 0) >= model.maxSeqLen) {
          out.finish = "context"
          return false
        }
        return true
      })
      if (active.length === 0) break
      const chosen = yield* choose(feed(active), active, generateOptions)
      maybeCompact()
      for (const r of active) {
        const choice = chosen.get(r)
        const out = outputs.get(r)
        if (choice === undefined || out === undefined) continue
        histories[r]?.push(choice.token)
        out.push(choice.token, choice.logprob)
      }
    }
    return rows.map((r) => (outputs.get(r) ?? new RowOutput(generateOptions, tokenizer)).result())
  }

  return {
    append(row, tokens) {
      checkRow(row, "append")
      checkIdle("append")
      const history = histories[row] ?? []
      checkTokens(tokens, model.vocabSize, `append to row ${row}`)
      if (history.length + tokens.length > model.maxSeqLen) {
        throw new SamplingError({
          where: `append to row ${row}`,
          problem: `history would be ${history.length + tokens.length} tokens, over maxSeqLen ${model.maxSeqLen}`,
        })
      }
      history.push(...tokens)
    },

    generate(rows, generateOptions) {
      checkIdle("generate")
      return runSync(decode(rows, generateOptions))
    },

    async generateAsync(rows, generateOptions) {
      checkIdle("generateAsync")
      busy = true
      try {
        return await runAsync(decode(rows, generateOptions))
      } finally {
        busy = false
      }
    },

    length(row) {
      checkRow(row, "length")
      return histories[row]?.length ?? 0
    },

    history(row) {
      checkRow(row, "history")
      return [...(histories[row] ?? [])]
    },

    dispose() {
      if (disposed) return
      disposed = true
      cache?.dispose()
      cache = undefined
      weights.dispose()
    },
  }
}

/**
 * Reference sampler without a cache: every token recomputes the full forward pass over
 * each row's whole history. Same sampling rules and per-row generators as a session
 * (row i of `prompts` uses the generator of session row i), so for equal seeds and
 * histories the two agree; used by tests and the benchmark.
 *
 * @example
 * const [out] = generateNoCache(model, [[tok.bos, ...tok.encode("hi")]], { maxNewTokens: 16, temperature: 0 }, 7)
 */
export const generateNoCache = (
  model: Transformer,
  prompts: ReadonlyArray<ReadonlyArray<number>>,
  options: DecodeOptions,
  seed: number,
  tokenizer: TokenizerShape = byteTokenizer,
): Array<DecodedRow> => runSync(decodeNoCache(model, prompts, options, seed, tokenizer))

/**
 * {@link generateNoCache} with asynchronous reads (needed on webgpu in Node).
 *
 * @example
 * const [out] = await generateNoCacheAsync(model, [[tok.bos, ...tok.encode("hi")]], { maxNewTokens: 16, temperature: 0 }, 7)
 */
export const generateNoCacheAsync = (
  model: Transformer,
  prompts: ReadonlyArray<ReadonlyArray<number>>,
  options: DecodeOptions,
  seed: number,
  tokenizer: TokenizerShape = byteTokenizer,
): Promise<Array<DecodedRow>> => runAsync(decodeNoCache(model, prompts, options, seed, tokenizer))

function* decodeNoCache(
  model: Transformer,
  prompts: ReadonlyArray<ReadonlyArray<number>>,
  options: DecodeOptions,
  seed: number,
  tokenizer: TokenizerShape,
): DecodeLoop<Array<DecodedRow>> {
  checkOptions(options)
  const rngs = rowRngs(seed, prompts.length)
  const histories = prompts.map((p, i) => {
    checkTokens(p, model.vocabSize, `prompt ${i}`)
    if (p.length === 0) throw new SamplingError({ where: `prompt ${i}`, problem: "empty prompt: give at least BOS" })
    return [...p]
  })
  const outputs = prompts.map(() => new RowOutput(options, tokenizer))
  for (;;) {
    const active = outputs.flatMap((out, i) => {
      if (out.finish !== undefined) return []
      if ((histories[i]?.length ?? 0) >= model.maxSeqLen) {
        out.finish = "context"
        return []
      }
      return [i]
    })
    if (active.length === 0) break
    const T = Math.max(...active.map((i) => histories[i]?.length ?? 0))
    const tokens = new Int32Array(active.length * T).fill(tokenizer.pad) // right padding: causal attention never sees it
    active.forEach((i, a) => (histories[i] ?? []).forEach((t, j) => (tokens[a * T + j] = t)))
    const V = model.vocabSize
    const last = tf.tidy(() => {
      const logits = model.logits(tf.tensor2d(tokens, [active.length, T], "int32")) // [A, T, V]
      const flat = tf.reshape(logits, [active.length * T, V]) // [A*T, V]
      const rows = Int32Array.from(active, (i, a) => a * T + (histories[i]?.length ?? 1) - 1)
      return tf.gather(flat, rows) // [A, V]
    })
    const values = yield last
    active.forEach((i, a) => {
      const rng = rngs[i]
      const out = outputs[i]
      if (rng === undefined || out === undefined) return
      const { token, logprob } = chooseToken(values.subarray(a * V, (a + 1) * V), options, rng)
      histories[i]?.push(token)
      out.push(token, logprob)
    })
  }
  return outputs.map((o) => o.result())
}
