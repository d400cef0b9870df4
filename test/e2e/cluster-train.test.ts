/**
 * `turnwise train --set cluster.runners=N`: rollouts on local runner processes through
 * the same command, or on runners that join with `turnwise runner --join` when
 * cluster.listen is set, and the settings that cannot go with them rejected up front.
 */
import { existsSync, readFileSync } from "node:fs"
import * as path from "node:path"
import { describe, expect, it } from "vitest"
import { freePort } from "@turnwise/cluster"
import { startJoinedRunner } from "../cluster/harness.js"
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

  it("rejects cluster.listen without runners to wait for", async () => {
    const out = path.join(tempDir("cluster-listen-bad"), "run")
    const result = await cli(["train", "gtpo", "--set", "cluster.listen=127.0.0.1:7400", "--out", out])
    expect(result.code).toBe(1)
    expect(result.stderr).toMatch(/cluster\.listen: the learner would wait for no runner; set cluster\.runners/)
    expect(existsSync(out)).toBe(false)
  })

  it("waits for a runner started with `turnwise runner --join`, trains with it, and the runner leaves when the run ends", async () => {
    const port = await freePort()
    // The runner starts first, as on another machine; it keeps trying until the learner listens.
    const runner = startJoinedRunner(`127.0.0.1:${port}`)
    try {
      const out = path.join(tempDir("cluster-listen"), "run")
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
        "--set",
        `cluster.listen=127.0.0.1:${port}`,
        "--out",
        out,
      ])
      expect(result.code, result.stderr).toBe(0)
      expect(result.stderr).toContain(`coordinator listening on 127.0.0.1:${port}; waiting for 1 runner(s)`)
      expect(result.stderr).toMatch(/rolling out on 1 joined runner\(s\): 127\.0\.0\.1:\d+/)
      const train = readFileSync(path.join(out, "metrics.jsonl"), "utf8")
        .trim()
        .split("\n")
        .map((line) => JSON.parse(line) as { step: number; phase: string; metrics: Record<string, number> })
        .filter((record) => record.phase === "train")
      expect(train.map((record) => record.step)).toEqual([1, 2])
      for (const record of train) expect(record.metrics["cluster/runners_used"]).toBe(1)
      expect(await runner.exited, runner.lines.join("\n")).toBe(0)
      expect(runner.lines.some((line) => line.includes(`joined the coordinator at 127.0.0.1:${port}`))).toBe(true)
      expect(runner.lines.some((line) => /stopped answering .*; left the cluster/.test(line))).toBe(true)
    } finally {
      if (runner.child.exitCode === null && runner.child.signalCode === null) runner.child.kill("SIGKILL")
    }
  }, 240_000)
})
