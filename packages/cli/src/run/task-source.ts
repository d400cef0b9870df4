/**
 * The task of a run: which {@link Task} grades it, its train and held-out problems,
 * the demonstrations that warm-start a policy on it, and the rollout settings it
 * needs. `task.kind` picks the family (arithmetic or program synthesis) and
 * `task.jsonl` a user data set instead of the built-in generator.
 *
 * @category constructors
 */
import type { RecipeType, RolloutConfig, Task, TaskProblem } from "@turnwise/dsl"
import type { Demonstration } from "@turnwise/tasks"
import { exactAnswerTask } from "@turnwise/tasks"
import { makeCodeDemonstrations } from "@turnwise/tasks"
import { generateCodeProblems } from "@turnwise/tasks"
import { loadCodeProblems } from "@turnwise/tasks"
import type { CodeProblem } from "@turnwise/tasks"
import { programSynthesisTask } from "@turnwise/tasks"
import type { SandboxPool } from "@turnwise/sandbox"
import { demonstrationsFor, runProblems, sandboxRunTool, splitDataset } from "./data.js"
import type { DemonstrationMix } from "./data.js"
import type { RunConfig } from "./RunConfig.js"

/** Everything a run needs to know about its task. */
export interface RunTask {
  /** The recipe with the rollout settings the task needs (see {@link RunTask.adjustments}). */
  readonly recipe: RecipeType
  // The task and its problems are made together below, so their types agree; the
  // pipeline sees them through the common TaskProblem view.
  readonly task: Task<TaskProblem>
  readonly train: ReadonlyArray<TaskProblem>
  readonly heldout: ReadonlyArray<TaskProblem>
  /** Warm-start demonstrations of the train problems, with the real sandbox's outputs. */
  readonly demonstrations: (pool: SandboxPool, seed: number, mix?: DemonstrationMix) => Promise<Array<Demonstration>>
  /** Human-readable lines for each rollout setting raised to what the task needs. */
  readonly adjustments: ReadonlyArray<string>
}

/**
 * What program synthesis needs of a rollout: room for a function definition per turn,
 * and for a try, a fix and a submission per trajectory.
 */
export const programRolloutMinimums: Pick<RolloutConfig, "maxTokens" | "maxNewTokensPerTurn" | "maxTurns"> = {
  maxTokens: 256,
  maxNewTokensPerTurn: 112,
  maxTurns: 3,
}

/** The largest micro-batch of program-synthesis sequences (gradients accumulate over micro-batches). */
export const programMaxMicroBatch = 8

/** The recipe with the program task's rollout minimums, micro-batch cap and language; one log line per change. */
const fitRecipe = (recipe: RecipeType, language: RolloutConfig["language"]) => {
  const before = recipe.rollout
  const atLeast = (key: keyof typeof programRolloutMinimums): number => Math.max(before[key], programRolloutMinimums[key])
  const rollout: RolloutConfig = {
    ...before,
    maxTokens: atLeast("maxTokens"),
    maxNewTokensPerTurn: atLeast("maxNewTokensPerTurn"),
    maxTurns: atLeast("maxTurns"),
    language,
  }
  // Program transcripts are ~4x longer than arithmetic ones; 32 of them per micro-batch
  // overflow the wasm heap (the backend aborts), so the micro-batch shrinks to match.
  const optimizer = { ...recipe.optimizer, microBatchSize: Math.min(recipe.optimizer.microBatchSize, programMaxMicroBatch) }
  const adjustments = [
    ...(["maxTokens", "maxNewTokensPerTurn", "maxTurns"] as const)
      .filter((key) => rollout[key] !== before[key])
      .map((key) => `rollout.${key} ${before[key]} -> ${rollout[key]} (the task needs at least ${programRolloutMinimums[key]})`),
    ...(optimizer.microBatchSize !== recipe.optimizer.microBatchSize
      ? [`optimizer.microBatchSize ${recipe.optimizer.microBatchSize} -> ${programMaxMicroBatch} (longer sequences; bounds peak memory)`]
      : []),
    ...(language !== before.language ? [`rollout.language ${before.language} -> ${language} (the task's problems are in ${language})`] : []),
  ]
  return { recipe: { ...recipe, rollout, optimizer }, adjustments }
}

const programProblems = (task: RunConfig["task"]): { readonly train: Array<CodeProblem>; readonly heldout: Array<CodeProblem> } => {
  if (task.jsonl !== "") {
    return splitDataset(loadCodeProblems(task.jsonl), task)
  }
  return {
    train: generateCodeProblems({ seed: task.seed, count: task.trainCount, levels: task.levels, split: "train" }),
    heldout: generateCodeProblems({ seed: task.seed, count: task.evalCount, levels: task.levels, split: "heldout" }),
  }
}

/**
 * The task of a run, and the recipe adjusted to it.
 *
 * @example
 * const { recipe, task, train, heldout } = runTask(run, gtpo)
 */
export const runTask = (run: RunConfig, recipe: RecipeType): RunTask => {
  if (run.task.kind === "arithmetic") {
    const { train, heldout } = runProblems(run.task)
    return {
      recipe,
      task: exactAnswerTask(run.task.jsonl === "" ? "arithmetic" : "jsonl") as unknown as Task<TaskProblem>,
      train,
      heldout,
      demonstrations: (pool, seed, mix) => demonstrationsFor(train, pool, seed, mix),
      adjustments: [],
    }
  }
  const { train, heldout } = programProblems(run.task)
  const languages = new Set([...train, ...heldout].map((p) => p.language))
  if (languages.size > 1) throw new Error(`task.jsonl mixes languages (${[...languages].join(", ")}); a run's policy writes one language`)
  const language = train[0]?.language ?? heldout[0]?.language ?? "js"
  const adjusted = fitRecipe(recipe, language)
  const limits = { timeoutMs: adjusted.recipe.rollout.timeoutMs, memoryMb: adjusted.recipe.rollout.memoryMb }
  return {
    recipe: adjusted.recipe,
    task: programSynthesisTask({ name: run.task.jsonl === "" ? "program" : "program-jsonl", limits }) as unknown as Task<TaskProblem>,
    train,
    heldout,
    demonstrations: (pool, seed, mix) => {
      if (mix !== undefined && mix.mentalShare > 0) {
        return Promise.reject(new Error("mental demonstrations (an answer with no call) exist for the arithmetic task only; set the mental share to 0"))
      }
      return makeCodeDemonstrations(train, { runTool: sandboxRunTool(pool, adjusted.recipe.rollout.maxOutputChars, language), seed })
    },
    adjustments: adjusted.adjustments,
  }
}
