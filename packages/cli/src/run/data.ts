/**
 * The problems of a run (the built-in generator or a JSONL file) and the
 * demonstrations that warm-start a policy, as token sequences.
 *
 * @category constructors
 */
import { renderObservation } from "@turnwise/core"
import type { TrainingSequence } from "@turnwise/core"
import { generateProblems } from "@turnwise/tasks"
import { makeDemonstrations } from "@turnwise/tasks"
import type { Demonstration } from "@turnwise/tasks"
import { loadJsonlProblems } from "@turnwise/tasks"
import type { Problem } from "@turnwise/tasks"
import type { SandboxPool } from "@turnwise/sandbox"
import type { TokenizerShape } from "@turnwise/dsl"
import type { RunConfig } from "./RunConfig.js"

/**
 * A data set has no split of its own here: its last `evalCount` rows are held out, and
 * training uses the first `trainCount` of the rest.
 */
export const splitDataset = <P>(all: ReadonlyArray<P>, task: RunConfig["task"]): { readonly train: Array<P>; readonly heldout: Array<P> } => {
  const cut = Math.max(0, all.length - task.evalCount)
  return { train: all.slice(0, cut).slice(0, task.trainCount), heldout: all.slice(cut) }
}

/** Train and held-out problems of a run. */
export const runProblems = (task: RunConfig["task"]): { readonly train: Array<Problem>; readonly heldout: Array<Problem> } => {
  if (task.jsonl !== "") {
    return splitDataset(loadJsonlProblems(task.jsonl, { name: "jsonl" }), task)
  }
  return {
    train: generateProblems({ seed: task.seed, count: task.trainCount, levels: task.levels, split: "train", phrasings: task.phrasings }),
    heldout: generateProblems({ seed: task.seed, count: task.evalCount, levels: task.levels, split: "heldout", phrasings: task.phrasings }),
  }
}

/** Characters of tool output shown to the policy (the rollout's default cap). */
export const defaultOutputChars = 120

/**
 * A tool runner for demonstrations that renders exactly what the rollout shows the
 * policy, so warm-start transcripts and live feedback have the same form.
 */
export const sandboxRunTool = (pool: SandboxPool, maxChars = defaultOutputChars, language: "js" | "python" = "js") => async (code: string): Promise<string> => {
  const rendered = renderObservation(await pool.run({ language, code }), { maxChars })
  return rendered.slice("<output>".length, rendered.length - "</output>".length)
}

/** The mix of a warm start's demonstrations (see `makeDemonstrations`). */
export interface DemonstrationMix {
  /** Share that starts with a failed call, then fixes it. */
  readonly failShare: number
  /** Share answered at once, without a call. */
  readonly mentalShare: number
}

/** The mix the shipped warm start's first stages were made with. */
export const defaultDemonstrationMix: DemonstrationMix = { failShare: 0.15, mentalShare: 0 }

/** Demonstrations for problems, with the real sandbox's outputs. */
export const demonstrationsFor = (
  problems: ReadonlyArray<Problem>,
  pool: SandboxPool,
  seed: number,
  mix: DemonstrationMix = defaultDemonstrationMix,
): Promise<Array<Demonstration>> =>
  makeDemonstrations(problems, { runTool: sandboxRunTool(pool), seed, ...mix, skipFailures: true }).then((demos) =>
    demos.filter((demo): demo is Demonstration => demo !== undefined)
  )

/**
 * A demonstration as a training sequence: BOS and prompt (context), then per turn the
 * policy text (trained on) and the tool feedback (context). Pieces are encoded one by
 * one, as the rollout encodes them, so the ids match what the policy will see: the
 * prompt goes through the tokenizer's `formatPrompt` (a pretrained model's chat
 * template) as in the rollout; the byte tokenizer has none and encodes it as is.
 */
export const demonstrationSequence = (demo: Demonstration, tokenizer: TokenizerShape): TrainingSequence => {
  const prompt = tokenizer.formatPrompt === undefined ? demo.prompt : tokenizer.formatPrompt(demo.prompt)
  const tokens: Array<number> = [tokenizer.bos, ...tokenizer.encode(prompt)]
  const mask: Array<number> = tokens.map(() => 0)
  const turnIndex: Array<number> = tokens.map(() => -1)
  demo.turns.forEach((turn, j) => {
    const policy = tokenizer.encode(turn.policyText)
    const feedback = tokenizer.encode(turn.feedbackText)
    tokens.push(...policy, ...feedback)
    mask.push(...policy.map(() => 1), ...feedback.map(() => 0))
    turnIndex.push(...policy.map(() => j), ...feedback.map(() => -1))
  })
  const zeros = tokens.map(() => 0)
  return { tokens, mask, oldLogprobs: zeros, advantages: zeros, turnIndex }
}
