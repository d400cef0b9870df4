/**
 * `turnwise train --set cluster.runners=N`: rollouts on local runner processes through
 * the same command, and the settings that cannot go with them rejected up front.
 */
import { existsSync, readFileSync } from "node:fs"
import * as path from "node:path"
import { describe, expect, it } from "vitest"
import { cli, tempDir, tinyRun } from "./helpers.js"

describe("turnwise train with cluster.runners", () => {
  it("rejects a model the runners cannot load before it creates the run directory", async () => {
    const out = path.join(tempDir("cluster-bad"), "run")
    const result = await cli(["train", "gtpo", "--set", "cluster.runners=1", "--set", "model.path=some/hf-model", "--out", out])
    expect(result.code).toBe(1)
    expect(result.stderr).toMatch(/cluster\.runners: rollouts on runners use preset models only; model\.path is set/)
    expect(existsSync(out)).toBe(false)
  })

  it("rejects asynchronous mode without runners before it creates the run directory", async () => {
    const out = path.join(tempDir("cluster-async-bad"), "run")
    const result = await cli(["train", "gtpo", "--set", "cluster.mode=async", "--out", out])
    expect(result.code).toBe(1)
    expect(result.stderr).toMatch(/cluster\.mode: async mode overlaps rollouts on runners with training; set cluster\.runners to 1 or more/)
    expect(existsSync(out)).toBe(false)
  })

  it("trains in asynchronous mode with --set cluster.mode=async and records the staleness of every step", async () => {
    const out = path.join(tempDir("cluster-async"), "run")
    const result = await cli([
      "train",
      "gtpo",
      ...tinyRun,
      "--set",
      "model.preset=tiny",
      "--set",
      "train.steps=3",
      "--set",
      "sandboxWorkers=1",
      "--set",
      "cluster.runners=1",
      "--set",
      "cluster.mode=async",
      "--set",
      "cluster.maxStaleness=1",
      "--set",
      "cluster.importanceCap=1.5",
      "--out",
      out,
    ])
    expect(result.code, result.stderr).toBe(0)
    expect(result.stderr).toContain("asynchronous rollouts, at most 1 versions behind")
    const records = readFileSync(path.join(out, "metrics.jsonl"), "utf8")
      .trim()
      .split("\n")
      .map((line) => JSON.parse(line) as { step: number; phase: string; metrics: Record<string, number> })
    const train = records.filter((record) => record.phase === "train")
    expect(train.map((record) => record.step)).toEqual([1, 2, 3])
    // Step 1 samples with the weights it updates; later steps were sent one update earlier.
    expect(train.map((record) => record.metrics["cluster/staleness_max"])).toEqual([0, 1, 1])
    for (const record of train) expect(record.metrics["cluster/is_truncated_frac"]).toBeGreaterThanOrEqual(0)
  }, 240_000)

  it("trains with rollouts on one runner process and writes the run as usual", async () => {
    const out = path.join(tempDir("cluster-run"), "run")
    const result = await cli([
      "train",
      "gtpo",
      ...tinyRun,
      "--set",
      "model.preset=tiny",
      "--set",
      "train.steps=2",
      "--set",
      "sandboxWorkers=1",
      "--set",
      "cluster.runners=1",
      "--out",
      out,
    ])
    expect(result.code, result.stderr).toBe(0)
    expect(result.stderr).toContain("rolling out on 1 local runner processes")
    const steps = readFileSync(path.join(out, "metrics.jsonl"), "utf8").trim().split("\n").map((line) => JSON.parse(line) as { step: number; phase: string })
    expect(steps.filter((record) => record.phase === "train").map((record) => record.step)).toEqual([1, 2])
    // The learner published a policy version per step for the runner to fetch.
    expect(existsSync(path.join(out, "cluster", "policy"))).toBe(true)
    expect(existsSync(path.join(out, "results.json"))).toBe(true)
  }, 240_000)
})
