/**
 * `turnwise train` with bad inputs exits 1 with one readable line and leaves no run
 * directory; `--set train.steps=0` is an evaluation-only run.
 */
import { existsSync, readFileSync, writeFileSync } from "node:fs"
import * as path from "node:path"
import { describe, expect, it } from "vitest"
import { cli, tempDir } from "./helpers.js"

describe("turnwise train checks its inputs before it creates the run directory", () => {
  it("--resume on a directory that does not exist is an error naming it", async () => {
    const out = path.join(tempDir("cli-resume"), "missing")
    const result = await cli(["train", "gtpo", "--resume", "--out", out])
    expect(result.code).toBe(1)
    expect(result.stderr).toContain(`error: ${out}: does not exist, so there is no run to resume`)
    expect(existsSync(out)).toBe(false)
  })

  it("a model.init that is not a checkpoint, or a data set with nothing to train on, leaves no directory", async () => {
    const root = tempDir("cli-inputs")
    const data = path.join(root, "one.jsonl")
    writeFileSync(data, "{\"question\":\"1+1=?\",\"answer\":\"2\"}\n")
    const cases: Array<[ReadonlyArray<string>, RegExp]> = [
      [["--set", "model.init=/nonexistent/warm"], /error: checkpoint \/nonexistent\/warm\/state\.json: not found/],
      [["--set", `task.jsonl=${data}`, "--set", "task.evalCount=1"], /one\.jsonl: 1 problem\(s\), all held out/],
    ]
    for (const [k, [sets, pattern]] of cases.entries()) {
      const out = path.join(root, `run-${k}`)
      const result = await cli(["train", "gtpo", ...sets, "--out", out])
      expect(result.code, sets.join(" ")).toBe(1)
      expect(result.stderr).toMatch(pattern)
      expect(existsSync(out), sets.join(" ")).toBe(false)
    }
  }, 60_000)

  it("--set train.steps=0 evaluates the starting weights and writes the report", async () => {
    const out = path.join(tempDir("cli-zero"), "run")
    const result = await cli([
      "train",
      "gtpo",
      "--set",
      "train.steps=0",
      "--set",
      "model.preset=tiny",
      "--set",
      "task.evalCount=2",
      "--set",
      "sandboxWorkers=1",
      "--out",
      out,
    ])
    expect(result.code, result.stderr).toBe(0)
    const results = JSON.parse(readFileSync(path.join(out, "results.json"), "utf8")) as {
      steps: number
      before: Record<string, number>
      after: Record<string, number>
    }
    expect(results.steps).toBe(0)
    expect(results.after).toEqual(results.before)
    expect(results.before["outcome/accuracy"]).toBeTypeOf("number")
    expect(existsSync(path.join(out, "report.html"))).toBe(true)
  }, 60_000)
})
