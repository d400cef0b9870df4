/**
 * Settings of `turnwise serve` and of {@link serve}: one Schema, each field with its
 * default and a doc line, decoded once at the edge.
 *
 * @category models
 */
import { Schema } from "effect"
import { decodeSection, Recipe } from "@turnwise/dsl"

const PositiveInt = Schema.Int.check(Schema.isGreaterThanOrEqualTo(1))
const NonNegativeInt = Schema.Int.check(Schema.isGreaterThanOrEqualTo(0))

/** What a served endpoint runs and where it listens. */
export const ServeOptions = Schema.Struct({
  /** Interface to bind; 127.0.0.1 keeps the endpoint on this machine. */
  host: Schema.String,
  /** TCP port (0 picks a free one; the URL says which). */
  port: NonNegativeInt.check(Schema.isLessThanOrEqualTo(65535)),
  /** Bearer token clients must send ("" = no key). */
  apiKey: Schema.String,
  /** The model name clients pass and /v1/models lists. */
  modelName: Schema.String.check(Schema.isMinLength(1)),
  /** The recipe that trains the served policy: a shipped name, a .ts module or a recipe.json. */
  recipe: Schema.String,
  model: Schema.Struct({
    /** A preset of model/config.ts ("tiny", "compact", "small", "medium"), used when path and init are "". */
    preset: Schema.Literals(["tiny", "compact", "small", "medium"]),
    /** Seed of the preset's initial weights. */
    seed: Schema.Int,
    /** A checkpoint directory whose weights to serve ("" = none). */
    init: Schema.String,
    /** A Hugging Face Llama/Qwen2 directory to serve (its tokenizer and chat template too; "" = none). */
    path: Schema.String,
  }),
  /** tfjs backend. */
  backend: Schema.Literals(["wasm", "cpu", "tensorflow", "tensorflow-gpu", "webgpu"]),
  /** Most tokens in one reply (a request's max_tokens may ask for fewer). */
  maxNewTokens: PositiveInt,
  /** Seed of sampling for requests that give none. */
  seed: Schema.Int,
  /** Train automatically once this many rewarded episodes wait (0 = only on POST /v1/train). */
  trainEvery: NonNegativeInt,
  /** Training steps the learning-rate schedule is planned for. */
  plannedSteps: PositiveInt,
  /** Largest request body accepted, in bytes. */
  maxBodyBytes: PositiveInt,
})
export type ServeOptions = typeof ServeOptions.Type

/** The defaults: the compact preset trained by GTPO, on 127.0.0.1:8000 without a key. */
export const defaultServeOptions: ServeOptions = {
  host: "127.0.0.1",
  port: 8000,
  apiKey: "",
  modelName: "turnwise",
  recipe: "gtpo",
  model: { preset: "compact", seed: 0, init: "", path: "" },
  backend: "wasm",
  maxNewTokens: 64,
  seed: 1,
  trainEvery: 0,
  plannedSteps: 100,
  maxBodyBytes: 4 * 1024 * 1024,
}

/** Partial settings, as a caller or the command line gives them. */
export type ServeOverrides = Partial<Omit<ServeOptions, "model">> & { readonly model?: Partial<ServeOptions["model"]> }

/**
 * Merge overrides into the defaults and decode (a ConfigError names a bad field).
 *
 * @example
 * decodeServeOptions({ port: 0, model: { preset: "tiny" } }).host // "127.0.0.1"
 */
export const decodeServeOptions = (overrides: unknown = {}): ServeOptions => {
  const o = (typeof overrides === "object" && overrides !== null ? overrides : {}) as Record<string, unknown>
  const model = typeof o.model === "object" && o.model !== null ? o.model : {}
  return decodeSection(ServeOptions, { ...defaultServeOptions, ...o, model: { ...defaultServeOptions.model, ...model } }, "serve")
}

/**
 * Settings from `--set key=value` assignments (dotted keys, JSON values), as the
 * command line gives them, over an optional config-file object.
 *
 * @example
 * serveOptionsFromSets(["port=9000", "model.preset=tiny", "apiKey=secret"]).port // 9000
 */
export const serveOptionsFromSets = (sets: ReadonlyArray<string>, file: Readonly<Record<string, unknown>> = {}): ServeOptions =>
  decodeServeOptions(Recipe.applyOverrides(file, sets))

/** The settings with their defaults, one per line (for `turnwise serve --help`). */
export const serveUsage = `turnwise serve [--set key=value]...

  host=${defaultServeOptions.host}        interface to bind (127.0.0.1 keeps the endpoint on this machine)
  port=${defaultServeOptions.port}             TCP port (0 picks a free one)
  apiKey=""             bearer token clients must send ("" = none)
  modelName=${defaultServeOptions.modelName}    model name clients pass and /v1/models lists
  recipe=${defaultServeOptions.recipe}           recipe that trains the served policy (name, .ts module or recipe.json)
  model.preset=${defaultServeOptions.model.preset}  preset used when model.path and model.init are ""
  model.seed=${defaultServeOptions.model.seed}          seed of the preset's initial weights
  model.init=""         checkpoint directory whose weights to serve
  model.path=""         Hugging Face Llama/Qwen2 directory to serve
  backend=${defaultServeOptions.backend}          tfjs backend
  maxNewTokens=${defaultServeOptions.maxNewTokens}       most tokens in one reply
  seed=${defaultServeOptions.seed}                sampling seed of requests that give none
  trainEvery=${defaultServeOptions.trainEvery}          train once this many rewarded episodes wait (0 = only on POST /v1/train)
  plannedSteps=${defaultServeOptions.plannedSteps}      training steps the learning-rate schedule is planned for
  maxBodyBytes=${defaultServeOptions.maxBodyBytes}  largest request body
`
