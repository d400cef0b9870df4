import { readFileSync } from "node:fs"
import * as path from "node:path"
import { describe, expect, it } from "vitest"
import { decodeSafetensors } from "../../packages/runtime/src/model/safetensors.js"
import { cli, tempDir } from "./helpers.js"

const small = ["--steps", "3", "--batch", "4", "--set", "task.trainCount=12", "--set", "model.preset=tiny"] as const

const weights = (out: string) => {
  const file = path.join(out, "checkpoints", "step-000003", "model.safetensors")
  return decodeSafetensors(readFileSync(file), file).tensors
}

describe("turnwise sft", () => {
  it("reproduces its checkpoint exactly, and a training run starts from it", async () => {
    const a = tempDir("sft-a")
    const b = tempDir("sft-b")
    const first = await cli(["sft", ...small, "--out", a])
    expect(first.code, first.stderr).toBe(0)
    expect(first.stderr).toMatch(/demonstrations: 12 \(2 with a failed call first, 0 answered with no call\)/)
    expect((await cli(["sft", ...small, "--out", b])).code).toBe(0)
    const wa = weights(a)
    const wb = weights(b)
    expect([...wa.keys()].sort()).toEqual([...wb.keys()].sort())
    for (const [name, t] of wa) expect(Array.from(t.data), name).toEqual(Array.from(wb.get(name)!.data))
    // The warm-start checkpoint holds weights only, so it stays small.
    const optimizer = readFileSync(path.join(a, "checkpoints", "step-000003", "optimizer.safetensors"))
    expect(optimizer.length).toBeLessThan(200)

    const run = tempDir("from-sft")
    const trained = await cli([
      "train",
      "gtpo",
      "--out",
      run,
      "--set",
      `model.init=${path.join(a, "checkpoints")}`,
      "--set",
      "train.steps=1",
      "--set",
      "train.promptsPerStep=1",
      "--set",
      "rollout.groupSize=2",
      "--set",
      "task.trainCount=4",
      "--set",
      "task.evalCount=2",
      "--set",
      "rollout.maxTurns=1",
    ])
    expect(trained.code, trained.stderr).toBe(0)
    const state = JSON.parse(readFileSync(path.join(run, "checkpoints", "step-000001", "state.json"), "utf8")) as { config: { model: { dModel: number } } }
    expect(state.config.model.dModel).toBe(64) // the tiny model of the warm start, not the default preset
  }, 240_000)

  it("refuses --mental-share without --steps instead of running the shipped schedule without it", async () => {
    const result = await cli(["sft", "--mental-share", "0.5", "--out", tempDir("sft-mental")])
    expect(result.code).toBe(1)
    expect(result.stderr).toMatch(/--mental-share sets the data of one stage: give --steps/)
  })

  it("names the missing file when model.init points nowhere", async () => {
    const result = await cli(["train", "gtpo", "--set", "model.init=/nonexistent/warm", "--set", "train.steps=1", "--out", tempDir("noinit")])
    expect(result.code).toBe(1)
    expect(result.stderr).toMatch(/\/nonexistent\/warm\/state\.json: not found/)
  })
})
