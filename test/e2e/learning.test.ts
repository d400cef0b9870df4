/**
 * The learning test: from the shipped warm start, GTPO on a fixed pool of training
 * problems raises the mean reward within a bounded number of steps, on a fixed seed.
 */
import { readFileSync } from "node:fs"
import * as path from "node:path"
import { describe, expect, it } from "vitest"
import { cli, tempDir, tinyRun } from "./helpers.js"

const STEPS = 16
const MARGIN = 0.1

interface Record_ {
  readonly step: number
  readonly phase: string
  readonly metrics: Readonly<Record<string, number>>
}

describe("GTPO learns", () => {
  it(`raises mean reward by at least ${MARGIN} within ${STEPS} steps from the warm start`, async () => {
    const out = tempDir("learning")
    const result = await cli([
      "train",
      "gtpo",
      "--out",
      out,
      "--set",
      "model.init=assets/warm-start",
      "--set",
      `train.steps=${STEPS}`,
      "--set",
      "train.promptsPerStep=8",
      "--set",
      "train.evalEvery=0",
      "--set",
      "train.checkpointEvery=0",
      "--set",
      "task.trainCount=8",
      "--set",
      "task.evalCount=4",
      "--set",
      "task.levels=[1]",
      "--set",
      "optimizer.lr=1e-4",
    ])
    expect(result.code, result.stderr).toBe(0)
    const records = readFileSync(path.join(out, "metrics.jsonl"), "utf8")
      .trim()
      .split("\n")
      .map((line) => JSON.parse(line) as Record_)
      .filter((r) => r.phase === "train")
    const reward = records.map((r) => r.metrics["reward/mean"]!)
    const first = (reward[0]! + reward[1]! + reward[2]!) / 3
    const last = (reward[STEPS - 1]! + reward[STEPS - 2]! + reward[STEPS - 3]!) / 3
    expect(last - first, `reward by step: ${reward.map((r) => r.toFixed(3)).join(" ")}`).toBeGreaterThanOrEqual(MARGIN)
  }, 300_000)
})

describe("a KL penalty towards the warm start", () => {
  it("trains with klBeta > 0 and reports a finite, non-zero KL to the reference every step", async () => {
    const out = tempDir("kl")
    const result = await cli([
      "train",
      "gtpo",
      "--out",
      out,
      ...tinyRun,
      "--set",
      "model.init=assets/warm-start",
      "--set",
      "train.steps=2",
      "--set",
      "loss.options.klBeta=0.1",
      "--set",
      "optimizer.lr=1e-3",
    ])
    expect(result.code, result.stderr).toBe(0)
    const train = readFileSync(path.join(out, "metrics.jsonl"), "utf8")
      .trim()
      .split("\n")
      .map((line) => JSON.parse(line) as Record_)
      .filter((r) => r.phase === "train")
    expect(train).toHaveLength(2)
    for (const record of train) {
      expect(record.metrics["train/skipped"]).toBe(0)
      // Measured after the update: the policy has left the warm start, by a finite amount.
      expect(record.metrics["kl/reference"]).toBeGreaterThan(0)
      expect(Number.isFinite(record.metrics["kl/reference"])).toBe(true)
      expect(record.metrics["kl/behaviour"]).toBeGreaterThan(0)
    }
    // The penalty itself (measured before the second step's update, against the moved policy).
    expect(train[1]!.metrics["actor/kl"]).toBeGreaterThan(0)
    expect(Number.isFinite(train[1]!.metrics["actor/kl"])).toBe(true)
  }, 300_000)
})
