/**
 * The parts of a run that are not the algorithm: which model, which task, how long,
 * where outputs go. A comparison keeps these fixed and varies only the recipe.
 *
 * @category models
 */
import { Schema } from "effect"
import { ConfigError, decodeSection } from "@turnwise/dsl"

const PositiveInt = Schema.Int.check(Schema.isGreaterThanOrEqualTo(1))
const NonNegativeInt = Schema.Int.check(Schema.isGreaterThanOrEqualTo(0))

/** Settings of one training run. */
export const RunConfig = Schema.Struct({
  model: Schema.Struct({
    /** A preset of model/config.ts ("tiny", "compact", "small", "medium"). */
    preset: Schema.Literals(["tiny", "compact", "small", "medium"]),
    /** Seed of the initial weights (ignored when starting from a checkpoint). */
    seed: Schema.Int,
    /**
     * Starting weights: a checkpoint directory (weights only), "" for the initial weights,
     * or "auto" (the default): the warm start shipped in assets/warm-start when the run
     * has no model.path and the preset and task kind it was made for (compact,
     * arithmetic), else the initial weights. A run logs which it started from.
     */
    init: Schema.String,
    /** A Hugging Face Llama/Qwen2 model directory (config.json, *.safetensors, tokenizer.json) to start from, or "" to use the preset. */
    path: Schema.String,
  }),
  task: Schema.Struct({
    /** "arithmetic" (exact answers) or "program" (program synthesis graded by hidden tests). */
    kind: Schema.Literals(["arithmetic", "program"]),
    /** Difficulty levels of the built-in generator (arithmetic 1..5, program 1..4). */
    levels: Schema.Array(Schema.Literals([1, 2, 3, 4, 5])),
    /** Problems in the training pool. */
    trainCount: PositiveInt,
    /** Held-out problems evaluated before and after. */
    evalCount: PositiveInt,
    /** Seed of the problem generator. */
    seed: Schema.Int,
    /** A JSONL file to train on instead of the generator ("" = generator): {question, answer} lines, or program problems (tasks/program/jsonl.ts). */
    jsonl: Schema.String,
  }),
  train: Schema.Struct({
    /** Training steps (one rollout and one update each); 0 evaluates the starting weights and writes the report without training. */
    steps: NonNegativeInt,
    /** Prompts per step (each sampled groupSize times). */
    promptsPerStep: PositiveInt,
    /** Evaluate every this many steps (0 = only at the end). */
    evalEvery: NonNegativeInt,
    /** Checkpoint every this many steps (0 = only at the end). */
    checkpointEvery: NonNegativeInt,
    /** Seed of the data order and of sampling. */
    seed: Schema.Int,
  }),
  /** tfjs backend: wasm (default), cpu, tensorflow, tensorflow-gpu, webgpu. */
  backend: Schema.Literals(["wasm", "cpu", "tensorflow", "tensorflow-gpu", "webgpu"]),
  /** Sandbox worker threads. */
  sandboxWorkers: PositiveInt,
})
export type RunConfig = typeof RunConfig.Type

/** Defaults of the main job on the built-in task. */
export const defaultRunConfig: RunConfig = {
  model: { preset: "compact", seed: 0, init: "auto", path: "" },
  task: { kind: "arithmetic", levels: [1, 2], trainCount: 2000, evalCount: 200, seed: 1, jsonl: "" },
  train: { steps: 60, promptsPerStep: 8, evalEvery: 20, checkpointEvery: 20, seed: 1 },
  backend: "wasm",
  sandboxWorkers: 2,
}

/** Sections of the run config (the CLI routes `--set` keys by their first segment). */
export const runConfigKeys: ReadonlyArray<string> = ["model", "task", "train", "backend", "sandboxWorkers"]

/** Decode a run config, merging each section with the defaults; bad fields are reported with their path. */
export const decodeRunConfig = (raw: unknown, defaults: RunConfig = defaultRunConfig): RunConfig => {
  if (raw === undefined) return defaults
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) throw new ConfigError({ path: "config", problem: "expected an object" })
  const record = raw as Record<string, unknown>
  for (const key of Object.keys(record)) {
    if (!runConfigKeys.includes(key)) throw new ConfigError({ path: key, problem: `unknown key; run config keys are ${runConfigKeys.join(", ")}` })
  }
  const section = (key: "model" | "task" | "train") => {
    const value = record[key]
    if (value === undefined) return defaults[key]
    if (typeof value !== "object" || value === null || Array.isArray(value)) throw new ConfigError({ path: key, problem: "expected an object" })
    return { ...defaults[key], ...value }
  }
  return decodeSection(
    RunConfig,
    {
      model: section("model"),
      task: section("task"),
      train: section("train"),
      backend: record.backend ?? defaults.backend,
      sandboxWorkers: record.sandboxWorkers ?? defaults.sandboxWorkers,
    },
    "config",
  )
}
