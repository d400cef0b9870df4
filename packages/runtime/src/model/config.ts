/**
 * The shape of a decoder-only transformer, validated.
 *
 * A {@link ModelConfig} is plain data (a Schema) so a recipe can print it, save it
 * beside a checkpoint and load it back from JSON. {@link decodeModelConfig} checks
 * every field and the relations between fields (heads divide the width, query heads
 * are a multiple of key/value heads, the head size is even for rotary positions), and
 * names each broken rule in one {@link ModelConfigError}. Four presets cover tests
 * (`tiny`), the default task (`compact`), quick experiments and the benchmark's small
 * size (`small`) and its larger size (`medium`).
 *
 * @category models
 */
import { Data, Schema } from "effect"

const PositiveInt = Schema.Int.check(Schema.isGreaterThan(0))
const PositiveFinite = Schema.Finite.check(Schema.isGreaterThan(0))

/**
 * How a long-context checkpoint rescales its rotary frequencies (Hugging Face's
 * `rope_scaling`): `linear` divides every frequency by `factor` (position
 * interpolation); `llama3` (Llama 3.1 and later) divides only the low frequencies,
 * those whose wavelength exceeds `originalMaxPositions / lowFreqFactor`, keeps those
 * shorter than `originalMaxPositions / highFreqFactor`, and blends in between.
 *
 * @example
 * const scaling: RopeScaling = { kind: "llama3", factor: 32, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 8192 }
 */
export const RopeScaling = Schema.Union([
  Schema.Struct({ kind: Schema.Literal("linear"), factor: PositiveFinite }),
  Schema.Struct({
    kind: Schema.Literal("llama3"),
    factor: PositiveFinite,
    lowFreqFactor: PositiveFinite,
    highFreqFactor: PositiveFinite,
    originalMaxPositions: PositiveInt,
  }),
])
export type RopeScaling = typeof RopeScaling.Type

/**
 * Hyper-parameters of a Llama/Qwen2-family decoder.
 *
 * @example
 * const config: ModelConfig = { ...presets.tiny, nLayers: 2 }
 */
export const ModelConfig = Schema.Struct({
  /** Number of token ids (259 for the byte tokenizer). */
  vocabSize: PositiveInt,
  /** Width of the residual stream. */
  dModel: PositiveInt,
  /** Number of decoder blocks. */
  nLayers: PositiveInt,
  /** Number of query heads. */
  nHeads: PositiveInt,
  /** Number of key/value heads (grouped-query attention; equal to nHeads for plain multi-head). */
  nKvHeads: PositiveInt,
  /** Hidden width of the SwiGLU MLP. */
  dFf: PositiveInt,
  /** Longest sequence (prompt plus generated tokens) the model accepts. */
  maxSeqLen: PositiveInt,
  /** Base of the rotary position frequencies (10000 in Llama 2, 1e6 in Qwen2). */
  ropeTheta: PositiveFinite,
  /** Rescaled rotary frequencies of long-context checkpoints; absent for plain rotary positions. */
  ropeScaling: Schema.optionalKey(RopeScaling),
  /** Epsilon inside RMSNorm's square root. */
  normEps: PositiveFinite,
  /** Whether q/k/v projections carry a bias (true in Qwen2, false in Llama). */
  qkvBias: Schema.Boolean,
  /** Whether the output head reuses the token embedding matrix. */
  tieEmbeddings: Schema.Boolean,
  /** Standard deviation of the normal initialisation of weight matrices. */
  initStd: PositiveFinite,
  /** Seed of the weight initialisation (same seed, same weights on every backend). */
  seed: Schema.Int,
})
export type ModelConfig = typeof ModelConfig.Type

/**
 * A model configuration broke a rule.
 *
 * @example
 * throw new ModelConfigError({ problems: ["dModel (100) is not a multiple of nHeads (3)"] })
 */
export class ModelConfigError extends Data.TaggedError("ModelConfigError")<{
  readonly problems: ReadonlyArray<string>
}> {
  override get message(): string {
    return `invalid model config: ${this.problems.join("; ")}`
  }
}

/** Rules that involve more than one field. */
const crossFieldProblems = (c: ModelConfig): Array<string> => {
  const problems: Array<string> = []
  if (c.dModel % c.nHeads !== 0) problems.push(`dModel (${c.dModel}) is not a multiple of nHeads (${c.nHeads})`)
  else if ((c.dModel / c.nHeads) % 2 !== 0) {
    problems.push(`head size dModel / nHeads (${c.dModel / c.nHeads}) must be even for rotary positions`)
  }
  if (c.nHeads % c.nKvHeads !== 0) problems.push(`nHeads (${c.nHeads}) is not a multiple of nKvHeads (${c.nKvHeads})`)
  return problems
}

/**
 * Validate untrusted input (JSON, CLI overrides) into a {@link ModelConfig}; throws a
 * {@link ModelConfigError} listing every problem.
 *
 * @example
 * const config = decodeModelConfig({ ...presets.small, seed: 7 })
 */
export const decodeModelConfig = (raw: unknown): ModelConfig => {
  let config: ModelConfig
  try {
    config = Schema.decodeUnknownSync(ModelConfig)(raw, { errors: "all" })
  } catch (error) {
    throw new ModelConfigError({ problems: [error instanceof Error ? error.message : String(error)] })
  }
  const problems = crossFieldProblems(config)
  if (problems.length > 0) throw new ModelConfigError({ problems })
  return config
}

const common = {
  vocabSize: 259,
  ropeTheta: 10000,
  normEps: 1e-6,
  qkvBias: false,
  tieEmbeddings: true,
  initStd: 0.02,
  seed: 0,
} as const

/**
 * Ready-made sizes for the byte tokenizer: `tiny` (about 0.31M parameters, tests),
 * `compact` (about 0.67M, the default task), `small` (about 1.0M), `medium` (about 9.5M).
 *
 * @example
 * const model = createTransformer({ ...presets.tiny, seed: 1 })
 */
export const presets = {
  tiny: { ...common, dModel: 64, nLayers: 6, nHeads: 4, nKvHeads: 2, dFf: 192, maxSeqLen: 512 },
  // Wide and shallow: learns content-based copying (digits from the question into code,
  // from the tool output into the answer) in far fewer wasm-seconds than `tiny`.
  compact: { ...common, dModel: 128, nLayers: 3, nHeads: 4, nKvHeads: 4, dFf: 384, maxSeqLen: 384 },
  small: { ...common, dModel: 128, nLayers: 5, nHeads: 4, nKvHeads: 2, dFf: 384, maxSeqLen: 512 },
  medium: { ...common, dModel: 384, nLayers: 6, nHeads: 6, nKvHeads: 2, dFf: 1024, maxSeqLen: 1024 },
} as const satisfies Record<string, ModelConfig>

/** Names of the {@link presets}. */
export type PresetName = keyof typeof presets

/**
 * Number of weights a configuration has.
 *
 * @example
 * parameterCount(presets.small) // 1_017_600
 */
export const parameterCount = (c: ModelConfig): number => {
  const dHead = c.dModel / c.nHeads
  const dKv = dHead * c.nKvHeads
  const attention = c.dModel * c.dModel * 2 + c.dModel * dKv * 2 + (c.qkvBias ? c.dModel + 2 * dKv : 0)
  const mlp = 3 * c.dModel * c.dFf
  const perLayer = attention + mlp + 2 * c.dModel
  return c.vocabSize * c.dModel * (c.tieEmbeddings ? 1 : 2) + c.nLayers * perLayer + c.dModel
}
