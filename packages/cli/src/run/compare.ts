/**
 * `turnwise compare`: a controlled comparison of recipes.
 *
 * Every recipe trains from the same warm-start checkpoint with the same data order,
 * step count and sampling budget for a given seed (seed k shifts the run's seed by k
 * for every recipe alike), is evaluated on the same held-out split, and the results
 * are summarised as mean and spread over seeds, with the learning curves overlaid in
 * one report.
 *
 * @category constructors
 */
import { promises as fs } from "node:fs"
import * as path from "node:path"
import type { RecipeType } from "@turnwise/dsl"
import type { Io } from "../io.js"
import { parseMetricsJsonl, renderReport } from "../report/html.js"
import type { ReportRecord } from "../report/html.js"
import type { RunConfig } from "./RunConfig.js"
import { runTrain } from "./train.js"

/** One recipe's results over seeds. */
export interface CompareSummary {
  readonly recipe: string
  readonly seeds: number
  readonly accuracy: { readonly mean: number; readonly std: number; readonly values: ReadonlyArray<number> }
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
  const results = new Map<string, Array<{ accuracy: number; turns: number; toolErrorRate: number; stepSeconds: number; records: Array<ReportRecord> }>>()
  // Seeds outer, recipes inner: an interrupted comparison still has balanced results.
  for (let seed = 0; seed < options.seeds; seed++) {
    for (const { recipe, run } of options.entries) {
      const seeded: RunConfig = { ...run, train: { ...run.train, seed: run.train.seed + seed } }
      const outDir = path.join(options.outDir, recipe.name, `seed-${seed}`)
      io.log(`compare: ${recipe.name}, seed ${seed} -> ${outDir}`)
      const result = await runTrain({ recipe, run: seeded, outDir, resume: false, evalBefore: false, log: io.log, tty: io.tty })
      const records = parseMetricsJsonl(await fs.readFile(path.join(outDir, "metrics.jsonl"), "utf8"), outDir)
      const list = results.get(recipe.name) ?? []
      list.push({
        accuracy: result.after["outcome/accuracy"] ?? Number.NaN,
        turns: result.after["turns/mean"] ?? Number.NaN,
        toolErrorRate: result.after["tool/error_rate"] ?? Number.NaN,
        stepSeconds: result.meanStepSeconds,
        records,
      })
      results.set(recipe.name, list)
    }
  }
  const summaries: Array<CompareSummary> = names.map((name) => {
    const list = results.get(name) ?? []
    const accuracy = list.map((r) => r.accuracy)
    return {
      recipe: name,
      seeds: list.length,
      accuracy: { ...meanStd(accuracy), values: accuracy },
      turns: meanStd(list.map((r) => r.turns)).mean,
      toolErrorRate: meanStd(list.map((r) => r.toolErrorRate)).mean,
      stepSeconds: meanStd(list.map((r) => r.stepSeconds)).mean,
    }
  })
  await fs.mkdir(options.outDir, { recursive: true })
  await fs.writeFile(path.join(options.outDir, "compare.json"), JSON.stringify({ seeds: options.seeds, summaries, entries: options.entries.map((e) => ({ recipe: e.recipe.name, run: e.run })) }, null, 2) + "\n")
  const html = renderReport({
    title: `Turnwise comparison: ${names.join(" vs ")}`,
    subtitle: `${options.seeds} seeds per recipe; curves are means over seeds`,
    runs: names.map((name) => ({ name, records: averageBySteps((results.get(name) ?? []).map((r) => r.records)) })),
    tables: [
      {
        caption: "Final held-out results (mean ± std over seeds)",
        header: ["recipe", "accuracy mean", "accuracy std", "per-seed accuracy", "turns", "tool error rate", "step time (s)"],
        rows: summaries.map((s) => [s.recipe, s.accuracy.mean, s.accuracy.std, s.accuracy.values.map((v) => v.toFixed(3)).join(" "), s.turns, s.toolErrorRate, s.stepSeconds]),
      },
    ],
  })
  await fs.writeFile(path.join(options.outDir, "report.html"), html)
  io.stdout(
    ["recipe                      accuracy (mean ± std)   turns   tool err   step s"]
      .concat(summaries.map((s) => `${s.recipe.padEnd(28)}${s.accuracy.mean.toFixed(3)} ± ${s.accuracy.std.toFixed(3)}        ${s.turns.toFixed(2)}   ${s.toolErrorRate.toFixed(3)}      ${s.stepSeconds.toFixed(2)}`))
      .join("\n") + `\nreport: ${path.join(options.outDir, "report.html")}\n`,
  )
  return summaries
}
