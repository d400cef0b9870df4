import { existsSync, readFileSync } from "node:fs"
import * as path from "node:path"
import { describe, expect, it } from "vitest"
import { cli, tempDir, tinyRun } from "./helpers.js"

describe("turnwise compare", () => {
  it("trains each recipe per seed from the same start and data, and summarises over seeds", async () => {
    const out = tempDir("compare")
    const result = await cli([
      "compare",
      "grpo",
      "gtpo",
      "--seeds",
      "2",
      "--out",
      out,
      ...tinyRun,
      "--set",
      "train.steps=1",
      "--set",
      "model.init=assets/warm-start",
      "--set",
      "train.evalSamples=2",
    ])
    expect(result.code, result.stderr).toBe(0)
    const summary = JSON.parse(readFileSync(path.join(out, "compare.json"), "utf8")) as {
      summaries: Array<{
        recipe: string
        seeds: number
        problems: number
        accuracy: { mean: number; values: Array<number> }
        interval: { mean: number; lo: number; hi: number; level: number }
        difference?: { mean: number; lo: number; hi: number; against: string }
        pass?: { k: number; values: Array<number>; interval: { mean: number; lo: number; hi: number }; passAt1: { mean: number } }
      }>
      entries: Array<{ recipe: string; run: { model: { init: string }; train: { seed: number; steps: number } } }>
    }
    expect(summary.summaries.map((s) => s.recipe)).toEqual(["grpo", "gtpo"])
    expect(summary.summaries.every((s) => s.seeds === 2 && s.accuracy.values.length === 2)).toBe(true)
    for (const s of summary.summaries) {
      // The per-problem re-evaluation reproduces the run's own held-out accuracy.
      expect(s.problems).toBe(3)
      expect(s.interval.mean).toBeCloseTo(s.accuracy.mean, 10)
      expect(s.interval.level).toBe(0.95)
      expect(s.interval.lo).toBeLessThanOrEqual(s.interval.mean)
      expect(s.interval.hi).toBeGreaterThanOrEqual(s.interval.mean)
      // pass@2 from 2 samples per problem: the re-evaluation reproduces each run's own final pass@2 (same seed).
      expect(s.pass?.k).toBe(2)
      expect(s.pass?.values).toHaveLength(2)
      expect(s.pass!.interval.mean).toBeCloseTo(s.pass!.values.reduce((a, b) => a + b, 0) / 2, 10)
      expect(s.pass!.interval.mean).toBeGreaterThanOrEqual(s.pass!.passAt1.mean)
    }
    const [grpo, gtpo] = summary.summaries
    expect(grpo?.difference).toBeUndefined()
    expect(gtpo?.difference?.against).toBe("grpo")
    expect(gtpo?.difference?.mean).toBeCloseTo((gtpo?.interval.mean ?? 0) - (grpo?.interval.mean ?? 0), 10)
    // Same warm start, same step count, same seeds for both recipes.
    expect(new Set(summary.entries.map((e) => JSON.stringify({ init: e.run.model.init, train: e.run.train }))).size).toBe(1)
    for (const recipe of ["grpo", "gtpo"]) {
      for (const seed of [0, 1]) {
        const config = JSON.parse(readFileSync(path.join(out, recipe, `seed-${seed}`, "config.json"), "utf8")) as { train: { seed: number } }
        expect(config.train.seed).toBe(1 + seed)
      }
    }
    expect(existsSync(path.join(out, "report.html"))).toBe(true)
    const html = readFileSync(path.join(out, "report.html"), "utf8")
    expect(html).toMatch(/grpo[\s\S]*gtpo/)
    expect(html).toMatch(/<path class="band" data-run="gtpo" data-metric="eval\/pass@2"/)
    const metrics = readFileSync(path.join(out, "gtpo", "seed-0", "metrics.jsonl"), "utf8")
    expect(metrics).toMatch(/"phase":"eval".*"eval\/pass@2":/)
    expect(result.stdout).toMatch(
      /gtpo\s+\d\.\d{3} \[\d\.\d{3}, \d\.\d{3}\]\s+[+-]\d\.\d{3} \[[+-]\d\.\d{3}, [+-]\d\.\d{3}\]\s+\d\.\d{3} \[\d\.\d{3}, \d\.\d{3}\]\s+\d\.\d{3} \[/,
    )
    expect(result.stdout).toMatch(/pass@2 \[95% CI\]/)
  }, 480_000)

  it("refuses --seeds 0 instead of printing an empty summary", async () => {
    const out = tempDir("seeds0")
    const result = await cli(["compare", "grpo", "gtpo", "--seeds", "0", "--out", out])
    expect(result.code).not.toBe(0)
    expect(result.stderr).toMatch(/seeds/)
    expect(existsSync(path.join(out, "compare.json"))).toBe(false)
  })

  it("refuses two recipes with the same name", async () => {
    const result = await cli(["compare", "gtpo", "gtpo", "--out", tempDir("dup")])
    expect(result.code).toBe(1)
    expect(result.stderr).toMatch(/recipe names must differ/)
  })
})
