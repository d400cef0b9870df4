import { readFileSync, writeFileSync } from "node:fs"
import * as path from "node:path"
import { describe, expect, it } from "vitest"
import { cli, tempDir, tinyRun } from "./helpers.js"

const programRun = [...tinyRun, "--set", "task.kind=program", "--set", "train.steps=1", "--set", "model.init=assets/warm-start"] as const

describe("program synthesis from the CLI", () => {
  it("trains on the built-in program task with the rollout limits it needs", async () => {
    const out = tempDir("program")
    const result = await cli(["train", "gtpo", "--out", out, ...programRun])
    expect(result.code, result.stderr).toBe(0)
    expect(result.stderr).toMatch(/task program: rollout\.maxTokens 160 -> 256/)
    expect(result.stderr).toMatch(/task program: optimizer\.microBatchSize 32 -> 8/)
    const recipe = JSON.parse(readFileSync(path.join(out, "recipe.json"), "utf8")) as {
      rollout: { maxTokens: number; maxNewTokensPerTurn: number }
      optimizer: { microBatchSize: number }
    }
    expect(recipe.rollout).toMatchObject({ maxTokens: 256, maxNewTokensPerTurn: 112 })
    expect(recipe.optimizer.microBatchSize).toBe(8)
    const results = JSON.parse(readFileSync(path.join(out, "results.json"), "utf8")) as { after: Record<string, number> }
    expect(results.after["batch/trajectories"]).toBe(3)
    expect(results.after["outcome/score"]).toBeGreaterThanOrEqual(0)
  }, 240_000)

  it("compares recipes on it like on the arithmetic task", async () => {
    const out = tempDir("program-compare")
    const result = await cli(["compare", "grpo", "gtpo", "--seeds", "1", "--out", out, ...programRun])
    expect(result.code, result.stderr).toBe(0)
    const summary = JSON.parse(readFileSync(path.join(out, "compare.json"), "utf8")) as { summaries: Array<{ recipe: string }> }
    expect(summary.summaries.map((s) => s.recipe)).toEqual(["grpo", "gtpo"])
  }, 240_000)

  it("trains on a user's Python problem set and names a malformed line", async () => {
    const dir = tempDir("program-jsonl")
    const file = path.join(dir, "mine.jsonl")
    const rows = Array.from(
      { length: 6 },
      (_, k) => ({ prompt: `Write inc(x): return x plus ${k + 1}.`, entry_point: "inc", tests: [`assert inc(1) == ${k + 2}`], language: "python" }),
    )
    writeFileSync(file, rows.map((r) => JSON.stringify(r)).join("\n") + "\n")
    const out = path.join(dir, "run")
    const result = await cli(["train", "gtpo", "--out", out, ...programRun, "--set", `task.jsonl=${file}`, "--set", "task.evalCount=2"])
    expect(result.code, result.stderr).toBe(0)
    expect(result.stderr).toMatch(/rollout\.language js -> python/)

    writeFileSync(file, rows.map((r) => JSON.stringify(r)).join("\n") + "\n{\"prompt\":\"x\",\"entry_point\":\"inc\"}\n")
    const bad = await cli(["train", "gtpo", "--out", path.join(dir, "bad"), ...programRun, "--set", `task.jsonl=${file}`])
    expect(bad.code).toBe(1)
    expect(bad.stderr).toContain(`${file}:7: missing field "tests"`)
  }, 240_000)
})
