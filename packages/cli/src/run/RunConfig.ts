/**
 * The parts of a run that are not the algorithm: which model, which task, how long,
 * where outputs go. A comparison keeps these fixed and varies only the recipe.
 *
 * @category models
 */
import { Schema } from "effect"
import { defaultsOf, section, setting } from "@turnwise/core"
import { ConfigError, decodeSection } from "@turnwise/dsl"
import { hostPortPattern } from "@turnwise/cluster"

const PositiveInt = Schema.Int.check(Schema.isGreaterThanOrEqualTo(1))
const NonNegativeInt = Schema.Int.check(Schema.isGreaterThanOrEqualTo(0))

/** Settings of one training run, each with its default and doc; the defaults are the main job on the built-in task. */
export const RunConfig = Schema.Struct({
  model: section(
    {
      preset: setting(Schema.Literals(["tiny", "compact", "small", "medium"]), "compact", "A model preset (tiny, compact, small, medium)"),
      seed: setting(Schema.Int, 0, "Seed of the initial weights (ignored when starting from a checkpoint)"),
      init: setting(
        Schema.String,
        "auto",
        "Starting weights: a checkpoint directory (weights only), \"\" for the initial weights, or auto: the warm start shipped in assets/warm-start when the run has no model.path and the preset and task kind it was made for (compact, arithmetic), else the initial weights; a run logs which it started from",
      ),
      path: setting(
        Schema.String,
        "",
        "A Hugging Face Llama/Qwen2 model directory (config.json, *.safetensors, tokenizer.json) to start from, or \"\" to use the preset",
      ),
    },
    "The policy: its architecture and where its weights start",
  ),
  task: section(
    {
      kind: setting(
        Schema.Literals(["arithmetic", "program"]),
        "arithmetic",
        "arithmetic (exact answers) or program (program synthesis graded by hidden tests)",
      ),
      levels: setting(Schema.Array(Schema.Literals([1, 2, 3, 4, 5])), [1, 2], "Difficulty levels of the built-in generator (arithmetic 1..5, program 1..4)"),
      phrasings: setting(
        Schema.Literals(["bare", "varied", "varied-unseen", "templates", "templates-unseen"]),
        "varied",
        "How arithmetic expressions are asked: bare (EXPR=?), varied (five training wordings, on both splits), varied-unseen (held-out problems asked only in three wordings never trained on), templates (128 training templates: opener, wording, closer, on both splits) or templates-unseen (held-out problems asked only in the 32 held-out templates, new combinations of trained parts)",
      ),
      trainCount: setting(PositiveInt, 2000, "Problems in the training pool"),
      evalCount: setting(PositiveInt, 200, "Held-out problems evaluated before and after"),
      seed: setting(Schema.Int, 1, "Seed of the problem generator"),
      jsonl: setting(
        Schema.String,
        "",
        "A JSONL file to train on instead of the generator (\"\" = generator): {question, answer} lines, or program problems {prompt, entry_point, tests}",
      ),
    },
    "The problems trained on and evaluated",
  ),
  train: section(
    {
      steps: setting(
        NonNegativeInt,
        60,
        "Training steps (one rollout and one update each); 0 evaluates the starting weights and writes the report without training",
      ),
      promptsPerStep: setting(PositiveInt, 8, "Prompts per step (each sampled groupSize times)"),
      evalEvery: setting(NonNegativeInt, 20, "Evaluate every this many steps (0 = only at the end)"),
      evalSamples: setting(
        NonNegativeInt,
        0,
        "Samples per held-out problem at each evaluation, at the recipe's rollout temperature: k > 0 logs eval/pass@k and eval/pass@1 beside greedy accuracy; 0 = greedy only",
      ),
      checkpointEvery: setting(NonNegativeInt, 20, "Checkpoint every this many steps (0 = only at the end)"),
      seed: setting(Schema.Int, 1, "Seed of the data order and of sampling"),
    },
    "How long to train, and when to evaluate and checkpoint",
  ),
  backend: setting(
    Schema.Literals(["wasm", "cpu", "tensorflow", "tensorflow-gpu", "webgpu"]),
    "wasm",
    "tfjs backend: wasm, cpu, tensorflow, tensorflow-gpu, webgpu",
  ),
  sandboxWorkers: setting(PositiveInt, 2, "Sandbox worker threads"),
  cluster: section(
    {
      runners: setting(
        NonNegativeInt,
        0,
        "Runner processes that roll out on Effect cluster (docs/CLUSTER.md): started on this machine, or, with cluster.listen set, joined from other machines (`turnwise runner --join`) before the first step; 0 rolls out in this process. Preset models only",
      ),
      listen: setting(
        Schema.String.check(Schema.isPattern(new RegExp(`^$|${hostPortPattern.source}`))),
        "",
        "HOST:PORT where the learner waits for cluster.runners runners from other machines (0.0.0.0:7400 listens on every interface); empty: start them on this machine",
      ),
      joinTimeout: setting(PositiveInt, 600, "With cluster.listen: seconds to wait for cluster.runners runners to join before the first step"),
      mode: setting(
        Schema.Literals(["sync", "async"]),
        "sync",
        "sync: each step rolls out with the current weights, then trains; async: later steps roll out on the runners while the learner trains (needs cluster.runners >= 1)",
      ),
      maxStaleness: setting(NonNegativeInt, 1, "Async mode: at most this many policy versions between a trajectory's sampler and the weights it updates"),
      importanceCap: setting(
        Schema.NullOr(Schema.Finite.check(Schema.isGreaterThan(0))),
        2,
        "Async mode: importance weights pi_proximal / pi_behaviour above this are cut to it; null: no truncation",
      ),
    },
    "Rollouts on Effect cluster runners",
  ),
})
export type RunConfig = typeof RunConfig.Type

/** Every run default: the main job on the built-in task. */
export const defaultRunConfig: RunConfig = defaultsOf(RunConfig)

/** Sections of the run config (the CLI routes `--set` keys by their first segment). */
export const runConfigKeys: ReadonlyArray<string> = Object.keys(RunConfig.fields)

/** Decode a run config; what it leaves out takes its default, and a bad or unknown field is reported with its path. */
export const decodeRunConfig = (raw: unknown): RunConfig => {
  if (raw !== undefined && (typeof raw !== "object" || raw === null || Array.isArray(raw))) {
    throw new ConfigError({ path: "config", problem: "expected an object" })
  }
  return decodeSection(RunConfig, raw ?? {}, "config")
}
