/**
 * report.html plots the starting weights' held-out accuracy at step 0, so a gain is
 * drawn as a gain: from the "before" record in metrics.jsonl, or, for a run written
 * before that record existed, from results.json.
 */
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import * as path from "node:path"
import { describe, expect, it } from "vitest"
import { writeRunReport } from "../../packages/cli/src/run/report.js"

const heldOutChart = (html: string): string => /<svg[^>]*aria-label="Held-out accuracy">.*?<\/svg>/s.exec(html)?.[0] ?? ""

const runDir = (records: ReadonlyArray<object>, results: object): string => {
  const dir = mkdtempSync(path.join(tmpdir(), "turnwise-report-"))
  writeFileSync(path.join(dir, "metrics.jsonl"), records.map((r) => JSON.stringify(r) + "\n").join(""))
  writeFileSync(path.join(dir, "results.json"), JSON.stringify(results))
  return dir
}

const train = (step: number) => ({ step, phase: "train", metrics: { "outcome/accuracy": 0.5, "reward/mean": 0.1 } })
const evalAt = (step: number, accuracy: number) => ({ step, phase: "eval", metrics: { "outcome/accuracy": accuracy } })

describe("writeRunReport", () => {
  it("starts the held-out curve at step 0 with the before evaluation from metrics.jsonl", async () => {
    const dir = runDir([evalAt(0, 0.4), train(1), train(2), evalAt(2, 0.6)], {
      recipe: "gtpo",
      before: { "outcome/accuracy": 0.4 },
      after: { "outcome/accuracy": 0.6 },
    })
    const chart = heldOutChart(readFileSync(await writeRunReport(dir), "utf8"))
    expect(chart).toMatch(/font-size="10">0<\/text>/) // the x axis starts at step 0
    expect(chart.match(/<circle /g)?.length).toBe(2) // before and after
    expect(chart).toMatch(/>0\.400<\/text>/) // the y axis reaches down to the before value
  })

  it("takes the before evaluation from results.json when metrics.jsonl has none (older runs)", async () => {
    const dir = runDir([train(1), train(2), evalAt(2, 0.6)], { recipe: "gtpo", before: { "outcome/accuracy": 0.4 }, after: { "outcome/accuracy": 0.6 } })
    const html = readFileSync(await writeRunReport(dir), "utf8")
    expect(heldOutChart(html).match(/<circle /g)?.length).toBe(2)
    expect(html).toMatch(/step 0 is the starting weights/)
  })
})
