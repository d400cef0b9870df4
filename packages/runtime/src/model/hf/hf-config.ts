/**
 * config.json of a Hugging Face Llama/Qwen2 model, read into Turnwise's
 * {@link ModelConfig} and written back from one.
 *
 * The fields Turnwise reads are declared once, as Schemas with their defaults
 * ({@link LlamaConfigJson}, {@link Qwen2ConfigJson}), and config.json is decoded once;
 * a bad field is reported with its path, its value and what was expected. Besides the
 * shape of the network, the fields whose other values would change it (`hidden_act`,
 * `head_dim`, other rope scaling types, `attention_bias`, `mlp_bias`,
 * `use_sliding_window`) are checked, so that a model Turnwise cannot run exactly is
 * refused instead of run wrongly. Fields Turnwise does not read are kept as they are
 * and written back on save.
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
import { Result, Schema, SchemaIssue, SchemaTransformation } from "effect"
import type { SchemaAST } from "effect"
import { setting } from "@turnwise/core"
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

const show = (value: unknown): string => JSON.stringify(value)

// The kinds of value config.json holds; `expected` is what an error says a bad one should have been.
const PositiveInt = Schema.Number.check(Schema.makeFilter((n: number) => Number.isSafeInteger(n) && n > 0, { expected: "a positive integer" }))
const PositiveNumber = Schema.Number.check(Schema.makeFilter((n: number) => Number.isFinite(n) && n > 0, { expected: "a positive number" }))
const Flag = Schema.Boolean.annotate({ expected: "true or false" })
const TokenId = Schema.Number.check(Schema.makeFilter((n: number) => Number.isSafeInteger(n) && n >= 0, { expected: "a token id" }))
/** A token id, or a list of them of which the first counts (Llama 3 lists several end-of-turn ids). */
const TokenIds = Schema.Union([TokenId, Schema.Array(TokenId)]).annotate({ expected: "a token id or a list of token ids" })
const firstId = (ids: typeof TokenIds.Type | undefined): number | null => (ids === undefined ? null : typeof ids === "number" ? ids : (ids[0] ?? null))

/** A flag whose `true` asks for something Turnwise's decoder does not have; `refusal` follows "<field> is true". */
const falseOnly = (refusal: string) => Flag.check(Schema.makeFilter((on: boolean) => !on || `is true${refusal}`))

const SiluOnly = Schema.String.annotate({ expected: "an activation name" }).check(
  Schema.makeFilter((act: string) => act === "silu" || `${show(act)} is not supported (SwiGLU with silu only)`),
)

/** config.json names the rotary scaling kind `rope_type`, or `type` in older files; none means plain rotary positions. */
const ropeTypeOf = (fields: Readonly<Record<string, unknown>>): unknown => fields["rope_type"] ?? fields["type"] ?? "default"
const ropeTypes: ReadonlyArray<unknown> = ["default", "linear", "llama3"]

const LinearRope = { rope_type: Schema.Literal("linear"), factor: PositiveNumber }
const Llama3Rope = {
  rope_type: Schema.Literal("llama3"),
  factor: PositiveNumber,
  low_freq_factor: PositiveNumber,
  high_freq_factor: PositiveNumber,
  original_max_position_embeddings: PositiveInt,
}
const highAboveLow = Schema.makeFilter((rope: { readonly low_freq_factor: number; readonly high_freq_factor: number }) =>
  rope.high_freq_factor > rope.low_freq_factor || { path: ["high_freq_factor"], issue: "must exceed low_freq_factor" }
)

/**
 * `rope_scaling` or `rope_parameters`: an object whose kind (`rope_type`, or `type` in
 * older files) decides which of `kinds` checks its other fields.
 */
const ropeJson = <Kinds extends Schema.Top>(kinds: Kinds) =>
  Schema.Record(Schema.String, Schema.Unknown).annotate({ expected: "an object or null" }).check(
    Schema.makeFilter((fields) =>
      ropeTypes.includes(ropeTypeOf(fields)) || `of type ${show(ropeTypeOf(fields))} is not supported (default, linear and llama3 only)`
    ),
  ).pipe(
    Schema.decodeTo(
      kinds,
      SchemaTransformation.transform({
        // The kind under one name; the union then checks the fields that kind needs.
        decode: (fields): Kinds["Encoded"] => ({ ...fields, rope_type: ropeTypeOf(fields) }),
        encode: (rope): Readonly<Record<string, unknown>> => rope as Readonly<Record<string, unknown>>,
      }),
    ),
  )
const PlainRope = { rope_type: Schema.Literal("default") }
const RopeScalingJson = ropeJson(Schema.Union([Schema.Struct(PlainRope), Schema.Struct(LinearRope), Schema.Struct(Llama3Rope).check(highAboveLow)]))
/** Transformers 5 moves rope_theta into the rope parameters. */
const RopeTheta = { rope_theta: Schema.optionalKey(PositiveNumber) }
const RopeParametersJson = ropeJson(
  Schema.Union([
    Schema.Struct({ ...RopeTheta, ...PlainRope }),
    Schema.Struct({ ...RopeTheta, ...LinearRope }),
    Schema.Struct({ ...RopeTheta, ...Llama3Rope }).check(highAboveLow),
  ]),
)

/** The base of the rotary frequencies when config.json gives none (Llama 2's). */
const defaultRopeTheta = 10000

/** The fields of config.json both architectures read. */
const commonFields = {
  hidden_size: PositiveInt,
  intermediate_size: PositiveInt,
  num_hidden_layers: PositiveInt,
  num_attention_heads: PositiveInt,
  /** Key/value heads; left out, num_attention_heads (plain multi-head attention). */
  num_key_value_heads: Schema.optionalKey(PositiveInt),
  vocab_size: PositiveInt,
  rms_norm_eps: setting(PositiveNumber, 1e-6, "Epsilon inside RMSNorm's square root"),
  /** Base of the rotary frequencies; left out, rope_parameters.rope_theta, else {@link defaultRopeTheta}. */
  rope_theta: Schema.optionalKey(PositiveNumber),
  rope_scaling: Schema.optionalKey(RopeScalingJson),
  rope_parameters: Schema.optionalKey(RopeParametersJson),
  tie_word_embeddings: setting(Flag, false, "Whether the output head reuses the token embedding matrix"),
  initializer_range: setting(PositiveNumber, 0.02, "Standard deviation of the initial weights"),
  hidden_act: setting(SiluOnly, "silu", "The MLP's activation (SwiGLU with silu only)"),
  /** Size of one attention head; Turnwise's decoder requires hidden_size / num_attention_heads. */
  head_dim: Schema.optionalKey(PositiveInt),
  bos_token_id: Schema.optionalKey(TokenIds),
  eos_token_id: Schema.optionalKey(TokenIds),
  pad_token_id: Schema.optionalKey(TokenIds),
}

const headDimFits = Schema.makeFilter((c: { readonly hidden_size: number; readonly num_attention_heads: number; readonly head_dim?: number }) =>
  c.head_dim === undefined || c.head_dim === c.hidden_size / c.num_attention_heads || {
    path: ["head_dim"],
    issue: `${c.head_dim} differs from hidden_size / num_attention_heads (${c.hidden_size / c.num_attention_heads}), which Turnwise's decoder requires`,
  }
)

/** config.json of a LlamaForCausalLM, as Turnwise reads it. */
export const LlamaConfigJson = Schema.Struct({
  ...commonFields,
  max_position_embeddings: setting(PositiveInt, 2048, "Context length the model was trained for"),
  attention_bias: setting(
    falseOnly(" (bias on q, k, v and o projections), which is not supported; Turnwise's decoder has q/k/v bias only (as Qwen2)"),
    false,
    "Bias on the attention projections",
  ),
  mlp_bias: setting(falseOnly(", which is not supported (the MLP has no bias)"), false, "Bias on the MLP projections"),
}).check(headDimFits)

/** config.json of a Qwen2ForCausalLM, as Turnwise reads it (q/k/v bias is implied). */
export const Qwen2ConfigJson = Schema.Struct({
  ...commonFields,
  max_position_embeddings: setting(PositiveInt, 32768, "Context length the model was trained for"),
  use_sliding_window: setting(Flag, false, "Sliding-window attention (accepted only when the window covers the whole context)"),
  sliding_window: Schema.optionalKey(Schema.Number.annotate({ expected: "a number of positions" })),
}).check(headDimFits)

/** The fields that name the architecture, read first: they decide which of the Schemas above applies. */
const ArchitectureJson = Schema.Struct({
  architectures: Schema.optionalKey(Schema.Array(Schema.String.annotate({ expected: "an architecture name" }))),
  model_type: Schema.optionalKey(Schema.String.annotate({ expected: "a model type" })),
})

const modelTypes: Record<string, HfArchitecture> = { llama: "LlamaForCausalLM", qwen2: "Qwen2ForCausalLM" }

const isSupported = (name: string): name is HfArchitecture => (supportedArchitectures as ReadonlyArray<string>).includes(name)

/** What a field's Schema says it expects: its last check's `expected`, else its own. */
const expectedOf = (ast: SchemaAST.AST | undefined): string => {
  if (ast === undefined) return "a value"
  const fromCheck = (ast.checks ?? []).map((check) => check.annotations?.["expected"]).reverse().find((expected) => typeof expected === "string")
  const own = ast.annotations?.["expected"]
  return typeof fromCheck === "string" ? fromCheck : typeof own === "string" ? own : ast._tag.toLowerCase()
}

const valueAt = (json: unknown, at: ReadonlyArray<PropertyKey>): unknown =>
  at.reduce<unknown>((node, key) => (typeof node === "object" && node !== null ? (node as Record<PropertyKey, unknown>)[key] : undefined), json)

/**
 * The first problem a decoding issue reports, as "<field path> <what is wrong>": a
 * check's own sentence ("hidden_act \"gelu\" is not supported ..."), or the value
 * found and what the field's Schema expects ("hidden_size is 0 (expected a positive
 * integer)", "rope_scaling.factor is missing (...)").
 */
const describeIssue = (root: SchemaIssue.Issue, json: unknown): string => {
  const walk = (issue: SchemaIssue.Issue, at: ReadonlyArray<PropertyKey>, field: SchemaAST.AST | undefined, parent: SchemaAST.AST | undefined): string => {
    const found = () => show(valueAt(json, at))
    switch (issue._tag) {
      case "Pointer": {
        const key = issue.path.length === 1 ? issue.path[0] : undefined
        const property = parent?._tag === "Objects" ? parent.propertySignatures.find((p) => p.name === key) : undefined
        return walk(issue.issue, [...at, ...issue.path], property?.type, undefined)
      }
      case "Composite":
        return walk(issue.issues[0], at, field, issue.ast)
      case "AnyOf": {
        const first = issue.issues[0]
        return first === undefined ? `${at.join(".")} is ${found()} (expected ${expectedOf(issue.ast)})` : walk(first, at, field, issue.ast)
      }
      case "Encoding":
        return walk(issue.issue, at, field, parent)
      case "Filter": {
        const inner = issue.issue
        const own = inner._tag === "InvalidValue" ? inner.annotations?.["message"] : undefined
        if (inner._tag === "InvalidValue" && typeof own !== "string") {
          return `${at.join(".")} is ${found()} (expected ${String(issue.filter.annotations?.["expected"] ?? "a valid value")})`
        }
        return walk(inner, at, field, parent)
      }
      case "InvalidValue": {
        const own = issue.annotations?.["message"]
        return typeof own === "string" ? `${at.join(".")} ${own}` : `${at.join(".")} is ${found()} (expected a valid value)`
      }
      case "InvalidType":
        return `${at.join(".")} is ${found()} (expected ${expectedOf(issue.ast)})`
      case "MissingKey":
        return `${at.join(".")} is missing (expected ${expectedOf(field)})`
      default:
        return `${at.join(".")}: ${SchemaIssue.makeFormatterDefault()(issue)}`
    }
  }
  return walk(root, [], undefined, undefined)
}

/** Decode config.json's fields with `schema`; a bad field is an {@link HfFormatError} naming it. */
const decodeJson = <S extends Schema.ConstraintDecoder<unknown>>(schema: S, fields: Readonly<Record<string, unknown>>, file: string): S["Type"] => {
  const decoded = Schema.decodeUnknownResult(schema)(fields)
  if (Result.isFailure(decoded)) throw new HfFormatError({ file, problem: describeIssue(decoded.failure.issue, fields) })
  return decoded.success
}

/** The rotary scaling a decoded `rope_scaling` / `rope_parameters` asks for (undefined for plain positions). */
const ropeScalingOf = (rope: typeof RopeScalingJson.Type | typeof RopeParametersJson.Type | undefined): RopeScaling | undefined => {
  if (rope?.rope_type === "linear") return { kind: "linear", factor: rope.factor }
  if (rope?.rope_type === "llama3") {
    return {
      kind: "llama3",
      factor: rope.factor,
      lowFreqFactor: rope.low_freq_factor,
      highFreqFactor: rope.high_freq_factor,
      originalMaxPositions: rope.original_max_position_embeddings,
    }
  }
  return undefined
}

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
  // config.json writes null for a field left at its default (rope_scaling, sliding_window, ...);
  // an object built in code may say the same with undefined.
  const fields = Object.fromEntries(Object.entries(raw).filter(([, value]) => value !== null && value !== undefined))

  const named = decodeJson(ArchitectureJson, fields, file)
  const listed = named.architectures?.[0]
  const architecture = listed ?? (named.model_type === undefined ? undefined : (modelTypes[named.model_type] ?? `model_type ${named.model_type}`))
  if (architecture === undefined) return fail(`has neither "architectures" nor "model_type"; supported architectures: ${supportedArchitectures.join(", ")}`)
  if (!isSupported(architecture)) throw new HfArchitectureError({ file, architecture })
  const isQwen2 = architecture === "Qwen2ForCausalLM"
  const maxSeqLenFor = (maxPositionEmbeddings: number) => options.maxSeqLen ?? Math.min(maxPositionEmbeddings, defaultHfMaxSeqLen)

  let json: typeof LlamaConfigJson.Type | typeof Qwen2ConfigJson.Type
  if (isQwen2) {
    const qwen2 = decodeJson(Qwen2ConfigJson, fields, file)
    // A window at least as long as the context the model gets is full causal attention.
    const window = qwen2.sliding_window
    if (qwen2.use_sliding_window && (window === undefined || window < maxSeqLenFor(qwen2.max_position_embeddings))) {
      fail(`use_sliding_window is true with sliding_window ${show(window)}, which is not supported (full causal attention only)`)
    }
    json = qwen2
  } else json = decodeJson(LlamaConfigJson, fields, file)

  const ropeScaling = ropeScalingOf(json.rope_parameters) ?? ropeScalingOf(json.rope_scaling)
  const candidate = {
    vocabSize: json.vocab_size,
    dModel: json.hidden_size,
    nLayers: json.num_hidden_layers,
    nHeads: json.num_attention_heads,
    nKvHeads: json.num_key_value_heads ?? json.num_attention_heads,
    dFf: json.intermediate_size,
    maxSeqLen: maxSeqLenFor(json.max_position_embeddings),
    ropeTheta: json.rope_theta ?? json.rope_parameters?.rope_theta ?? defaultRopeTheta,
    ...(ropeScaling === undefined ? {} : { ropeScaling }),
    normEps: json.rms_norm_eps,
    qkvBias: isQwen2,
    tieEmbeddings: json.tie_word_embeddings,
    initStd: json.initializer_range,
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
    maxPositionEmbeddings: json.max_position_embeddings,
    bosTokenId: firstId(json.bos_token_id),
    eosTokenId: firstId(json.eos_token_id),
    padTokenId: firstId(json.pad_token_id),
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
