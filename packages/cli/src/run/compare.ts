/**
 * `turnwise compare`: a controlled comparison of recipes.
 *
 * Every recipe trains from the same warm-start checkpoint with the same data order,
 * step count and sampling budget for a given seed (seed k shifts the run's seed by k
 * for every recipe alike), is evaluated on the same held-out split, and the results
 * are summarised with the learning curves overlaid in one report.
 *
 * Statistics: after each run its final checkpoint is evaluated greedily once more,
 * problem by problem, so every recipe has a table of outcomes [seed][problem] on the
 * same problems. Per recipe the mean accuracy gets a 95% bootstrap interval that
 * resamples seeds and problems; every later recipe gets the paired difference against
 * the first (same seed, same problem) with its own interval, which is what says
 * whether a difference is more than noise.
 *
 * @category constructors
 */
import { promises as fs } from "node:fs"
import * as path from "node:path"
import { bootstrapInterval } from "@turnwise/core"
import type { Interval } from "@turnwise/core"
import { evaluate } from "@turnwise/dsl"
import type { RecipeType } from "@turnwise/dsl"
import type { Io } from "../io.js"
import { parseMetricsJsonl, renderReport } from "../report/html.js"
import type { ReportRecord } from "../report/html.js"
import { openRun, runWith } from "./context.js"
import type { RunConfig } from "./RunConfig.js"
import { runTask } from "./task-source.js"
import { runTrain } from "./train.js"

/** One recipe's results over seeds. */
export interface CompareSummary {
  readonly recipe: string
  readonly seeds: number
  /** Greedy held-out accuracy per seed, with the mean and std over seeds. */
  readonly accuracy: { readonly mean: number; readonly std: number; readonly values: ReadonlyArray<number> }
  /** Mean greedy accuracy over seeds and problems with its 95% bootstrap interval (both resampled). */
  readonly interval: Interval
  /** This recipe minus the first, paired by seed and problem, with its 95% bootstrap interval (absent for the first). */
  readonly difference?: Interval & { readonly against: string }
  readonly problems: number
  readonly turns: number
  readonly toolErrorRate: number
  readonly stepSeconds: number
}

const meanStd = (xs: ReadonlyArray<number>) => {
  const mean = xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length)
  const std = xs.length < 2 ? 0 : Math.sqrt(xs.reduce((a, x) => a + (x - mean) ** 2, 0) / (xs.length - 1))
  return { mean, std }
}

/** Average records of several seeds step by step (per phase), for overlaid curves. */
const averageBySteps = (runs: ReadonlyArray<ReadonlyArray<ReportRecord>>): Array<ReportRecord> => {
  const buckets = new Map<string, { step: number; phase: string; rows: Array<Readonly<Record<string, number>>> }>()
  for (const records of runs) {
    for (const record of records) {
      const key = `${record.phase}:${record.step}`
      const bucket = buckets.get(key) ?? { step: record.step, phase: record.phase, rows: [] }
      bucket.rows.push(record.metrics)
      buckets.set(key, bucket)
    }
  }
  return [...buckets.values()]
    .sort((a, b) => a.step - b.step)
    .map(({ step, phase, rows }) => {
      const keys = new Set(rows.flatMap((r) => Object.keys(r)))
      const metrics = Object.fromEntries([...keys].map((k) => [k, meanStd(rows.map((r) => r[k]).filter((v): v is number => v !== undefined)).mean]))
      return { step, phase, metrics }
    })
}

/**
 * Greedy outcomes (1 correct, 0 not) of a finished run's final checkpoint on the
 * held-out problems, in their order.
 */
const heldoutOutcomes = async (recipe: RecipeType, run: RunConfig, runDir: string): Promise<Array<number>> => {
  const checkpoint: RunConfig = { ...run, model: { ...run.model, init: path.join(runDir, "checkpoints") } }
  const { recipe: resolved, task, heldout } = runTask(checkpoint, recipe)
  const context = await openRun({
    run: checkpoint,
    optimizer: { ...resolved.optimizer, reference: "none", carryOptimizerState: false },
    outDir: path.join(runDir, "compare-eval"),
    totalSteps: 1,
  })
  try {
    const { batch } = await runWith(context, evaluate(resolved, task, heldout, { seed: run.train.seed }))
    return batch.groups.map((group) => (group.trajectories[0]?.outcome.correct === true ? 1 : 0))
  } finally {
    context.runtime.dispose()
  }
}

const formatInterval = (ci: Interval): string => `${ci.mean.toFixed(3)} [${ci.lo.toFixed(3)}, ${ci.hi.toFixed(3)}]`
const formatSigned = (ci: Interval): string => {
  const signed = (x: number) => `${x >= 0 ? "+" : ""}${x.toFixed(3)}`
  return `${signed(ci.mean)} [${signed(ci.lo)}, ${signed(ci.hi)}]`
}

/** Run the comparison; writes compare.json and report.html under outDir. */
export const runCompare = async (options: {
  readonly entries: ReadonlyArray<{ readonly recipe: RecipeType; readonly run: RunConfig }>
  readonly seeds: number
  readonly outDir: string
  readonly io: Io
}): Promise<ReadonlyArray<CompareSummary>> => {
  const { io } = options
  const names = options.entries.map((e) => e.recipe.name)
  if (new Set(names).size !== names.length) throw new Error(`compare: recipe names must differ, got ${names.join(", ")}`)
  if (!Number.isInteger(options.seeds) || options.seeds < 1) {
    throw new Error(`compare: --seeds must be a positive integer, got ${options.seeds}; a comparison needs at least one run per recipe`)
  }
  const results = new Map<
    string,
    Array<{ accuracy: number; outcomes: Array<number>; turns: number; toolErrorRate: number; stepSeconds: number; records: Array<ReportRecord> }>
  >()
  // Seeds outer, recipes inner: an interrupted comparison still has balanced results.
  for (let seed = 0; seed < options.seeds; seed++) {
    for (const { recipe, run } of options.entries) {
      const seeded: RunConfig = { ...run, train: { ...run.train, seed: run.train.seed + seed } }
      const outDir = path.join(options.outDir, recipe.name, `seed-${seed}`)
      io.log(`compare: ${recipe.name}, seed ${seed} -> ${outDir}`)
      const result = await runTrain({ recipe, run: seeded, outDir, resume: false, evalBefore: false, log: io.log, tty: io.tty })
      const records = parseMetricsJsonl(await fs.readFile(path.join(outDir, "metrics.jsonl"), "utf8"), outDir)
      const outcomes = await heldoutOutcomes(recipe, seeded, outDir)
      const list = results.get(recipe.name) ?? []
      list.push({
        accuracy: result.after["outcome/accuracy"] ?? Number.NaN,
        outcomes,
        turns: result.after["turns/mean"] ?? Number.NaN,
        toolErrorRate: result.after["tool/error_rate"] ?? Number.NaN,
        stepSeconds: result.meanStepSeconds,
        records,
      })
      results.set(recipe.name, list)
    }
  }
  const table = (name: string): Array<Array<number>> => (results.get(name) ?? []).map((r) => r.outcomes)
  const first = names[0] ?? ""
  const summaries: Array<CompareSummary> = names.map((name, k) => {
    const list = results.get(name) ?? []
    const accuracy = list.map((r) => r.accuracy)
    const outcomes = table(name)
    const differences = outcomes.map((row, s) => row.map((v, p) => v - (table(first)[s]?.[p] ?? Number.NaN)))
    return {
      recipe: name,
      seeds: list.length,
      accuracy: { ...meanStd(accuracy), values: accuracy },
      interval: bootstrapInterval(outcomes, { seed: 0 }),
      ...(k === 0 ? {} : { difference: { ...bootstrapInterval(differences, { seed: 0 }), against: first } }),
      problems: outcomes[0]?.length ?? 0,
      turns: meanStd(list.map((r) => r.turns)).mean,
      toolErrorRate: meanStd(list.map((r) => r.toolErrorRate)).mean,
      stepSeconds: meanStd(list.map((r) => r.stepSeconds)).mean,
    }
  })
  await fs.mkdir(options.outDir, { recursive: true })
  await fs.writeFile(
    path.join(options.outDir, "compare.json"),
    JSON.stringify({ seeds: options.seeds, summaries, entries: options.entries.map((e) => ({ recipe: e.recipe.name, run: e.run })) }, null, 2) + "\n",
  )
  const html = renderReport({
    title: `Turnwise comparison: ${names.join(" vs ")}`,
    subtitle: `${options.seeds} seeds per recipe; curves are means over seeds; intervals are 95% bootstrap intervals over seeds and problems`,
    runs: names.map((name) => ({ name, records: averageBySteps((results.get(name) ?? []).map((r) => r.records)) })),
    tables: [
      {
        caption:
          "Final held-out greedy accuracy: mean with its 95% bootstrap interval (seeds and problems resampled), and the paired difference against the first recipe",
        header: [
          "recipe",
          "accuracy",
          "95% interval",
          `difference vs ${first}`,
          "95% interval of the difference",
          "std over seeds",
          "per-seed accuracy",
          "turns",
          "tool error rate",
          "step time (s)",
        ],
        rows: summaries.map((s) => [
          s.recipe,
          s.interval.mean,
          `[${s.interval.lo.toFixed(3)}, ${s.interval.hi.toFixed(3)}]`,
          s.difference === undefined ? "" : s.difference.mean,
          s.difference === undefined ? "" : `[${s.difference.lo.toFixed(3)}, ${s.difference.hi.toFixed(3)}]`,
          s.accuracy.std,
          s.accuracy.values.map((v) => v.toFixed(3)).join(" "),
          s.turns,
          s.toolErrorRate,
          s.stepSeconds,
        ]),
      },
    ],
  })
  await fs.writeFile(path.join(options.outDir, "report.html"), html)
  io.stdout(
    [
      `Held-out greedy accuracy over ${options.seeds} seed(s) x ${
        summaries[0]?.problems ?? 0
      } problems; [95% bootstrap interval, seeds and problems resampled]`,
      `${"recipe".padEnd(28)}${"accuracy [95% CI]".padEnd(26)}${`paired diff vs ${first} [95% CI]`.padEnd(36)}${
        "seed std".padEnd(10)
      }turns   tool err   step s`,
    ]
      .concat(
        summaries.map(
          (s) =>
            `${s.recipe.padEnd(28)}${formatInterval(s.interval).padEnd(26)}${(s.difference === undefined ? "-" : formatSigned(s.difference)).padEnd(36)}${
              s.accuracy.std.toFixed(3).padEnd(10)
            }${s.turns.toFixed(2)}    ${s.toolErrorRate.toFixed(3)}      ${s.stepSeconds.toFixed(2)}`,
        ),
      )
      .join("\n") + `\nreport: ${path.join(options.outDir, "report.html")}\n`,
  )
  return summaries
}
