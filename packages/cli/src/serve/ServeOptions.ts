/**
 * Settings of `turnwise serve` and of {@link serve}: one Schema, each field with its
 * default and a doc line, decoded once at the edge.
 *
 * @category models
 */
import { Schema } from "effect"
import { defaultsOf, section, setting } from "@turnwise/core"
import { decodeSection, Recipe } from "@turnwise/dsl"

const PositiveInt = Schema.Int.check(Schema.isGreaterThanOrEqualTo(1))
const NonNegativeInt = Schema.Int.check(Schema.isGreaterThanOrEqualTo(0))

/** What a served endpoint runs and where it listens; the defaults serve the compact preset, trained by GTPO, on 127.0.0.1:8000 without a key. */
export const ServeOptions = Schema.Struct({
  host: setting(Schema.String, "127.0.0.1", "Interface to bind; 127.0.0.1 keeps the endpoint on this machine"),
  port: setting(NonNegativeInt.check(Schema.isLessThanOrEqualTo(65535)), 8000, "TCP port (0 picks a free one; the URL says which)"),
  apiKey: setting(Schema.String, "", "Bearer token clients must send (\"\" = no key)"),
  modelName: setting(Schema.String.check(Schema.isMinLength(1)), "turnwise", "The model name clients pass and /v1/models lists"),
  recipe: setting(Schema.String, "gtpo", "The recipe that trains the served policy: a shipped name, a .ts module or a recipe.json"),
  model: section(
    {
      preset: setting(Schema.Literals(["tiny", "compact", "small", "medium"]), "compact", "A model preset, used when path and init are \"\""),
      seed: setting(Schema.Int, 0, "Seed of the preset's initial weights"),
      init: setting(Schema.String, "", "A checkpoint directory whose weights to serve (\"\" = none)"),
      path: setting(Schema.String, "", "A Hugging Face Llama/Qwen2 directory to serve, with its tokenizer and chat template (\"\" = none)"),
    },
    "The served policy",
  ),
  backend: setting(Schema.Literals(["wasm", "cpu", "tensorflow", "tensorflow-gpu", "webgpu"]), "wasm", "tfjs backend"),
  maxNewTokens: setting(PositiveInt, 64, "Most tokens in one reply (a request's max_tokens may ask for fewer)"),
  seed: setting(Schema.Int, 1, "Seed of sampling for requests that give none"),
  trainEvery: setting(NonNegativeInt, 0, "Train automatically once this many rewarded episodes wait (0 = only on POST /v1/train)"),
  plannedSteps: setting(PositiveInt, 100, "Training steps the learning-rate schedule is planned for"),
  maxBodyBytes: setting(PositiveInt, 4 * 1024 * 1024, "Largest request body accepted, in bytes"),
})
export type ServeOptions = typeof ServeOptions.Type

/** Every serve default. */
export const defaultServeOptions: ServeOptions = defaultsOf(ServeOptions)

/** Partial settings, as a caller or the command line gives them. */
export type ServeOverrides = Partial<Omit<ServeOptions, "model">> & { readonly model?: Partial<ServeOptions["model"]> }

/**
 * Decode settings; what they leave out takes its default (a ConfigError names a bad field).
 *
 * @example
 * decodeServeOptions({ port: 0, model: { preset: "tiny" } }).host // "127.0.0.1"
 */
export const decodeServeOptions = (overrides: unknown = {}): ServeOptions => decodeSection(ServeOptions, overrides, "serve")

/**
 * Settings from `--set key=value` assignments (dotted keys, JSON values), as the
 * command line gives them, over an optional config-file object.
 *
 * @example
 * serveOptionsFromSets(["port=9000", "model.preset=tiny", "apiKey=secret"]).port // 9000
 */
export const serveOptionsFromSets = (sets: ReadonlyArray<string>, file: Readonly<Record<string, unknown>> = {}): ServeOptions =>
  decodeServeOptions(Recipe.applyOverrides(file, sets))
