/**
 * Sampling on the device (packages/runtime/src/model/kernels/sample-token.ts and its use
 * in the sampler's decode loop on webgpu): the shader alone against the host's
 * `chooseToken` given the same uniform draw, a whole three-turn sampled session on webgpu
 * against the same session on wasm, and the size of what each decode step reads back.
 *
 * Logprob tolerance of the shader: 1e-5 absolute (float32 against float64 sums).
 * webgpu must start here; where it cannot (no GPU and no Mesa EGL), the suite fails
 * with the reason unless TURNWISE_SKIP_WEBGPU=1.
 */
import * as tf from "@tensorflow/tfjs"
import { afterAll, describe, expect, it, vi } from "vitest"
import { Rng } from "../../packages/core/src/rng.js"
import { setBackend } from "../../packages/runtime/src/backend.js"
import { fusedSampleToken } from "../../packages/runtime/src/model/kernels/sample-token.js"
import { createTransformer } from "../../packages/runtime/src/model/transformer.js"
import { chooseToken, createSamplingSession, type DecodedRow, type DecodeOptions } from "../../packages/runtime/src/sampler.js"
import { probeWebgpu, qwenLikeConfig, read, relDiff, skipWebgpu } from "./fixtures/webgpu-compare.js"

const skip = skipWebgpu
const started = await probeWebgpu()

/** Draws that hit the edges: 0, the largest value an Rng gives, and values just below 1. */
const edgeDraws = [0, 4294967295 / 4294967296, 0.9999999, 0.999]

/** Random logits [rows, V] (standard normal, times 3 so distributions are neither flat nor one-hot). */
const randomLogits = (rows: number, vocab: number, seed: number): Float32Array => {
  const rng = Rng.fromSeed(seed)
  return Float32Array.from({ length: rows * vocab }, () => 3 * rng.normal())
}

interface Session {
  readonly turns: ReadonlyArray<ReadonlyArray<DecodedRow>>
  /** Sizes of the tensors the sampler read back, in order. */
  readonly reads: ReadonlyArray<number>
  /** Kernels of the second turn (8 steps). */
  readonly kernels: ReadonlyArray<string>
  /** Tensors alive after the session was disposed, less those alive before it was created. */
  readonly leaked: number
}

const config = qwenLikeConfig(11)

/**
 * Three rows sampled at temperature 1: a first turn on all rows, tool feedback on rows 0
 * and 2, a second turn on those two (row 1 idles: it must not draw), then a third turn
 * on row 1 alone (whose samples show whether it drew while idle).
 */
const sampledSession = async (backend: "wasm" | "webgpu", options: Partial<DecodeOptions> = {}): Promise<Session> => {
  await setBackend(backend)
  const model = createTransformer(config)
  const before = tf.memory().numTensors
  const session = createSamplingSession(model, { rows: 3, seed: 21 })
  const data = vi.spyOn(tf.Tensor.prototype, "data")
  try {
    session.append(0, [256, 81, 58, 32])
    session.append(1, [256, 50, 43, 50, 61, 63, 10])
    session.append(2, [256, 7])
    const generate = { maxNewTokens: 10, temperature: 1, eos: null, ...options }
    const first = await session.generateAsync([0, 1, 2], generate)
    session.append(0, [60, 111, 62])
    session.append(2, [60, 49, 62])
    let second: Array<DecodedRow> = []
    const info = await tf.profile(async () => {
      second = await session.generateAsync([2, 0], { ...generate, maxNewTokens: 8 })
      return tf.scalar(0)
    })
    const third = await session.generateAsync([1], { ...generate, maxNewTokens: 6 })
    const reads = data.mock.contexts.map((t) => (t as tf.Tensor).size)
    session.dispose()
    // Less the profile's own result.
    const leaked = tf.memory().numTensors - before - 1
    return { turns: [first, second, third], reads, kernels: info.kernels.map((k) => k.name), leaked }
  } finally {
    data.mockRestore()
    session.dispose()
    model.dispose()
  }
}

describe.runIf(started === undefined)("sampling on the webgpu device", () => {
  afterAll(async () => {
    await setBackend("wasm")
  })

  it("the shader picks chooseToken's token for the same draw, with its logprob within 1e-5, at temperatures 0, 0.7, 1 and 1.5", async () => {
    await setBackend("webgpu")
    // 37: fewer indices than threads (most own none); 259: the byte vocabulary; 1000: uneven
    // blocks. 112 draws per case: a pick that is off by a rounding of the goal shows up.
    for (const vocab of [37, 259, 1000]) {
      const uniform = Rng.fromSeed(vocab + 1)
      const draws = [...edgeDraws, ...Array.from({ length: 8 }, (_, i) => (i + 0.5) / 8), ...Array.from({ length: 100 }, () => uniform.next())]
      const rows = draws.length
      const logits = randomLogits(rows, vocab, vocab)
      // A tie for the max in row 1: greedy takes the first index, as chooseToken does.
      const tieRow = logits.subarray(vocab, 2 * vocab)
      const top = Math.max(...tieRow) + 1
      tieRow[3] = top
      tieRow[vocab - 2] = top
      // The last index of every row holds real mass, so draws just below 1 land on it: the
      // inverse CDF runs to the end of the row.
      for (let r = 0; r < rows; r++) logits[r * vocab + vocab - 1] = 4
      const logitsTensor = tf.tensor2d(logits, [rows, vocab])
      for (const temperature of [0, 0.7, 1, 1.5]) {
        const picked = await read(fusedSampleToken(logitsTensor, draws, temperature))
        const host = draws.map((u, r) => chooseToken(logits.subarray(r * vocab, (r + 1) * vocab), { temperature }, { next: () => u }))
        const where = `vocab ${vocab}, temperature ${temperature}`
        expect(Array.from({ length: rows }, (_, r) => picked[2 * r]), where).toEqual(host.map((h) => h.token))
        host.forEach((h, r) => expect(Math.abs(picked[2 * r + 1]! - h.logprob), `${where}, row ${r}`).toBeLessThanOrEqual(1e-5))
        if (temperature === 0) expect(host[1]!.token, "the tie row").toBe(3)
        // The draws matter: sampled rows spread over several tokens, and the edge draws reach the last index.
        else {
          expect(new Set(host.map((h) => h.token)).size, where).toBeGreaterThan(3)
          expect(host[1]!.token, `${where}: the largest draw`).toBe(vocab - 1)
        }
      }
      logitsTensor.dispose()
    }
  })

  it("a three-turn session sampled at temperature 1 on webgpu gives wasm's tokens and logprobs, sampling on the device", async () => {
    const reference = await sampledSession("wasm")
    const got = await sampledSession("webgpu")
    expect(reference.turns.map((turn) => turn.map((row) => row.tokens.length))).toEqual([[10, 10, 10], [8, 8], [6]])
    expect(got.turns.map((turn) => turn.map((row) => row.tokens))).toEqual(reference.turns.map((turn) => turn.map((row) => row.tokens)))
    got.turns.forEach((turn, t) =>
      turn.forEach((row, r) => expect(relDiff(row.logprobs, reference.turns[t]![r]!.logprobs), `turn ${t}, row ${r}`).toBeLessThanOrEqual(1e-3))
    )
    // Sampled, not greedy: some token was not its row's most likely one (logprob well below log 1/2).
    expect(Math.min(...reference.turns.flat().flatMap((row) => row.logprobs))).toBeLessThan(-1)
    expect(got.kernels.filter((name) => name === "TurnwiseSampleToken")).toHaveLength(8)
    expect(reference.kernels).not.toContain("TurnwiseSampleToken")
    // The draws, logits and sampled pairs of every step are freed.
    expect(got.leaked).toBe(0)
  }, 120_000)

  it("each decode step reads back rows * 2 numbers on webgpu, rows * V with top-k and on wasm", async () => {
    const rows = 3
    const V = config.vocabSize
    const device = await sampledSession("webgpu")
    // One read per step: 10 steps in the first turn, 8 in the second, 6 in the third.
    expect(device.reads).toEqual(new Array(24).fill(rows * 2))
    const topK = await sampledSession("webgpu", { topK: 20 })
    expect(topK.reads).toEqual(new Array(24).fill(rows * V))
    expect(topK.kernels).not.toContain("TurnwiseSampleToken")
    const host = await sampledSession("wasm")
    expect(host.reads).toEqual(new Array(24).fill(rows * V))
  }, 120_000)
})

it.runIf(started !== undefined)(
  `webgpu ${skip ? "is skipped (TURNWISE_SKIP_WEBGPU=1)" : "must start here (set TURNWISE_SKIP_WEBGPU=1 to skip)"}: ${started?.message}`,
  () => {
    expect(skip, `webgpu could not be started: ${started?.message}`).toBe(true)
  },
)
