import { describe, expect, it } from "vitest"
import { cli } from "./helpers.js"

const small = ["--set", "task.evalCount=4", "--set", "rollout.maxNewTokensPerTurn=24", "--set", "rollout.maxTurns=2"] as const

describe("pass@k in turnwise eval", () => {
  it("prints eval/pass@k and eval/pass@1 of k samples per problem beside greedy accuracy, the same on a second run", async () => {
    const args = ["eval", "--checkpoint", "assets/warm-start", ...small, "--set", "train.evalSamples=3"]
    const result = await cli(args)
    expect(result.code, result.stderr).toBe(0)
    const line = JSON.parse(result.stdout) as { problems: number; samples: number; samplingTemperature: number; metrics: Record<string, number> }
    expect(line.problems).toBe(4)
    expect(line.samples).toBe(3)
    expect(line.samplingTemperature).toBeGreaterThan(0)
    const passAt3 = line.metrics["eval/pass@3"]!
    const passAt1 = line.metrics["eval/pass@1"]!
    // Per problem "any of 3 correct" is at least "fraction of 3 correct"; both are multiples of 1/4 and 1/12.
    expect(passAt3).toBeGreaterThanOrEqual(passAt1)
    expect(passAt3 * 4).toBeCloseTo(Math.round(passAt3 * 4), 9)
    expect(passAt1 * 12).toBeCloseTo(Math.round(passAt1 * 12), 9)
    expect(line.metrics["outcome/accuracy"]).toBeDefined()
    expect(result.stderr).toMatch(/pass@3 and pass@1 from 3 samples per problem at temperature/)
    expect(result.stderr).toMatch(/eval\/pass@3\s+\d/)
    // A fixed seed: the same samples again.
    const again = JSON.parse((await cli(args)).stdout) as { metrics: Record<string, number> }
    expect(again.metrics["eval/pass@3"]).toBe(passAt3)
    expect(again.metrics["eval/pass@1"]).toBe(passAt1)
  }, 240_000)

  it("leaves pass@k out by default", async () => {
    const result = await cli(["eval", "--checkpoint", "assets/warm-start", ...small])
    expect(result.code, result.stderr).toBe(0)
    const line = JSON.parse(result.stdout) as { samples?: number; metrics: Record<string, number> }
    expect(line.samples).toBeUndefined()
    expect(Object.keys(line.metrics).filter((name) => name.startsWith("eval/pass@"))).toEqual([])
  }, 120_000)
})
