/**
 * `npm start` / `turnwise start`: the main job on the built-in task.
 *
 * Warm-start a small policy on demonstrations (from the checkpoint shipped in
 * assets/warm-start, which `turnwise sft` reproduces; or by running sft first when it
 * is missing), train it with GTPO, evaluate before and after on the held-out split,
 * and print the table and the report's path.
 *
 * @category constructors
 */
import { promises as fs } from "node:fs"
import * as path from "node:path"
import { recipes } from "@turnwise/recipes"
import type { Io } from "../io.js"
import { autoInit, shippedWarmStart } from "./init.js"
import { defaultRunConfig, resolveRun } from "./resolve.js"
import type { RunConfig } from "./RunConfig.js"
import { defaultDemonstrationMix } from "./data.js"
import type { DemonstrationMix } from "./data.js"
import { runSft } from "./sft.js"
import { runTrain } from "./train.js"

export { shippedWarmStart }

/**
 * The schedule that produced the shipped warm start (what `turnwise sft` runs by
 * default): 600 steps at peak lr 2e-3 on bare questions (the policy learns the protocol
 * and, late, to copy digits), then 400 steps at 1e-3 from there (copying improves; this
 * is assets/warm-start-bare), then 200 steps at 1e-3 on the five training phrasings with
 * four demonstrations in five answered at once, without the tool. That last stage
 * imitates a teacher who works most problems out in its head: greedily, the student
 * then always answers without the tool and is nearly always wrong, though it still
 * calls the tool in some sampled answers, which gives RL a decision to learn. (With
 * half the demonstrations mental, assets/warm-start-m50, the student still calls the
 * tool on two thirds of the problems.) Each stage warms up and decays on its own.
 */
export const warmStartStages: ReadonlyArray<WarmStartStage> = [
  { steps: 600, batchSize: 32, lr: 2e-3, phrasings: "bare", mix: defaultDemonstrationMix },
  { steps: 400, batchSize: 32, lr: 1e-3, phrasings: "bare", mix: defaultDemonstrationMix },
  { steps: 200, batchSize: 32, lr: 1e-3, phrasings: "varied", mix: { ...defaultDemonstrationMix, mentalShare: 0.8 } },
]

/** One stage of the warm-start schedule: its optimiser settings and the data it trains on. */
export interface WarmStartStage {
  readonly steps: number
  readonly batchSize: number
  readonly lr: number
  readonly phrasings: RunConfig["task"]["phrasings"]
  readonly mix: DemonstrationMix
}

/** Run the warm-start schedule; returns the final checkpoint directory (`outDir/checkpoints`). */
export const runWarmStart = async (run: RunConfig, outDir: string, log: (line: string) => void): Promise<string> => {
  // A warm start is what "auto" would pick, so it starts from the initial weights unless told otherwise.
  let init = run.model.init === autoInit ? "" : run.model.init
  for (const [k, stage] of warmStartStages.entries()) {
    const last = k === warmStartStages.length - 1
    log(`warm start, stage ${k + 1} of ${warmStartStages.length}: ${stage.steps} steps at lr ${stage.lr}`)
    const result = await runSft({
      run: { ...run, model: { ...run.model, init }, task: { ...run.task, phrasings: stage.phrasings } },
      outDir: last ? outDir : path.join(outDir, `stage-${k + 1}`),
      ...stage,
      log,
    })
    init = result.checkpoint
  }
  return init
}

const row = (label: string, before: number | undefined, after: number | undefined): string =>
  `  ${label.padEnd(26)} ${(before ?? NaN).toFixed(3).padStart(8)} ${(after ?? NaN).toFixed(3).padStart(8)}`

/** Run the main job. */
export const runStart = async (options: { readonly sets: ReadonlyArray<string>; readonly outDir: string; readonly io: Io }): Promise<void> => {
  const { io } = options
  const shipped = await fs.stat(path.join(shippedWarmStart, "latest")).then(
    () => true,
    () => false,
  )
  let init = shippedWarmStart
  if (!shipped) {
    io.log(`no warm-start checkpoint at ${shippedWarmStart}; running turnwise sft first`)
    init = await runWarmStart(defaultRunConfig, path.join(options.outDir, "sft"), io.log)
  }
  const base = { ...defaultRunConfig, model: { ...defaultRunConfig.model, init } }
  const { recipe, run } = resolveRun(recipes.gtpo, base, { file: {}, sets: options.sets })
  io.log(
    `warm start: ${run.model.init}; training ${recipe.name} for ${run.train.steps} steps (${run.train.promptsPerStep} prompts x ${recipe.rollout.groupSize} samples per step)`,
  )
  const result = await runTrain({ recipe, run, outDir: options.outDir, resume: false, evalBefore: true, log: io.log, tty: io.tty })
  const b = result.before
  const a = result.after
  io.stdout(
    [
      "",
      `Held-out split, ${run.task.evalCount} problems (levels ${run.task.levels.join(", ")}), greedy decoding:`,
      `  ${"".padEnd(26)} ${"warm start".padStart(8)} ${"GTPO".padStart(8)}`,
      row("accuracy", b["outcome/accuracy"], a["outcome/accuracy"]),
      row("answer rate", b["finish/answer_rate"], a["finish/answer_rate"]),
      row("turns per trajectory", b["turns/mean"], a["turns/mean"]),
      row("tool use rate", b["tool/use_rate"], a["tool/use_rate"]),
      row("tool-call error rate", b["tool/error_rate"], a["tool/error_rate"]),
      "",
      `${result.steps} steps in ${result.seconds.toFixed(0)} s (${result.meanStepSeconds.toFixed(1)} s per step)`,
      `report: ${result.reportPath}`,
      "",
    ].join("\n"),
  )
}
