/**
 * `turnwise report`: rebuild report.html of a run directory from its files.
 *
 * @category constructors
 */
import { promises as fs } from "node:fs"
import * as path from "node:path"
import { parseMetricsJsonl, renderReport } from "../report/html.js"
import type { ReportTable } from "../report/html.js"

const tableMetrics: ReadonlyArray<[string, string]> = [
  ["held-out accuracy", "outcome/accuracy"],
  ["answer rate", "finish/answer_rate"],
  ["turns per trajectory", "turns/mean"],
  ["tool calls per trajectory", "tool/calls_per_trajectory"],
  ["tool use rate", "tool/use_rate"],
  ["tool-call error rate", "tool/error_rate"],
]

/** Write report.html for a run directory; returns its path. */
export const writeRunReport = async (outDir: string): Promise<string> => {
  const metricsPath = path.join(outDir, "metrics.jsonl")
  const text = await fs.readFile(metricsPath, "utf8").catch(() => {
    throw new Error(`${metricsPath}: not found; is ${outDir} a run directory?`)
  })
  const records = parseMetricsJsonl(text, metricsPath)
  const results = await fs
    .readFile(path.join(outDir, "results.json"), "utf8")
    .then((t) => JSON.parse(t) as { recipe?: string; before?: Record<string, number>; after?: Record<string, number>; backend?: string; seconds?: number })
    .catch(() => null)
  const recipe = await fs
    .readFile(path.join(outDir, "recipe.json"), "utf8")
    .then((t) => JSON.parse(t) as { name?: string })
    .catch(() => null)
  const name = results?.recipe ?? recipe?.name ?? path.basename(outDir)
  // The held-out curve starts at the starting weights (step 0); runs written before the
  // "before" evaluation was logged have it only in results.json.
  const hasStart = records.some((r) => r.phase === "eval" && r.step === 0)
  const before = results?.before
  if (!hasStart && before !== undefined && Object.keys(before).length > 0) records.unshift({ step: 0, phase: "eval", metrics: before })
  const tables: Array<ReportTable> = []
  if (results?.after !== undefined) {
    tables.push({
      caption: "Held-out results",
      header: ["metric", "before", "after"],
      rows: tableMetrics.map(([label, key]) => [label, results.before?.[key] ?? Number.NaN, results.after?.[key] ?? Number.NaN]),
    })
  }
  const html = renderReport({
    title: `Turnwise run: ${name}`,
    subtitle: `${outDir}${results?.backend === undefined ? "" : ` · backend ${results.backend}`}${
      results?.seconds === undefined ? "" : ` · ${results.seconds.toFixed(0)} s`
    }`,
    runs: [{ name, records }],
    tables,
    notes: records.some((r) => r.phase === "eval" && r.step === 0) ? ["The held-out curve's step 0 is the starting weights, evaluated before training."] : [],
  })
  const out = path.join(outDir, "report.html")
  await fs.writeFile(out, html)
  return out
}
