/**
 * The learning tests, each on a fixed seed: from the bare-question warm start
 * (assets/warm-start-bare), GTPO on a fixed pool of training problems raises the mean
 * reward; from the half-mental warm start (assets/warm-start-m50), it raises greedy
 * accuracy on held-out problems;
 * and a run with a KL penalty trains and reports its KL.
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

/** The records a run wrote to metrics.jsonl for one phase ("train" or "eval"), in order. */
const recordsOf = (out: string, phase: string): Array<Record_> =>
  readFileSync(path.join(out, "metrics.jsonl"), "utf8")
    .trim()
    .split("\n")
    .map((line) => JSON.parse(line) as Record_)
    .filter((r) => r.phase === phase)

describe("GTPO learns", () => {
  it(`raises mean reward by at least ${MARGIN} within ${STEPS} steps from the warm start`, async () => {
    const out = tempDir("learning")
    const result = await cli([
      "train",
      "gtpo",
      "--out",
      out,
      "--set",
      "model.init=assets/warm-start-bare",
      "--set",
      "task.phrasings=bare",
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
    const records = recordsOf(out, "train")
    const reward = records.map((r) => r.metrics["reward/mean"]!)
    const first = (reward[0]! + reward[1]! + reward[2]!) / 3
    const last = (reward[STEPS - 1]! + reward[STEPS - 2]! + reward[STEPS - 3]!) / 3
    expect(last - first, `reward by step: ${reward.map((r) => r.toFixed(3)).join(" ")}`).toBeGreaterThanOrEqual(MARGIN)
  }, 600_000)
})

// Held-out learning: greedy accuracy on problems never trained on, before and after. The
// shipped warm start answers about a quarter of level-1 problems without the tool (it
// imitated a teacher who worked half of them out in its head) and is then nearly always
// wrong; RL should teach it to call the tool, which carries over to new problems.
const HELDOUT_STEPS = 12
const HELDOUT_MARGIN = 0.06
const TOOL_USE_MARGIN = 0.15

describe("GTPO lifts held-out accuracy", () => {
  it(`raises greedy held-out accuracy by at least ${HELDOUT_MARGIN} in ${HELDOUT_STEPS} steps from the warm start, on a fixed seed`, async () => {
    const out = tempDir("heldout-learning")
    const result = await cli([
      "train",
      "gtpo",
      "--out",
      out,
      "--set",
      "model.init=assets/warm-start-m50",
      "--set",
      "task.phrasings=varied",
      "--set",
      "task.levels=[1]",
      "--set",
      "task.trainCount=64",
      "--set",
      "task.evalCount=48",
      "--set",
      `train.steps=${HELDOUT_STEPS}`,
      "--set",
      "train.evalEvery=0",
      "--set",
      "train.checkpointEvery=0",
      "--set",
      "optimizer.lr=5e-5",
    ])
    expect(result.code, result.stderr).toBe(0)
    const evals = recordsOf(out, "eval")
    const before = evals.find((r) => r.step === 0)!.metrics
    const after = evals.find((r) => r.step === HELDOUT_STEPS)!.metrics
    const seen = `held-out accuracy ${before["outcome/accuracy"]} -> ${after["outcome/accuracy"]}, tool use ${before["tool/use_rate"]} -> ${
      after["tool/use_rate"]
    }`
    expect(after["outcome/accuracy"]! - before["outcome/accuracy"]!, seen).toBeGreaterThanOrEqual(HELDOUT_MARGIN)
    expect(after["tool/use_rate"]! - before["tool/use_rate"]!, seen).toBeGreaterThanOrEqual(TOOL_USE_MARGIN)
  }, 600_000)
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
      "model.init=assets/warm-start-bare",
      "--set",
      "task.phrasings=bare",
      "--set",
      "train.steps=2",
      "--set",
      "loss.options.klBeta=0.1",
      "--set",
      "optimizer.lr=1e-3",
    ])
    expect(result.code, result.stderr).toBe(0)
    const train = recordsOf(out, "train")
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
  }, 600_000)
})
