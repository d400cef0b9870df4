/**
 * config.json of a Hugging Face Llama/Qwen2 model, read into Turnwise's
 * {@link ModelConfig} and written back from one.
 *
 * Fields read: `architectures` (or `model_type`), `hidden_size`, `intermediate_size`,
 * `num_hidden_layers`, `num_attention_heads`, `num_key_value_heads`, `rms_norm_eps`,
 * `rope_theta` (or `rope_parameters.rope_theta`), `vocab_size`,
 * `max_position_embeddings`, `tie_word_embeddings`, `attention_bias` / `mlp_bias`
 * (Llama), `rope_scaling` (or `rope_parameters`) of type linear or llama3, the token
 * ids, and the fields whose other values would change the network (`hidden_act`,
 * `head_dim`, other rope scaling types, `use_sliding_window`), which are checked so
 * that a model Turnwise cannot run exactly is refused instead of run wrongly.
 *
 * Qwen2 always has q/k/v bias (and no o_proj bias); Llama has none unless
 * `attention_bias`, which also biases o_proj and is therefore refused.
 *
 * The model's `maxSeqLen` is `max_position_embeddings` capped at
 * {@link defaultHfMaxSeqLen} unless asked otherwise: the training forward pass builds a
 * maxSeqLen x maxSeqLen mask, which at 32k positions would take 4 GiB.
 *
 * @category models
 */
import * as path from "node:path"
import { decodeModelConfig, ModelConfigError } from "../config.js"
import type { ModelConfig, RopeScaling } from "../config.js"
import { HfArchitectureError, HfFormatError, supportedArchitectures } from "./errors.js"
import type { HfArchitecture } from "./errors.js"
import { readJsonObject } from "./hf-files.js"

/** The longest context a loaded model gets unless asked otherwise. */
export const defaultHfMaxSeqLen = 2048

/** Storage precision of saved weights. */
export type HfDtype = "float32" | "bfloat16"

/** A model directory's config.json, understood. */
export interface HfConfig {
  readonly architecture: HfArchitecture
  /** The decoder to build. */
  readonly model: ModelConfig
  /** config.json as read; saving writes it back with its dtype updated. */
  readonly raw: Readonly<Record<string, unknown>>
  /** The context length config.json declares (model.maxSeqLen may be capped below it). */
  readonly maxPositionEmbeddings: number
  readonly bosTokenId: number | null
  /** The first id when config.json lists several. */
  readonly eosTokenId: number | null
  readonly padTokenId: number | null
}

/** Options of {@link parseHfConfig}. */
export interface HfConfigOptions {
  /** Longest sequence the loaded model accepts (default: max_position_embeddings, at most {@link defaultHfMaxSeqLen}). */
  readonly maxSeqLen?: number
}

const modelTypes: Record<string, HfArchitecture> = { llama: "LlamaForCausalLM", qwen2: "Qwen2ForCausalLM" }

const isSupported = (name: string): name is HfArchitecture => (supportedArchitectures as ReadonlyArray<string>).includes(name)

/**
 * Understand a parsed config.json; `file` names it in errors.
 *
 * @example
 * const config = parseHfConfig(JSON.parse(text), "models/qwen/config.json")
 * config.model.qkvBias // true
 */
export const parseHfConfig = (raw: Readonly<Record<string, unknown>>, file: string, options: HfConfigOptions = {}): HfConfig => {
  const fail = (problem: string): never => {
    throw new HfFormatError({ file, problem })
  }
  const show = (value: unknown) => JSON.stringify(value)

  const architectures = raw["architectures"]
  let architecture: string
  if (Array.isArray(architectures) && architectures.length > 0) {
    const first: unknown = architectures[0]
    architecture = typeof first === "string" ? first : show(first)
  } else if (typeof raw["model_type"] === "string") {
    architecture = modelTypes[raw["model_type"]] ?? `model_type ${raw["model_type"]}`
  } else {
    return fail(`has neither "architectures" nor "model_type"; supported architectures: ${supportedArchitectures.join(", ")}`)
  }
  if (!isSupported(architecture)) throw new HfArchitectureError({ file, architecture })
  const isQwen2 = architecture === "Qwen2ForCausalLM"

  const positiveInt = (name: string, fallback?: number): number => {
    const value = raw[name] ?? fallback
    if (value === undefined) return fail(`${name} is missing (expected a positive integer)`)
    if (typeof value !== "number" || !Number.isSafeInteger(value) || value <= 0) return fail(`${name} is ${show(value)} (expected a positive integer)`)
    return value
  }
  const positive = (name: string, value: unknown): number => {
    if (typeof value !== "number" || !Number.isFinite(value) || value <= 0) return fail(`${name} is ${show(value)} (expected a positive number)`)
    return value
  }
  const flag = (name: string, fallback: boolean): boolean => {
    const value = raw[name] ?? fallback
    if (typeof value !== "boolean") return fail(`${name} is ${show(value)} (expected true or false)`)
    return value
  }
  const tokenId = (name: string): number | null => {
    const value = raw[name]
    const id = Array.isArray(value) ? (value[0] as unknown) : value
    if (id === undefined || id === null) return null
    if (typeof id !== "number" || !Number.isSafeInteger(id) || id < 0) return fail(`${name} is ${show(value)} (expected a token id)`)
    return id
  }

  const dModel = positiveInt("hidden_size")
  const nHeads = positiveInt("num_attention_heads")
  const nKvHeads = positiveInt("num_key_value_heads", nHeads)
  const maxPositionEmbeddings = positiveInt("max_position_embeddings", isQwen2 ? 32768 : 2048)

  // Fields whose other values change the network: refuse rather than compute something else.
  const act = raw["hidden_act"] ?? "silu"
  if (act !== "silu") fail(`hidden_act ${show(act)} is not supported (SwiGLU with silu only)`)
  const headDim = raw["head_dim"]
  if (headDim !== undefined && headDim !== null && headDim !== dModel / nHeads) {
    fail(`head_dim ${show(headDim)} differs from hidden_size / num_attention_heads (${dModel / nHeads}), which Turnwise's decoder requires`)
  }
  const ropeParameters = raw["rope_parameters"]
  const ropeParams = typeof ropeParameters === "object" && ropeParameters !== null ? (ropeParameters as Record<string, unknown>) : undefined
  let ropeScaling: RopeScaling | undefined
  for (
    const [name, scaling] of [
      ["rope_scaling", raw["rope_scaling"]],
      ["rope_parameters", ropeParams],
    ] as const
  ) {
    if (scaling === undefined || scaling === null) continue
    if (typeof scaling !== "object") fail(`${name} is ${show(scaling)} (expected an object or null)`)
    const fields = scaling as Record<string, unknown>
    const kind = fields["rope_type"] ?? fields["type"] ?? "default"
    const field = (key: string): number => positive(`${name}.${key}`, fields[key])
    if (kind === "default") continue
    if (kind === "linear") ropeScaling = { kind: "linear", factor: field("factor") }
    else if (kind === "llama3") {
      ropeScaling = {
        kind: "llama3",
        factor: field("factor"),
        lowFreqFactor: field("low_freq_factor"),
        highFreqFactor: field("high_freq_factor"),
        originalMaxPositions: field("original_max_position_embeddings"),
      }
      if (ropeScaling.highFreqFactor <= ropeScaling.lowFreqFactor) fail(`${name}.high_freq_factor must exceed low_freq_factor`)
    } else fail(`${name} of type ${show(kind)} is not supported (default, linear and llama3 only)`)
  }
  if (!isQwen2 && flag("attention_bias", false)) {
    fail("attention_bias is true (bias on q, k, v and o projections), which is not supported; Turnwise's decoder has q/k/v bias only (as Qwen2)")
  }
  if (!isQwen2 && flag("mlp_bias", false)) fail("mlp_bias is true, which is not supported (the MLP has no bias)")
  if (isQwen2 && flag("use_sliding_window", false)) {
    const window = raw["sliding_window"]
    if (typeof window !== "number" || window < (options.maxSeqLen ?? Math.min(maxPositionEmbeddings, defaultHfMaxSeqLen))) {
      fail(`use_sliding_window is true with sliding_window ${show(window)}, which is not supported (full causal attention only)`)
    }
  }

  const ropeTheta = positive("rope_theta", raw["rope_theta"] ?? ropeParams?.["rope_theta"] ?? 10000)
  const candidate = {
    vocabSize: positiveInt("vocab_size"),
    dModel,
    nLayers: positiveInt("num_hidden_layers"),
    nHeads,
    nKvHeads,
    dFf: positiveInt("intermediate_size"),
    maxSeqLen: options.maxSeqLen ?? Math.min(maxPositionEmbeddings, defaultHfMaxSeqLen),
    ropeTheta,
    ...(ropeScaling === undefined ? {} : { ropeScaling }),
    normEps: positive("rms_norm_eps", raw["rms_norm_eps"] ?? 1e-6),
    qkvBias: isQwen2,
    tieEmbeddings: flag("tie_word_embeddings", false),
    initStd: positive("initializer_range", raw["initializer_range"] ?? 0.02),
    seed: 0,
  }
  let model: ModelConfig
  try {
    model = decodeModelConfig(candidate)
  } catch (error) {
    if (error instanceof ModelConfigError) return fail(error.message)
    throw error
  }
  return {
    architecture,
    model,
    raw,
    maxPositionEmbeddings,
    bosTokenId: tokenId("bos_token_id"),
    eosTokenId: tokenId("eos_token_id"),
    padTokenId: tokenId("pad_token_id"),
  }
}

/**
 * Read and understand `dir/config.json` (HfMissingFileError when absent).
 *
 * @example
 * const config = await readHfConfig("models/qwen2.5-0.5b", { maxSeqLen: 1024 })
 */
export const readHfConfig = async (dir: string, options: HfConfigOptions = {}): Promise<HfConfig> =>
  parseHfConfig(await readJsonObject(dir, "config.json"), path.join(dir, "config.json"), options)

/** The fields of config.json a {@link ModelConfig} determines. */
const describeModel = (c: ModelConfig): Record<string, unknown> => ({
  hidden_size: c.dModel,
  intermediate_size: c.dFf,
  num_hidden_layers: c.nLayers,
  num_attention_heads: c.nHeads,
  num_key_value_heads: c.nKvHeads,
  vocab_size: c.vocabSize,
  rms_norm_eps: c.normEps,
  rope_theta: c.ropeTheta,
  rope_scaling: ropeScalingJson(c.ropeScaling),
  tie_word_embeddings: c.tieEmbeddings,
})

/** `rope_scaling` as Hugging Face writes it (null for plain rotary positions). */
const ropeScalingJson = (scaling: RopeScaling | undefined): Record<string, unknown> | null => {
  if (scaling === undefined) return null
  if (scaling.kind === "linear") return { rope_type: "linear", factor: scaling.factor }
  return {
    rope_type: "llama3",
    factor: scaling.factor,
    low_freq_factor: scaling.lowFreqFactor,
    high_freq_factor: scaling.highFreqFactor,
    original_max_position_embeddings: scaling.originalMaxPositions,
  }
}

/**
 * The config.json to save a model with. With `base` (the config.json it was loaded
 * from), that file is kept as is, its dtype updated, after checking it describes the
 * same network; without, a fresh one is written (Qwen2ForCausalLM when the model has
 * q/k/v bias, else LlamaForCausalLM).
 *
 * @example
 * const json = hfConfigJson(model.config, { base: loaded.raw, dtype: "bfloat16" })
 */
export const hfConfigJson = (
  model: ModelConfig,
  options: { readonly base?: Readonly<Record<string, unknown>>; readonly dtype: HfDtype; readonly file?: string },
): Record<string, unknown> => {
  const fields = describeModel(model)
  if (options.base !== undefined) {
    const file = options.file ?? "config.json"
    const source = parseHfConfig(options.base, file, { maxSeqLen: model.maxSeqLen })
    const expected = describeModel(source.model)
    for (const [key, value] of Object.entries(fields)) {
      if (JSON.stringify(expected[key]) !== JSON.stringify(value)) {
        throw new HfFormatError({
          file,
          problem: `describes a different network than the one saved: ${key} is ${JSON.stringify(expected[key])}, the model has ${JSON.stringify(value)}`,
        })
      }
    }
    return { ...options.base, ...("dtype" in options.base ? { dtype: options.dtype } : {}), torch_dtype: options.dtype }
  }
  const qwen2 = model.qkvBias
  return {
    architectures: [qwen2 ? "Qwen2ForCausalLM" : "LlamaForCausalLM"],
    model_type: qwen2 ? "qwen2" : "llama",
    ...fields,
    max_position_embeddings: model.maxSeqLen,
    hidden_act: "silu",
    initializer_range: model.initStd,
    ...(qwen2 ? { use_sliding_window: false } : { attention_bias: false, mlp_bias: false }),
    use_cache: true,
    torch_dtype: options.dtype,
  }
}
