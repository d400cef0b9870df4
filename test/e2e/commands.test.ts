import { readFileSync, rmSync, existsSync } from "node:fs"
import * as path from "node:path"
import { describe, expect, it } from "vitest"
import { cli, tempDir, tinyRun } from "./helpers.js"

describe("turnwise eval, sample and report", () => {
  it("eval prints held-out metrics of a checkpoint as one JSON line", async () => {
    const result = await cli(["eval", "--checkpoint", "assets/warm-start", "--set", "task.evalCount=6"])
    expect(result.code, result.stderr).toBe(0)
    const line = JSON.parse(result.stdout) as { problems: number; temperature: number; metrics: Record<string, number> }
    expect(line.problems).toBe(6)
    expect(line.temperature).toBe(0)
    expect(line.metrics["batch/trajectories"]).toBe(6)
    expect(line.metrics["finish/answer_rate"]).toBeGreaterThan(0.5) // the warm start answers in the protocol
  }, 120_000)

  it("sample prints n transcripts in the tool protocol", async () => {
    const result = await cli(["sample", "--checkpoint", "assets/warm-start-bare", "--question", "32+26=?", "--n", "2", "--temperature", "0.5"])
    expect(result.code, result.stderr).toBe(0)
    const transcripts = result.stdout.split("--- finish: ").slice(1)
    expect(transcripts).toHaveLength(2)
    for (const t of transcripts) expect(t).toMatch(/Q: 32\+26=\?\n<code>[\s\S]*<\/code>\n<output>/)
  }, 120_000)

  it("report rebuilds report.html from a run directory, and names a directory that is not a run", async () => {
    const dir = tempDir("report")
    expect((await cli(["train", "gtpo", ...tinyRun, "--set", "train.steps=1", "--out", dir])).code).toBe(0)
    rmSync(path.join(dir, "report.html"))
    const result = await cli(["report", dir])
    expect(result.code, result.stderr).toBe(0)
    expect(existsSync(path.join(dir, "report.html"))).toBe(true)
    expect(readFileSync(path.join(dir, "report.html"), "utf8")).toMatch(/Held-out results/)
    const missing = await cli(["report", tempDir("empty")])
    expect(missing.code).toBe(1)
    expect(missing.stderr).toMatch(/metrics\.jsonl: not found; is .* a run directory\?/)
  }, 120_000)
})
