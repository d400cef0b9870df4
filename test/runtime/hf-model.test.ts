import { mkdtempSync, promises as fs, readFileSync } from "node:fs"
import { tmpdir } from "node:os"
import * as path from "node:path"
import * as tf from "@tensorflow/tfjs"
import { Effect, Layer } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { rollout, Tokenizer } from "@turnwise/dsl"
import type { Task } from "@turnwise/dsl"
import gtpo from "../../recipes/gtpo.js"
import { setBackend } from "../../packages/runtime/src/backend.js"
import { decodeSafetensors } from "../../packages/runtime/src/model/safetensors.js"
import { TfjsTokenizer } from "../../packages/runtime/src/index.js"
import { presets } from "../../packages/runtime/src/model/config.js"
import {
  ChatTemplateError,
  HfArchitectureError,
  HfFormatError,
  HfMissingFileError,
  HfMissingTensorError,
  HfShapeMismatchError,
} from "../../packages/runtime/src/model/hf/errors.js"
import { hfConfigJson, parseHfConfig, readHfConfig } from "../../packages/runtime/src/model/hf/hf-config.js"
import { loadHfModel } from "../../packages/runtime/src/model/hf/hf-load.js"
import type { HfLoadedModel } from "../../packages/runtime/src/model/hf/hf-load.js"
import { saveHfModel } from "../../packages/runtime/src/model/hf/hf-save.js"
import { HfTokenizer, loadHfTokenizer } from "../../packages/runtime/src/model/hf/hf-tokenizer.js"
import { decodeStep, prepareInference } from "../../packages/runtime/src/model/inference.js"
import { createTransformer, MASKED } from "../../packages/runtime/src/model/transformer.js"
import type { Transformer } from "../../packages/runtime/src/model/transformer.js"
import { decodeRunConfig } from "../../packages/cli/src/run/RunConfig.js"
import { loadModel, loadTokenizer } from "../../packages/cli/src/run/context.js"
import { byteTokenizer } from "../../packages/runtime/src/tokenizer.js"
import { fakePolicy, fakeSandbox, makeWorld } from "../dsl/fakes.js"
import { safetensorsBytes, writeHfFixture } from "./fixtures/hf-model.js"
import type { HfFixture } from "./fixtures/hf-model.js"

type Json = Record<string, unknown>

/**
 * A plain float64 forward pass of the Llama/Qwen2 decoder, read straight from the
 * fixture's config.json and stored tensors (not through Turnwise's ModelConfig): RMSNorm,
 * q/k/v (+ bias for Qwen2), HF rotary positions (rotate_half), grouped-query attention
 * (query head h reads kv head floor(h / (H / Hkv))), SiLU-gated MLP, final norm, head
 * (tied to the embedding when tie_word_embeddings).
 */
const referenceLogits = (fx: HfFixture, tokens: ReadonlyArray<number>): Array<Array<number>> => {
  const c = fx.config
  const num = (key: string): number => {
    const value = c[key]
    if (typeof value !== "number") throw new Error(`reference: config.json ${key} is not a number`)
    return value
  }
  const D = num("hidden_size")
  const H = num("num_attention_heads")
  const Hkv = num("num_key_value_heads")
  const Dh = D / H
  const eps = num("rms_norm_eps")
  const theta = num("rope_theta")
  const bias = (c["architectures"] as Array<string>)[0] === "Qwen2ForCausalLM"
  const W = (name: string) => {
    const w = fx.weights.get(name)
    if (w === undefined) throw new Error(`reference: no ${name}`)
    return w
  }
  const matvec = (name: string, x: ReadonlyArray<number>, withBias = false): Array<number> => {
    const w = W(`${name}.weight`)
    const [rows = 0, cols = 0] = w.shape
    const b = withBias ? W(`${name}.bias`).data : undefined
    const y: Array<number> = []
    for (let o = 0; o < rows; o++) {
      let s = b?.[o] ?? 0
      for (let i = 0; i < cols; i++) s += (w.data[o * cols + i] ?? NaN) * (x[i] ?? NaN)
      y.push(s)
    }
    return y
  }
  const rmsNorm = (x: ReadonlyArray<number>, name: string) => {
    const g = W(name).data
    const inv = 1 / Math.sqrt(x.reduce((s, v) => s + v * v, 0) / x.length + eps)
    return x.map((v, i) => v * inv * (g[i] ?? NaN))
  }
  // Rotary frequencies, rescaled as transformers' _compute_linear_scaling_rope_parameters
  // and _compute_llama3_parameters do it (written from their formulas, not from ours).
  const scaling = (c["rope_scaling"] ?? null) as Record<string, number | string> | null
  const invFreq = Array.from({ length: Dh / 2 }, (_, j) => {
    const f = 1 / Math.pow(theta, (2 * j) / Dh)
    if (scaling === null) return f
    const factor = Number(scaling["factor"])
    if ((scaling["rope_type"] ?? scaling["type"]) === "linear") return f / factor
    const low = Number(scaling["low_freq_factor"])
    const high = Number(scaling["high_freq_factor"])
    const old = Number(scaling["original_max_position_embeddings"])
    const wavelen = (2 * Math.PI) / f
    const llama = wavelen > old / low ? f / factor : f
    const smooth = (old / wavelen - low) / (high - low)
    const medium = !(wavelen < old / high) && !(wavelen > old / low)
    return medium ? ((1 - smooth) * llama) / factor + smooth * llama : llama
  })
  const rope = (v: ReadonlyArray<number>, pos: number) => {
    const out = [...v]
    for (let j = 0; j < Dh / 2; j++) {
      const angle = pos * (invFreq[j] ?? NaN)
      const a = v[j] ?? NaN
      const b = v[j + Dh / 2] ?? NaN
      out[j] = a * Math.cos(angle) - b * Math.sin(angle)
      out[j + Dh / 2] = b * Math.cos(angle) + a * Math.sin(angle)
    }
    return out
  }
  const heads = (v: ReadonlyArray<number>, n: number) => Array.from({ length: n }, (_, h) => v.slice(h * Dh, (h + 1) * Dh))
  const embed = W("model.embed_tokens.weight").data
  let xs = tokens.map((t) => Array.from({ length: D }, (_, d) => embed[t * D + d] ?? NaN))
  for (let l = 0; l < num("num_hidden_layers"); l++) {
    const p = `model.layers.${l}`
    const normed = xs.map((x) => rmsNorm(x, `${p}.input_layernorm.weight`))
    const q = normed.map((x, t) => heads(matvec(`${p}.self_attn.q_proj`, x, bias), H).map((h) => rope(h, t)))
    const k = normed.map((x, t) => heads(matvec(`${p}.self_attn.k_proj`, x, bias), Hkv).map((h) => rope(h, t)))
    const v = normed.map((x) => heads(matvec(`${p}.self_attn.v_proj`, x, bias), Hkv))
    xs = xs.map((x, t) => {
      const attended = q[t]!.flatMap((qh, h) => {
        const kv = Math.floor(h / (H / Hkv))
        const scores = Array.from({ length: t + 1 }, (_, s) => qh.reduce((acc, qi, i) => acc + qi * k[s]![kv]![i]!, 0) / Math.sqrt(Dh))
        const top = Math.max(...scores)
        const e = scores.map((s) => Math.exp(s - top))
        const z = e.reduce((a, b) => a + b, 0)
        return Array.from({ length: Dh }, (_, i) => e.reduce((acc, w, s) => acc + (w / z) * v[s]![kv]![i]!, 0))
      })
      const h = matvec(`${p}.self_attn.o_proj`, attended).map((o, i) => o + x[i]!)
      const n = rmsNorm(h, `${p}.post_attention_layernorm.weight`)
      const gate = matvec(`${p}.mlp.gate_proj`, n)
      const up = matvec(`${p}.mlp.up_proj`, n)
      const down = matvec(`${p}.mlp.down_proj`, gate.map((g, i) => (g / (1 + Math.exp(-g))) * up[i]!))
      return h.map((hi, i) => hi + down[i]!)
    })
  }
  const head = c["tie_word_embeddings"] === true ? "model.embed_tokens" : "lm_head"
  return xs.map((x) => matvec(head, rmsNorm(x, "model.norm.weight")))
}

const logitsOf = (model: Transformer, tokens: ReadonlyArray<number>): Array<Array<number>> => {
  const input = tf.tensor2d([[...tokens]], [1, tokens.length], "int32")
  const out = model.logits(input)
  const values = out.arraySync()[0] ?? []
  tf.dispose([input, out])
  return values
}

/** The last token's logits through the KV-cached path: a prefill of all but it, then one decode step. */
const cachedLastLogits = (model: Transformer, tokens: ReadonlyArray<number>): Array<number> => {
  const weights = prepareInference(model)
  const n = tokens.length - 1
  const causal = Float32Array.from({ length: n * n }, (_, i) => (i % n <= Math.floor(i / n) ? 0 : MASKED))
  const prefillInput = tf.tensor2d([tokens.slice(0, n)], [1, n], "int32")
  const prefill = decodeStep(model, weights, prefillInput, Array.from({ length: n }, (_, t) => t), causal, [n - 1], undefined)
  const stepInput = tf.tensor2d([[tokens[n]!]], [1, 1], "int32")
  const step = decodeStep(model, weights, stepInput, [n], new Float32Array(n + 1), [0], prefill.cache)
  const logits = step.logits.arraySync()[0] ?? []
  tf.dispose([prefillInput, stepInput, prefill.logits, step.logits])
  prefill.cache.dispose()
  step.cache.dispose()
  weights.dispose()
  return logits
}

const maxAbsDiff = (a: ReadonlyArray<ReadonlyArray<number>>, b: ReadonlyArray<ReadonlyArray<number>>): number => {
  let worst = 0
  a.forEach((row, t) => row.forEach((x, v) => (worst = Math.max(worst, Math.abs(x - (b[t]?.[v] ?? NaN))))))
  return Number.isNaN(worst) ? Infinity : worst
}

const rejection = async (promise: Promise<unknown>): Promise<Error> => {
  try {
    await promise
  } catch (error) {
    return error as Error
  }
  throw new Error("expected a rejection")
}

const patchJson = async (file: string, patch: (json: Json) => Json) =>
  fs.writeFile(file, JSON.stringify(patch(JSON.parse(await fs.readFile(file, "utf8")) as Json)))

// <|endoftext|> "hell" "o" " w" "or" "l" "d", then an id past the tokenizer's vocabulary (a padding row).
const TOKENS = [261, 258, 111, 259, 260, 108, 100, 270]

const loaded: Array<HfLoadedModel> = []
const load = async (dir: string) => {
  const m = await loadHfModel(dir)
  loaded.push(m)
  return m
}

beforeAll(async () => {
  await setBackend("wasm")
})
afterAll(() => {
  for (const m of loaded) m.model.dispose()
})

describe("loading a Hugging Face model directory", () => {
  it("maps a Qwen2 config.json onto the decoder and matches a float64 reference forward pass", async () => {
    const fx = await writeHfFixture()
    const { model, config } = await load(fx.dir)
    expect(config.architecture).toBe("Qwen2ForCausalLM")
    expect(model.config).toEqual({
      vocabSize: 272,
      dModel: 16,
      nLayers: 2,
      nHeads: 4,
      nKvHeads: 2,
      dFf: 24,
      maxSeqLen: 512,
      ropeTheta: 1e6,
      normEps: 1e-6,
      qkvBias: true,
      tieEmbeddings: false,
      initStd: 0.02,
      seed: 0,
    })
    expect([...model.variables.keys()].sort()).toEqual([...fx.weights.keys()].sort())
    expect(Array.from(model.variables.get("model.layers.1.self_attn.k_proj.bias")!.dataSync())).toEqual(
      Array.from(fx.weights.get("model.layers.1.self_attn.k_proj.bias")!.data),
    )
    const got = logitsOf(model, TOKENS)
    const expected = referenceLogits(fx, TOKENS)
    expect(got).toHaveLength(TOKENS.length)
    expect(got[0]).toHaveLength(272)
    expect(maxAbsDiff(got, expected)).toBeLessThan(1e-4)
    // The logits are far from constant, so the comparison has teeth.
    expect(Math.max(...expected[3]!) - Math.min(...expected[3]!)).toBeGreaterThan(1)
  })

  it("maps a Llama config.json (tied head, no bias, its own rope_theta and eps) and matches the reference", async () => {
    const fx = await writeHfFixture({ architecture: "LlamaForCausalLM", seed: 11 })
    const { model, config } = await load(fx.dir)
    expect(config.architecture).toBe("LlamaForCausalLM")
    expect(model.config).toMatchObject({ qkvBias: false, tieEmbeddings: true, ropeTheta: 500000, normEps: 1e-5 })
    expect(model.variables.has("lm_head.weight")).toBe(false)
    expect(maxAbsDiff(logitsOf(model, TOKENS), referenceLogits(fx, TOKENS))).toBeLessThan(1e-4)
  })

  it("applies linear and Llama 3 rope scaling like transformers, in the forward pass and the KV-cached one", async () => {
    // Scaled so that it matters at the fixture's few positions: 16 original positions.
    const llama3 = { rope_type: "llama3", factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 16 }
    for (
      const [scaling, expected] of [
        [llama3, { kind: "llama3", factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 16 }],
        [{ type: "linear", factor: 4 }, { kind: "linear", factor: 4 }],
      ] as const
    ) {
      const fx = await writeHfFixture({ architecture: "LlamaForCausalLM", seed: 12, config: { rope_scaling: scaling } })
      const { model } = await load(fx.dir)
      expect(model.config.ropeScaling).toEqual(expected)
      const got = logitsOf(model, TOKENS)
      expect(maxAbsDiff(got, referenceLogits(fx, TOKENS))).toBeLessThan(1e-4)
      // The scaling has teeth: the plain rotary reference is far off.
      const plain = referenceLogits({ ...fx, config: { ...fx.config, rope_scaling: null } }, TOKENS)
      expect(maxAbsDiff(got, plain)).toBeGreaterThan(1e-2)
      const cached = cachedLastLogits(model, TOKENS)
      expect(maxAbsDiff([cached], [got[TOKENS.length - 1]!])).toBeLessThan(1e-4)
      // Saved and reloaded, the scaling is still there.
      const out = mkdtempSync(path.join(tmpdir(), "turnwise-rope-"))
      await saveHfModel(model, out, { source: fx.dir })
      expect((await readHfConfig(out)).model.ropeScaling).toEqual(expected)
    }
    // A model trained from scratch with scaling writes it into a fresh config.json.
    expect(hfConfigJson({ ...presets.tiny, ropeScaling: { kind: "linear", factor: 2 } }, { dtype: "float32" })["rope_scaling"]).toEqual({
      rope_type: "linear",
      factor: 2,
    })
  })

  it("caps the context at 2048 positions by default and honours an explicit maxSeqLen", async () => {
    const fx = await writeHfFixture({ config: { max_position_embeddings: 32768 } })
    expect((await load(fx.dir)).model.maxSeqLen).toBe(2048)
    const capped = await loadHfModel(fx.dir, { maxSeqLen: 96 })
    loaded.push(capped)
    expect(capped.model.maxSeqLen).toBe(96)
  })

  it("loads bfloat16 and float16 files to exactly the float32 file's values", async () => {
    const f32Dir = (await writeHfFixture({ seed: 5 })).dir
    const f32 = await load(f32Dir)
    const reference = logitsOf(f32.model, TOKENS)
    const f32Bytes = readFileSync(path.join(f32Dir, "model.safetensors")).length
    for (const dtype of ["BF16", "F16"] as const) {
      const fx = await writeHfFixture({ seed: 5, dtype })
      expect(readFileSync(path.join(fx.dir, "model.safetensors")).length).toBeLessThan(0.6 * f32Bytes)
      const { model } = await load(fx.dir)
      for (const [name, w] of fx.weights) expect(Array.from(model.variables.get(name)!.dataSync()), name).toEqual(Array.from(w.data))
      expect(logitsOf(model, TOKENS)).toEqual(reference)
    }
  })

  it("loads a checkpoint sharded over three files through model.safetensors.index.json", async () => {
    const fx = await writeHfFixture({ seed: 5, shards: 3 })
    const files = await fs.readdir(fx.dir)
    expect(files.filter((f) => f.endsWith(".safetensors")).sort()).toEqual([
      "model-00001-of-00003.safetensors",
      "model-00002-of-00003.safetensors",
      "model-00003-of-00003.safetensors",
    ])
    const { model } = await load(fx.dir)
    expect(maxAbsDiff(logitsOf(model, TOKENS), referenceLogits(fx, TOKENS))).toBeLessThan(1e-4)
  })
})

describe("saving in the Hugging Face layout", () => {
  it("writes config.json, model.safetensors and the tokenizer files; reloading gives identical logits", async () => {
    const fx = await writeHfFixture({ seed: 3 })
    const { model } = await load(fx.dir)
    // Stand in for fine-tuning: move every weight.
    for (const v of model.variables.values()) v.assign(tf.add(v, tf.randomNormal(v.shape, 0, 0.05, "float32", 1)))
    const tuned = logitsOf(model, TOKENS)
    expect(maxAbsDiff(tuned, referenceLogits(fx, TOKENS))).toBeGreaterThan(1e-2)

    const out = path.join(fx.dir, "..", `${path.basename(fx.dir)}-tuned`)
    const written = await saveHfModel(model, out, { source: fx.dir })
    expect(written).toEqual(["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "generation_config.json"])
    const savedConfig = JSON.parse(readFileSync(path.join(out, "config.json"), "utf8")) as Json
    expect(savedConfig).toEqual({ ...fx.config, torch_dtype: "float32" })
    expect(readFileSync(path.join(out, "tokenizer.json"), "utf8")).toBe(readFileSync(path.join(fx.dir, "tokenizer.json"), "utf8"))
    const stored = decodeSafetensors(readFileSync(path.join(out, "model.safetensors")))
    expect([...stored.tensors.keys()].sort()).toEqual([...fx.weights.keys()].sort())
    expect(stored.metadata).toEqual({ format: "pt" })

    const again = await load(out)
    expect(logitsOf(again.model, TOKENS)).toEqual(tuned)
    const tokenizer = await loadHfTokenizer(out, { vocabSize: 272, config: again.config })
    expect(tokenizer.formatPrompt("x")).toContain("<|im_start|>assistant\n")
  })

  it("writes bfloat16 on request (values rounded to nearest, half the bytes)", async () => {
    const fx = await writeHfFixture({ seed: 3 })
    const { model } = await load(fx.dir)
    const out = `${fx.dir}-bf16`
    await saveHfModel(model, out, { source: fx.dir, dtype: "bfloat16" })
    const stored = decodeSafetensors(readFileSync(path.join(out, "model.safetensors")))
    expect(stored.tensors.get("model.norm.weight")?.dtype).toBe("BF16")
    expect((JSON.parse(readFileSync(path.join(out, "config.json"), "utf8")) as Json)["torch_dtype"]).toBe("bfloat16")
    // The fixture's values are bfloat16 already, so the round trip is exact.
    const again = await load(out)
    expect(logitsOf(again.model, TOKENS)).toEqual(logitsOf(model, TOKENS))
    // A value between two bfloat16 neighbours rounds to the nearer: 1 + 2^-8 + 2^-10 -> 1 + 2^-7.
    const v = model.variables.get("model.norm.weight")!
    v.assign(tf.fill(v.shape, 1 + 2 ** -8 + 2 ** -10))
    await saveHfModel(model, out, { dtype: "bfloat16", source: fx.dir })
    expect(decodeSafetensors(readFileSync(path.join(out, "model.safetensors"))).tensors.get("model.norm.weight")?.data[0]).toBe(1 + 2 ** -7)
  })

  it("exports a model trained from scratch with a fresh config.json that loads back", async () => {
    const scratch = createTransformer({ ...presets.tiny, dModel: 16, nLayers: 1, nHeads: 4, nKvHeads: 2, dFf: 24, maxSeqLen: 64, qkvBias: true, seed: 9 })
    const out = path.join(mkdtempSync(path.join(tmpdir(), "turnwise-hf-")), "scratch")
    expect(await saveHfModel(scratch, out)).toEqual(["config.json", "model.safetensors"])
    const config = JSON.parse(readFileSync(path.join(out, "config.json"), "utf8")) as Json
    expect(config).toMatchObject({
      architectures: ["Qwen2ForCausalLM"],
      vocab_size: 259,
      hidden_size: 16,
      max_position_embeddings: 64,
      tie_word_embeddings: true,
    })
    const again = await load(out)
    const tokens = [256, 72, 105, 33]
    expect(logitsOf(again.model, tokens)).toEqual(logitsOf(scratch, tokens))
    scratch.dispose()
  })
})

describe("the pretrained tokenizer", () => {
  let qwen: HfTokenizer
  let llama: HfTokenizer
  beforeAll(async () => {
    qwen = await loadHfTokenizer((await writeHfFixture()).dir, { vocabSize: 272, config: { bosTokenId: 261, eosTokenId: 263, padTokenId: null } })
    const llamaFx = await writeHfFixture({ architecture: "LlamaForCausalLM" })
    llama = await loadHfTokenizer(llamaFx.dir, { vocabSize: 272, config: { bosTokenId: 261, eosTokenId: 262, padTokenId: null } })
  })

  it("encodes with the BPE merges and decodes back", () => {
    expect(qwen.encode("hello world")).toEqual([258, 111, 259, 260, 108, 100])
    expect(qwen.decode([258, 111, 259, 260, 108, 100])).toBe("hello world")
    for (const text of ["hello world", "  two  spaces\nand a newline", "é, ü and 🙂", ""]) expect(qwen.decode(qwen.encode(text))).toBe(text)
    expect(qwen.encode("é")).toEqual([0xc3, 0xa9])
  })

  it("turns special-token text into its id, and decodes without specials or unknown ids", () => {
    expect(qwen.encode("<|im_start|>user")).toEqual([262, 117, 115, 101, 114])
    expect(qwen.decode([262, 258, 263, 270, 111])).toBe("hello")
    expect(qwen.decode([263, 270])).toBe("")
    expect(qwen.decode([])).toBe("")
  })

  it("takes bos, eos and pad from tokenizer_config.json, else config.json, else eos", () => {
    expect({ vocab: qwen.vocabSize, bos: qwen.bos, eos: qwen.eos, pad: qwen.pad }).toEqual({ vocab: 272, bos: 261, eos: 263, pad: 261 })
    expect({ vocab: llama.vocabSize, bos: llama.bos, eos: llama.eos, pad: llama.pad }).toEqual({ vocab: 272, bos: 261, eos: 262, pad: 262 })
  })

  it("renders prompts with the chat template; a leading BOS string is left to the BOS id", () => {
    expect(qwen.formatPrompt("Q: 2+3=?\n")).toBe("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nQ: 2+3=?\n<|im_end|>\n<|im_start|>assistant\n")
    expect(qwen.applyChatTemplate([{ role: "system", content: "S" }, { role: "user", content: "U" }], { addGenerationPrompt: false })).toBe(
      "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n",
    )
    const turn = "<|start_header_id|>user<|end_header_id|>\n\nQ: 2+3=?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
    expect(llama.applyChatTemplate([{ role: "user", content: "Q: 2+3=?\n" }])).toBe(`<|begin_of_text|>${turn}`)
    expect(llama.formatPrompt("Q: 2+3=?\n")).toBe(turn)
  })

  it("reads chat_template.jinja, and leaves prompts alone without a template", async () => {
    const fromFile = await loadHfTokenizer((await writeHfFixture({ template: "jinja-file" })).dir)
    expect(fromFile.formatPrompt("hi")).toBe("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n")
    expect(fromFile.vocabSize).toBe(264)
    const none = await loadHfTokenizer((await writeHfFixture({ template: "none" })).dir)
    expect(none.chatTemplate).toBeNull()
    expect(none.formatPrompt("hi")).toBe("hi")
  })

  it("reports a template that raises as a ChatTemplateError", async () => {
    const fx = await writeHfFixture({ template: "none" })
    await patchJson(path.join(fx.dir, "tokenizer_config.json"), (j) => ({ ...j, chat_template: "{{ raise_exception('roles must alternate') }}" }))
    const tok = await loadHfTokenizer(fx.dir)
    expect(() => tok.formatPrompt("hi")).toThrow(ChatTemplateError)
    expect(() => tok.formatPrompt("hi")).toThrow(/chat template of .*tokenizer_config\.json: .*roles must alternate/)
  })

  it("the rollout encodes the task prompt through the chat template", async () => {
    const world = makeWorld()
    const task: Task<{ id: string; question: string }> = {
      name: "t",
      prompt: (p) => `Q: ${p.question}\n`,
      grade: () => Effect.succeed({ correct: false, score: 0 }),
    }
    const layer = Layer.mergeAll(fakePolicy(() => null, world), fakeSandbox(world), TfjsTokenizer.layer(qwen))
    const batch = await Effect.runPromise(
      Effect.scoped(rollout(task, [{ id: "a", question: "1+1=?" }], { ...gtpo.rollout, groupSize: 1 }, { seed: 1, step: 0 })).pipe(Effect.provide(layer)),
    )
    const prompt = batch.groups[0]!.trajectories[0]!.promptTokens
    expect(prompt).toEqual([261, ...qwen.encode("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nQ: 1+1=?\n<|im_end|>\n<|im_start|>assistant\n")])
    expect(prompt.filter((id) => id === 262)).toHaveLength(3)
    // The byte tokenizer has no prompt format: the service leaves prompts alone.
    const plain = Effect.runSync(
      Effect.gen(function*() {
        return (yield* Tokenizer).formatPrompt
      }).pipe(Effect.provide(TfjsTokenizer.layer(byteTokenizer))),
    )
    expect(plain).toBeUndefined()
  })
})

describe("clear errors", () => {
  it("a missing config.json, tokenizer.json, weight file or shard is named", async () => {
    const fx = await writeHfFixture()
    await fs.rm(path.join(fx.dir, "config.json"))
    const noConfig = await rejection(loadHfModel(fx.dir))
    expect(noConfig).toBeInstanceOf(HfMissingFileError)
    expect(noConfig.message).toBe(`Hugging Face model ${fx.dir}: config.json not found`)

    await fs.rm(path.join(fx.dir, "tokenizer.json"))
    expect((await rejection(loadHfTokenizer(fx.dir))).message).toBe(`Hugging Face model ${fx.dir}: tokenizer.json not found (the model's tokenizer)`)

    const noWeights = await writeHfFixture()
    await fs.rm(path.join(noWeights.dir, "model.safetensors"))
    const error = await rejection(loadHfModel(noWeights.dir))
    expect(error).toBeInstanceOf(HfMissingFileError)
    expect(error.message).toMatch(/model\.safetensors not found \(nor model\.safetensors\.index\.json, nor any other \*\.safetensors file\)/)

    const sharded = await writeHfFixture({ shards: 2 })
    await fs.rm(path.join(sharded.dir, "model-00002-of-00002.safetensors"))
    expect((await rejection(loadHfModel(sharded.dir))).message).toMatch(
      /model-00002-of-00002\.safetensors not found \(listed in model\.safetensors\.index\.json\)/,
    )
  })

  it("an unknown architecture is named, with the supported ones", async () => {
    const fx = await writeHfFixture({ config: { architectures: ["MistralForCausalLM"] } })
    const error = await rejection(loadHfModel(fx.dir))
    expect(error).toBeInstanceOf(HfArchitectureError)
    expect(error.message).toBe(
      `${path.join(fx.dir, "config.json")}: architecture "MistralForCausalLM" is not supported; supported architectures: LlamaForCausalLM, Qwen2ForCausalLM`,
    )
  })

  it("a shape mismatch names the tensor, the file and both shapes", async () => {
    const fx = await writeHfFixture()
    await patchJson(path.join(fx.dir, "config.json"), (j) => ({ ...j, num_key_value_heads: 4 }))
    const error = await rejection(loadHfModel(fx.dir))
    expect(error).toBeInstanceOf(HfShapeMismatchError)
    expect(error.message).toBe(
      `${path.join(fx.dir, "model.safetensors")}: tensor "model.layers.0.self_attn.k_proj.weight" has shape [8, 16], config.json implies [16, 16]`,
    )
  })

  it("a missing tensor is named, and so is one the decoder does not have", async () => {
    const fx = await writeHfFixture()
    const without = [...fx.weights.entries()].filter(([name]) => name !== "model.norm.weight")
    await fs.writeFile(path.join(fx.dir, "model.safetensors"), safetensorsBytes(without, "F32"))
    const missing = await rejection(loadHfModel(fx.dir))
    expect(missing).toBeInstanceOf(HfMissingTensorError)
    expect(missing.message).toBe(`Hugging Face model ${fx.dir}: no tensor "model.norm.weight" in model.safetensors, and the model needs it`)

    const extra = [...fx.weights.entries(), ["model.layers.0.self_attn.o_proj.bias", { shape: [16], data: new Float32Array(16) }] as const]
    await fs.writeFile(path.join(fx.dir, "model.safetensors"), safetensorsBytes(extra, "F32"))
    const unexpected = await rejection(loadHfModel(fx.dir))
    expect(unexpected).toBeInstanceOf(HfFormatError)
    expect(unexpected.message).toMatch(/tensor "model\.layers\.0\.self_attn\.o_proj\.bias" is not a parameter of Qwen2ForCausalLM/)
  })

  it("config values the decoder cannot run exactly are refused by name", async () => {
    const cases: Array<[Json, RegExp]> = [
      [{ rope_scaling: { rope_type: "yarn", factor: 4 } }, /rope_scaling of type "yarn" is not supported \(default, linear and llama3 only\)/],
      [{ rope_scaling: { rope_type: "llama3", factor: 32 } }, /rope_scaling\.low_freq_factor is missing \(expected a positive number\)/],
      [{ hidden_act: "gelu" }, /hidden_act "gelu" is not supported/],
      [{ num_attention_heads: 3 }, /hidden_size \(16\) is not a multiple of num_attention_heads \(3\)|dModel \(16\) is not a multiple of nHeads \(3\)/],
      [{ hidden_size: undefined }, /hidden_size is missing \(expected a positive integer\)/],
    ]
    for (const [patch, pattern] of cases) {
      const fx = await writeHfFixture({ config: patch })
      const error = await rejection(loadHfModel(fx.dir))
      expect(error, JSON.stringify(patch)).toBeInstanceOf(HfFormatError)
      expect(error.message).toMatch(pattern)
    }
    const llama = await writeHfFixture({ architecture: "LlamaForCausalLM", config: { attention_bias: true } })
    expect((await rejection(loadHfModel(llama.dir))).message).toMatch(/attention_bias is true .* not supported/)
  })

  it("a tokenizer whose ids exceed the model's vocabulary is refused", async () => {
    const fx = await writeHfFixture()
    const error = await rejection(loadHfTokenizer(fx.dir, { vocabSize: 200 }))
    expect(error).toBeInstanceOf(HfFormatError)
    expect(error.message).toMatch(/tokenizer\.json: holds token id 263, beyond the model's vocab_size 200/)
  })
})

describe("config.json decoding", () => {
  const file = "m/config.json"
  // The fields every architecture needs; everything else is left to its default.
  const required = { hidden_size: 16, intermediate_size: 24, num_hidden_layers: 2, num_attention_heads: 4, vocab_size: 272 }
  const llama = { architectures: ["LlamaForCausalLM"], ...required }
  const qwen2 = { architectures: ["Qwen2ForCausalLM"], ...required }
  const refusal = (raw: Json): Error => {
    try {
      parseHfConfig(raw, file)
    } catch (error) {
      return error as Error
    }
    throw new Error(`expected ${JSON.stringify(raw)} to be refused`)
  }

  it("fills what config.json leaves out (or sets to null) with each field's default", () => {
    const plain = parseHfConfig({ ...llama, rope_scaling: null, num_key_value_heads: null, rms_norm_eps: null }, file)
    expect(plain.model).toEqual({
      vocabSize: 272,
      dModel: 16,
      nLayers: 2,
      nHeads: 4,
      nKvHeads: 4,
      dFf: 24,
      maxSeqLen: 2048,
      ropeTheta: 10000,
      normEps: 1e-6,
      qkvBias: false,
      tieEmbeddings: false,
      initStd: 0.02,
      seed: 0,
    })
    expect(plain.maxPositionEmbeddings).toBe(2048)
    expect([plain.bosTokenId, plain.eosTokenId, plain.padTokenId]).toEqual([null, null, null])

    const qwen = parseHfConfig({ architectures: undefined, model_type: "qwen2", ...required, eos_token_id: [7, 3], sliding_window: null }, file)
    expect(qwen.architecture).toBe("Qwen2ForCausalLM")
    expect(qwen.maxPositionEmbeddings).toBe(32768)
    expect(qwen.model).toMatchObject({ maxSeqLen: 2048, qkvBias: true })
    expect(qwen.eosTokenId).toBe(7)
    expect(parseHfConfig(qwen2, file, { maxSeqLen: 64 }).model.maxSeqLen).toBe(64)
  })

  it("reads rope_theta and the scaling from rope_parameters, which wins over rope_scaling", () => {
    const config = parseHfConfig(
      {
        ...llama,
        rope_scaling: { type: "linear", factor: 2 },
        rope_parameters: { rope_type: "llama3", rope_theta: 500000, factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 16 },
      },
      file,
    )
    expect(config.model.ropeTheta).toBe(500000)
    expect(config.model.ropeScaling).toEqual({ kind: "llama3", factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 16 })
    const plainParameters = parseHfConfig(
      { ...llama, rope_scaling: { type: "linear", factor: 2 }, rope_parameters: { rope_type: "default", rope_theta: 7 } },
      file,
    )
    expect(plainParameters.model).toMatchObject({ ropeTheta: 7, ropeScaling: { kind: "linear", factor: 2 } })
    expect(parseHfConfig({ ...llama, rope_theta: 3, rope_parameters: { rope_theta: 7 } }, file).model.ropeTheta).toBe(3)
  })

  it("refuses a bad field by its path, its value and what it should be", () => {
    const cases: Array<[Json, string]> = [
      [{ ...llama, hidden_size: undefined }, "hidden_size is missing (expected a positive integer)"],
      [{ ...llama, hidden_size: null }, "hidden_size is missing (expected a positive integer)"],
      [{ ...llama, hidden_size: 0 }, "hidden_size is 0 (expected a positive integer)"],
      [{ ...llama, num_hidden_layers: "2" }, "num_hidden_layers is \"2\" (expected a positive integer)"],
      [{ ...llama, vocab_size: 271.5 }, "vocab_size is 271.5 (expected a positive integer)"],
      [{ ...llama, num_key_value_heads: -2 }, "num_key_value_heads is -2 (expected a positive integer)"],
      [{ ...qwen2, max_position_embeddings: 0 }, "max_position_embeddings is 0 (expected a positive integer)"],
      [{ ...llama, rms_norm_eps: -1 }, "rms_norm_eps is -1 (expected a positive number)"],
      [{ ...llama, rope_theta: "big" }, "rope_theta is \"big\" (expected a positive number)"],
      [{ ...llama, initializer_range: 0 }, "initializer_range is 0 (expected a positive number)"],
      [{ ...llama, tie_word_embeddings: "yes" }, "tie_word_embeddings is \"yes\" (expected true or false)"],
      [{ ...llama, eos_token_id: [2, -1] }, "eos_token_id.1 is -1 (expected a token id)"],
      [{ ...llama, bos_token_id: "<s>" }, "bos_token_id is \"<s>\" (expected a token id or a list of token ids)"],
      [{ ...llama, pad_token_id: 1.5 }, "pad_token_id is 1.5 (expected a token id)"],
      [{ ...llama, hidden_act: "gelu" }, "hidden_act \"gelu\" is not supported (SwiGLU with silu only)"],
      [{ ...llama, head_dim: 8 }, "head_dim 8 differs from hidden_size / num_attention_heads (4), which Turnwise's decoder requires"],
      [{ ...llama, rope_scaling: 3 }, "rope_scaling is 3 (expected an object or null)"],
      [{ ...llama, rope_scaling: { rope_type: "yarn", factor: 4 } }, "rope_scaling of type \"yarn\" is not supported (default, linear and llama3 only)"],
      [{ ...llama, rope_scaling: { type: "dynamic", factor: 4 } }, "rope_scaling of type \"dynamic\" is not supported (default, linear and llama3 only)"],
      [{ ...llama, rope_parameters: { rope_type: "linear" } }, "rope_parameters.factor is missing (expected a positive number)"],
      [{ ...llama, rope_parameters: { rope_theta: 0 } }, "rope_parameters.rope_theta is 0 (expected a positive number)"],
      [
        { ...llama, rope_scaling: { rope_type: "llama3", factor: 8, low_freq_factor: 4, high_freq_factor: 1, original_max_position_embeddings: 16 } },
        "rope_scaling.high_freq_factor must exceed low_freq_factor",
      ],
      [
        { ...llama, rope_scaling: { rope_type: "llama3", factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 16.5 } },
        "rope_scaling.original_max_position_embeddings is 16.5 (expected a positive integer)",
      ],
      [
        { ...llama, attention_bias: true },
        "attention_bias is true (bias on q, k, v and o projections), which is not supported; Turnwise's decoder has q/k/v bias only (as Qwen2)",
      ],
      [{ ...llama, mlp_bias: true }, "mlp_bias is true, which is not supported (the MLP has no bias)"],
      [{ ...llama, mlp_bias: "no" }, "mlp_bias is \"no\" (expected true or false)"],
      [
        { ...qwen2, use_sliding_window: true, sliding_window: 1024 },
        "use_sliding_window is true with sliding_window 1024, which is not supported (full causal attention only)",
      ],
      [{ ...qwen2, use_sliding_window: true }, "use_sliding_window is true with sliding_window undefined, which is not supported (full causal attention only)"],
      [{ ...llama, num_attention_heads: 3 }, "invalid model config: dModel (16) is not a multiple of nHeads (3)"],
      [{ ...required }, "has neither \"architectures\" nor \"model_type\"; supported architectures: LlamaForCausalLM, Qwen2ForCausalLM"],
      [{ ...required, architectures: [5] }, "architectures.0 is 5 (expected an architecture name)"],
    ]
    for (const [raw, problem] of cases) {
      const error = refusal(raw)
      expect(error, JSON.stringify(raw)).toBeInstanceOf(HfFormatError)
      expect(error.message).toBe(`${file}: ${problem}`)
    }
    // What one architecture refuses, the other does not read.
    expect(parseHfConfig({ ...qwen2, attention_bias: true, mlp_bias: true }, file).model.qkvBias).toBe(true)
    expect(parseHfConfig({ ...llama, use_sliding_window: true }, file).model.qkvBias).toBe(false)
    expect(parseHfConfig({ ...qwen2, use_sliding_window: true, sliding_window: 2048 }, file).model.maxSeqLen).toBe(2048)
    const unknown = refusal({ ...required, model_type: "mistral" })
    expect(unknown).toBeInstanceOf(HfArchitectureError)
    expect(unknown.message).toBe(`${file}: architecture "model_type mistral" is not supported; supported architectures: LlamaForCausalLM, Qwen2ForCausalLM`)
  })
})

describe("run config model.path", () => {
  it("defaults to the preset and byte tokenizer; a path loads the directory's model and tokenizer", async () => {
    const preset = decodeRunConfig({ model: { preset: "tiny" } })
    expect(preset.model.path).toBe("")
    const fx = await writeHfFixture({ seed: 2 })
    const run = decodeRunConfig({ model: { path: fx.dir } })
    const model = await loadModel(run)
    const tokenizer = await loadTokenizer(run, model)
    expect(tokenizer).toBeInstanceOf(HfTokenizer)
    expect(tokenizer.vocabSize).toBe(272)
    expect(maxAbsDiff(logitsOf(model, TOKENS), referenceLogits(fx, TOKENS))).toBeLessThan(1e-4)
    model.dispose()
    const fresh = await loadModel(preset)
    expect(await loadTokenizer(preset, fresh)).toBe(byteTokenizer)
    fresh.dispose()
  })
})
