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
 * With `train.evalSamples` = k > 0 the same re-evaluation also samples k completions
 * per problem, and pass@k (any of the k correct) and pass@1 (mean correctness of the
 * samples) get the same treatment: a table [seed][problem], a bootstrap interval over
 * seeds and problems, and pass@k's paired difference against the first recipe.
 *
 * The report's curves are the mean over seeds at each evaluated step, with a shaded
 * band from the lowest to the highest seed at that step.
 *
 * @category constructors
 */
import { promises as fs } from "node:fs"
import * as path from "node:path"
import { bootstrapInterval, passAtK } from "@turnwise/core"
import type { Interval } from "@turnwise/core"
import { evaluate, passAtKMetric } from "@turnwise/dsl"
import type { RecipeType, SampledEvaluation } from "@turnwise/dsl"
import type { Io } from "../io.js"
import { parseMetricsJsonl, renderReport } from "../report/html.js"
import type { ReportRecord, SpreadRecord } from "../report/html.js"
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
  /** Sampled evaluation, when the runs sampled k > 0 completions per held-out problem (train.evalSamples). */
  readonly pass?: PassSummary
  readonly problems: number
  readonly turns: number
  readonly toolErrorRate: number
  readonly stepSeconds: number
}

/** pass@k and pass@1 of one recipe over seeds and problems. */
export interface PassSummary {
  /** Samples per problem. */
  readonly k: number
  /** pass@k of each seed's final evaluation. */
  readonly values: ReadonlyArray<number>
  /** Mean pass@k over seeds and problems with its 95% bootstrap interval (both resampled). */
  readonly interval: Interval
  /** Mean pass@1 (correctness of the samples) with its 95% bootstrap interval. */
  readonly passAt1: Interval
  /** pass@k minus the first recipe's, paired by seed and problem (absent for the first, or when its k differs). */
  readonly difference?: Interval & { readonly against: string }
}

/** What one run (one recipe, one seed) of a comparison left. */
export interface SeedResult {
  /** Greedy held-out accuracy of the run's final evaluation. */
  readonly accuracy: number
  /** Greedy outcomes of the final checkpoint, problem by problem (1 correct, 0 not). */
  readonly outcomes: ReadonlyArray<number>
  /** Correct samples per problem of the final checkpoint, with train.evalSamples > 0. */
  readonly sampled?: SampledEvaluation
  /** pass@k of the run's final evaluation (NaN without samples). */
  readonly passAtK: number
  readonly turns: number
  readonly toolErrorRate: number
  readonly stepSeconds: number
  /** The run's metrics.jsonl. */
  readonly records: ReadonlyArray<ReportRecord>
}

const meanStd = (xs: ReadonlyArray<number>) => {
  const mean = xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length)
  const std = xs.length < 2 ? 0 : Math.sqrt(xs.reduce((a, x) => a + (x - mean) ** 2, 0) / (xs.length - 1))
  return { mean, std }
}

/** The records of several seeds grouped by phase and step, in step order; each group holds one metrics row per seed that logged it. */
const bySteps = (runs: ReadonlyArray<ReadonlyArray<ReportRecord>>) => {
  const buckets = new Map<string, { step: number; phase: string; rows: Array<Readonly<Record<string, number>>> }>()
  for (const records of runs) {
    for (const record of records) {
      const key = `${record.phase}:${record.step}`
      const bucket = buckets.get(key) ?? { step: record.step, phase: record.phase, rows: [] }
      bucket.rows.push(record.metrics)
      buckets.set(key, bucket)
    }
  }
  return [...buckets.values()].sort((a, b) => a.step - b.step).map(({ step, phase, rows }) => {
    const valuesOf = (key: string) => rows.map((r) => r[key]).filter((v): v is number => Number.isFinite(v))
    return { step, phase, keys: [...new Set(rows.flatMap((r) => Object.keys(r)))], valuesOf }
  })
}

/** Average records of several seeds step by step (per phase), for overlaid curves. */
export const averageBySteps = (runs: ReadonlyArray<ReadonlyArray<ReportRecord>>): Array<ReportRecord> =>
  bySteps(runs).map(({ step, phase, keys, valuesOf }) => ({
    step,
    phase,
    metrics: Object.fromEntries(keys.flatMap((k) => (valuesOf(k).length === 0 ? [] : [[k, meanStd(valuesOf(k)).mean]]))),
  }))

/** The lowest and highest value over seeds of every metric, step by step (per phase): the band around the mean curve. */
export const spreadBySteps = (runs: ReadonlyArray<ReadonlyArray<ReportRecord>>): Array<SpreadRecord> =>
  bySteps(runs).map(({ step, phase, keys, valuesOf }) => {
    const present = keys.filter((k) => valuesOf(k).length > 0)
    return {
      step,
      phase,
      lo: Object.fromEntries(present.map((k) => [k, Math.min(...valuesOf(k))])),
      hi: Object.fromEntries(present.map((k) => [k, Math.max(...valuesOf(k))])),
    }
  })

/** What the report's shaded bands show. */
export const bandLegend = "min–max over seeds"

/**
 * Greedy outcomes (1 correct, 0 not) of a finished run's final checkpoint on the
 * held-out problems, in their order, and with train.evalSamples > 0 the correct
 * samples per problem (same seed as the run's own evaluation).
 */
const heldoutOutcomes = async (
  recipe: RecipeType,
  run: RunConfig,
  runDir: string,
): Promise<{ readonly outcomes: Array<number>; readonly sampled?: SampledEvaluation }> => {
  const checkpoint: RunConfig = { ...run, model: { ...run.model, init: path.join(runDir, "checkpoints") } }
  const { recipe: resolved, task, heldout } = runTask(checkpoint, recipe)
  const context = await openRun({
    run: checkpoint,
    optimizer: { ...resolved.optimizer, reference: "none", carryOptimizerState: false },
    outDir: path.join(runDir, "compare-eval"),
    totalSteps: 1,
  })
  try {
    const { batch, sampled } = await runWith(context, evaluate(resolved, task, heldout, { seed: run.train.seed, samples: run.train.evalSamples }))
    const outcomes = batch.groups.map((group) => (group.trajectories[0]?.outcome.correct === true ? 1 : 0))
    return sampled === undefined ? { outcomes } : { outcomes, sampled }
  } finally {
    context.runtime.dispose()
  }
}

const formatInterval = (ci: Interval): string => `${ci.mean.toFixed(3)} [${ci.lo.toFixed(3)}, ${ci.hi.toFixed(3)}]`
const formatSigned = (ci: Interval): string => {
  const signed = (x: number) => `${x >= 0 ? "+" : ""}${x.toFixed(3)}`
  return `${signed(ci.mean)} [${signed(ci.lo)}, ${signed(ci.hi)}]`
}

/** pass@k of one recipe from its seeds' sampled evaluations, with the first recipe's for the paired difference. */
const passSummary = (
  list: ReadonlyArray<SeedResult>,
  first: { readonly name: string; readonly list: ReadonlyArray<SeedResult> } | null,
): PassSummary | undefined => {
  const sampled = list.map((r) => r.sampled)
  if (sampled.length === 0 || sampled.some((s) => s === undefined)) return undefined
  const k = sampled[0]!.k
  if (sampled.some((s) => s!.k !== k)) return undefined
  const passTable = (rows: ReadonlyArray<SampledEvaluation | undefined>) => rows.map((s) => s!.correct.map((c) => passAtK(k, c, k)))
  const table = passTable(sampled)
  const firstSampled = first?.list.map((r) => r.sampled) ?? []
  const comparable = first !== null && firstSampled.length === sampled.length && firstSampled.every((s) => s !== undefined && s.k === k)
  const firstTable = comparable ? passTable(firstSampled) : []
  return {
    k,
    values: list.map((r) => r.passAtK),
    interval: bootstrapInterval(table, { seed: 0 }),
    passAt1: bootstrapInterval(sampled.map((s) => s!.correct.map((c) => c / k)), { seed: 0 }),
    ...(!comparable ? {} : {
      difference: {
        ...bootstrapInterval(table.map((row, s) => row.map((v, p) => v - (firstTable[s]?.[p] ?? Number.NaN))), { seed: 0 }),
        against: first.name,
      },
    }),
  }
}

/** Per recipe, in the given order: accuracy over seeds, bootstrap intervals, paired differences against the first, pass@k. */
export const summarise = (names: ReadonlyArray<string>, results: ReadonlyMap<string, ReadonlyArray<SeedResult>>): Array<CompareSummary> => {
  const table = (name: string): Array<ReadonlyArray<number>> => (results.get(name) ?? []).map((r) => r.outcomes)
  const first = names[0] ?? ""
  return names.map((name, k) => {
    const list = results.get(name) ?? []
    const accuracy = list.map((r) => r.accuracy)
    const outcomes = table(name)
    const differences = outcomes.map((row, s) => row.map((v, p) => v - (table(first)[s]?.[p] ?? Number.NaN)))
    const pass = passSummary(list, k === 0 ? null : { name: first, list: results.get(first) ?? [] })
    return {
      recipe: name,
      seeds: list.length,
      accuracy: { ...meanStd(accuracy), values: accuracy },
      interval: bootstrapInterval(outcomes, { seed: 0 }),
      ...(k === 0 ? {} : { difference: { ...bootstrapInterval(differences, { seed: 0 }), against: first } }),
      ...(pass === undefined ? {} : { pass }),
      problems: outcomes[0]?.length ?? 0,
      turns: meanStd(list.map((r) => r.turns)).mean,
      toolErrorRate: meanStd(list.map((r) => r.toolErrorRate)).mean,
      stepSeconds: meanStd(list.map((r) => r.stepSeconds)).mean,
    }
  })
}

const bracket = (ci: Interval): string => `[${ci.lo.toFixed(3)}, ${ci.hi.toFixed(3)}]`

/**
 * The comparison's report.html: the summary table, and per metric the mean curve of
 * each recipe over seeds with a shaded band from the lowest to the highest seed.
 */
export const renderCompareReport = (options: {
  readonly seeds: number
  readonly summaries: ReadonlyArray<CompareSummary>
  readonly results: ReadonlyMap<string, ReadonlyArray<SeedResult>>
}): string => {
  const { summaries } = options
  const names = summaries.map((s) => s.recipe)
  const first = names[0] ?? ""
  const k = summaries.find((s) => s.pass !== undefined)?.pass?.k
  const passHeader = k === undefined
    ? []
    : [`pass@${k}`, "95% interval", `pass@${k} difference vs ${first}`, "95% interval of the difference", "pass@1", "95% interval"]
  const passCells = (s: CompareSummary): Array<string | number> =>
    k === undefined ? [] : s.pass === undefined
      ? ["", "", "", "", "", ""]
      : [
        s.pass.interval.mean,
        bracket(s.pass.interval),
        s.pass.difference === undefined ? "" : s.pass.difference.mean,
        s.pass.difference === undefined ? "" : bracket(s.pass.difference),
        s.pass.passAt1.mean,
        bracket(s.pass.passAt1),
      ]
  return renderReport({
    title: `Turnwise comparison: ${names.join(" vs ")}`,
    subtitle:
      `${options.seeds} seeds per recipe; curves are means over seeds with a shaded band (${bandLegend}); intervals are 95% bootstrap intervals over seeds and problems`,
    bandLegend,
    runs: names.map((name) => {
      const perSeed = (options.results.get(name) ?? []).map((r) => r.records)
      return { name, records: averageBySteps(perSeed), spread: spreadBySteps(perSeed) }
    }),
    tables: [
      {
        caption:
          `Final held-out greedy accuracy: mean with its 95% bootstrap interval (seeds and problems resampled), and the paired difference against the first recipe${
            k === undefined ? "" : `; pass@${k} and pass@1 of ${k} samples per problem at the rollout temperature, likewise`
          }`,
        header: [
          "recipe",
          "accuracy",
          "95% interval",
          `difference vs ${first}`,
          "95% interval of the difference",
          ...passHeader,
          "std over seeds",
          "per-seed accuracy",
          "turns",
          "tool error rate",
          "step time (s)",
        ],
        rows: summaries.map((s) => [
          s.recipe,
          s.interval.mean,
          bracket(s.interval),
          s.difference === undefined ? "" : s.difference.mean,
          s.difference === undefined ? "" : bracket(s.difference),
          ...passCells(s),
          s.accuracy.std,
          s.accuracy.values.map((v) => v.toFixed(3)).join(" "),
          s.turns,
          s.toolErrorRate,
          s.stepSeconds,
        ]),
      },
    ],
  })
}

/** The summary printed on stdout: one line per recipe, greedy accuracy and (with samples) pass@k, each with its interval. */
export const summaryText = (summaries: ReadonlyArray<CompareSummary>, seeds: number): string => {
  const first = summaries[0]?.recipe ?? ""
  const k = summaries.find((s) => s.pass !== undefined)?.pass?.k
  const passHead = k === undefined ? "" : `${`pass@${k} [95% CI]`.padEnd(26)}${`pass@1 [95% CI]`.padEnd(26)}`
  const passOf = (s: CompareSummary) =>
    k === undefined
      ? ""
      : s.pass === undefined
      ? "-".padEnd(26).repeat(2)
      : `${formatInterval(s.pass.interval).padEnd(26)}${formatInterval(s.pass.passAt1).padEnd(26)}`
  return [
    `Held-out greedy accuracy over ${seeds} seed(s) x ${summaries[0]?.problems ?? 0} problems; [95% bootstrap interval, seeds and problems resampled]${
      k === undefined ? "" : `; pass@${k} and pass@1 from ${k} samples per problem`
    }`,
    `${"recipe".padEnd(28)}${"accuracy [95% CI]".padEnd(26)}${`paired diff vs ${first} [95% CI]`.padEnd(36)}${passHead}${
      "seed std".padEnd(10)
    }turns   tool err   step s`,
  ]
    .concat(
      summaries.map(
        (s) =>
          `${s.recipe.padEnd(28)}${formatInterval(s.interval).padEnd(26)}${(s.difference === undefined ? "-" : formatSigned(s.difference)).padEnd(36)}${
            passOf(s)
          }${s.accuracy.std.toFixed(3).padEnd(10)}${s.turns.toFixed(2)}    ${s.toolErrorRate.toFixed(3)}      ${s.stepSeconds.toFixed(2)}`,
      ),
    )
    .join("\n")
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
  const results = new Map<string, Array<SeedResult>>()
  // Seeds outer, recipes inner: an interrupted comparison still has balanced results.
  for (let seed = 0; seed < options.seeds; seed++) {
    for (const { recipe, run } of options.entries) {
      const seeded: RunConfig = { ...run, train: { ...run.train, seed: run.train.seed + seed } }
      const outDir = path.join(options.outDir, recipe.name, `seed-${seed}`)
      io.log(`compare: ${recipe.name}, seed ${seed} -> ${outDir}`)
      const result = await runTrain({ recipe, run: seeded, outDir, resume: false, evalBefore: false, log: io.log, tty: io.tty })
      const records = parseMetricsJsonl(await fs.readFile(path.join(outDir, "metrics.jsonl"), "utf8"), outDir)
      const { outcomes, sampled } = await heldoutOutcomes(recipe, seeded, outDir)
      const list = results.get(recipe.name) ?? []
      list.push({
        accuracy: result.after["outcome/accuracy"] ?? Number.NaN,
        outcomes,
        ...(sampled === undefined ? {} : { sampled }),
        passAtK: sampled === undefined ? Number.NaN : result.after[passAtKMetric(sampled.k)] ?? Number.NaN,
        turns: result.after["turns/mean"] ?? Number.NaN,
        toolErrorRate: result.after["tool/error_rate"] ?? Number.NaN,
        stepSeconds: result.meanStepSeconds,
        records,
      })
      results.set(recipe.name, list)
    }
  }
  const summaries = summarise(names, results)
  await fs.mkdir(options.outDir, { recursive: true })
  await fs.writeFile(
    path.join(options.outDir, "compare.json"),
    JSON.stringify({ seeds: options.seeds, summaries, entries: options.entries.map((e) => ({ recipe: e.recipe.name, run: e.run })) }, null, 2) + "\n",
  )
  await fs.writeFile(path.join(options.outDir, "report.html"), renderCompareReport({ seeds: options.seeds, summaries, results }))
  io.stdout(summaryText(summaries, options.seeds) + `\nreport: ${path.join(options.outDir, "report.html")}\n`)
  return summaries
}
