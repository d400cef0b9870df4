import { existsSync, readFileSync, writeFileSync } from "node:fs"
import * as path from "node:path"
import { describe, expect, it } from "vitest"
import { decodeSafetensors } from "../../packages/runtime/src/model/safetensors.js"
import { cli, tempDir, tinyRun } from "./helpers.js"

const weightsOf = (dir: string, step: number) => {
  const file = path.join(dir, "checkpoints", `step-${String(step).padStart(6, "0")}`, "model.safetensors")
  return decodeSafetensors(readFileSync(file), file).tensors
}

const metricSteps = (dir: string) =>
  readFileSync(path.join(dir, "metrics.jsonl"), "utf8")
    .trim()
    .split("\n")
    .map((line) => JSON.parse(line) as { step: number; phase: string })
    .filter((r) => r.phase === "train")
    .map((r) => r.step)

describe("turnwise train", () => {
  it("resumes exactly: 2 steps, then --resume to 3, equals 3 uninterrupted steps", async () => {
    const straight = tempDir("straight")
    const split = tempDir("split")
    // From the shipped warm start, so rewards differ within groups and the weights really move.
    const warm = ["--set", "model.init=assets/warm-start", "--set", "optimizer.lr=1e-3"]
    const a = await cli(["train", "gtpo", ...tinyRun, ...warm, "--set", "train.steps=3", "--out", straight])
    expect(a.code, a.stderr).toBe(0)
    const b1 = await cli(["train", "gtpo", ...tinyRun, ...warm, "--set", "train.steps=2", "--out", split])
    expect(b1.code, b1.stderr).toBe(0)
    const b2 = await cli(["train", "gtpo", ...tinyRun, ...warm, "--set", "train.steps=3", "--out", split, "--resume"])
    expect(b2.code, b2.stderr).toBe(0)
    expect(metricSteps(split)).toEqual([1, 2, 3])
    const wa = weightsOf(straight, 3)
    const wb = weightsOf(split, 3)
    const w0 = weightsOf(split, 1)
    let maxDiff = 0
    let moved = 0
    for (const [name, t] of wa) {
      const u = wb.get(name)!
      const first = w0.get(name)!
      for (let i = 0; i < t.data.length; i++) {
        maxDiff = Math.max(maxDiff, Math.abs(t.data[i]! - u.data[i]!))
        moved = Math.max(moved, Math.abs(t.data[i]! - first.data[i]!))
      }
    }
    expect(moved).toBeGreaterThan(1e-5) // training really changed the weights between step 1 and 3
    expect(maxDiff).toBeLessThan(1e-5)
    expect(existsSync(path.join(split, "report.html"))).toBe(true)
    const recipe = JSON.parse(readFileSync(path.join(split, "recipe.json"), "utf8")) as { name: string; returns: { options: { gamma: number } } }
    expect(recipe.name).toBe("gtpo")
    expect(recipe.returns.options.gamma).toBe(0.9)
  }, 240_000)

  it("refuses to overwrite a run without --resume, and reports a corrupted checkpoint by file", async () => {
    const dir = tempDir("corrupt")
    expect((await cli(["train", "gtpo", ...tinyRun, "--set", "train.steps=1", "--out", dir])).code).toBe(0)
    const again = await cli(["train", "gtpo", ...tinyRun, "--set", "train.steps=2", "--out", dir])
    expect(again.code).toBe(1)
    expect(again.stderr).toMatch(/already holds checkpoints; pass --resume/)
    const file = path.join(dir, "checkpoints", "step-000001", "model.safetensors")
    const bytes = readFileSync(file)
    bytes[bytes.length - 3] = bytes[bytes.length - 3]! ^ 0xff
    writeFileSync(file, bytes)
    const resumed = await cli(["train", "gtpo", ...tinyRun, "--set", "train.steps=2", "--out", dir, "--resume"])
    expect(resumed.code).toBe(1)
    expect(resumed.stderr).toMatch(/model\.safetensors.*(SHA-256|corrupted)/)
  }, 180_000)

  it("rejects bad configuration with the path of the field, before any work", async () => {
    const cases: Array<[ReadonlyArray<string>, RegExp]> = [
      [["train", "gtpo", "--set", "train.steps=many"], /train.*steps/],
      [["train", "gtpo", "--set", "returns.options.gamma=3"], /returns\.options/],
      [["train", "gtpo", "--set", "rollout.groupSiz=4"], /rollout.*groupSiz/],
      [["train", "nope"], /neither a shipped recipe/],
      [["train", "gtpo", "--set", "backend=tpu"], /backend/],
    ]
    for (const [argv, pattern] of cases) {
      const result = await cli(argv)
      expect(result.code, argv.join(" ")).toBe(1)
      expect(result.stderr).toMatch(pattern)
    }
    const usage = await cli(["train"])
    expect(usage.code).toBe(2)
    expect(usage.stderr).toMatch(/train needs a recipe/)
  })

  it("loads a recipe from the recipe.json a run wrote, and from a config file", async () => {
    const dir = tempDir("json")
    const recipeFile = path.join(dir, "my-recipe.json")
    const { Recipe } = await import("@turnwise/dsl")
    const { recipes } = await import("@turnwise/recipes")
    writeFileSync(recipeFile, JSON.stringify({ ...Recipe.encode(recipes.grpo!), name: "grpo-from-json" }))
    const configFile = path.join(dir, "config.json")
    writeFileSync(configFile, JSON.stringify({ train: { steps: 1 }, loss: { name: "dapo", options: {} } }))
    const out = path.join(dir, "run")
    const result = await cli(["train", recipeFile, "--config", configFile, ...tinyRun, "--out", out])
    expect(result.code, result.stderr).toBe(0)
    const written = JSON.parse(readFileSync(path.join(out, "recipe.json"), "utf8")) as { name: string; loss: { name: string } }
    expect(written.name).toBe("grpo-from-json")
    expect(written.loss.name).toBe("dapo")
    writeFileSync(configFile, "{ not json")
    const bad = await cli(["train", recipeFile, "--config", configFile])
    expect(bad.code).toBe(1)
    expect(bad.stderr).toMatch(/config\.json: not valid JSON/)
  }, 120_000)
})

describe("turnwise exec", () => {
  it("prints one JSON observation and exits 0 when the sandbox worked, whatever the guest did", async () => {
    const ok = await cli(["exec", "--lang", "js"], "6*7")
    expect(ok.code).toBe(0)
    expect(JSON.parse(ok.stdout)).toMatchObject({ ok: true, value: "42" })
    const loop = await cli(["exec", "--lang", "js", "--timeout-ms", "200"], "while(true){}")
    expect(loop.code).toBe(0)
    expect(JSON.parse(loop.stdout)).toMatchObject({ ok: false, kind: "timeout" })
  }, 60_000)
})

describe("turnwise eval", () => {
  it("prints a readable table of the metrics on stderr, the same numbers as its JSON line on stdout", async () => {
    const result = await cli(["eval", "--checkpoint", "assets/warm-start", "--set", "task.evalCount=2"])
    expect(result.code, result.stderr).toBe(0)
    const line = JSON.parse(result.stdout) as { metrics: Record<string, number> }
    expect(result.stderr).toMatch(/held-out evaluation of assets\/warm-start: 2 problems, temperature 0/)
    const names = Object.keys(line.metrics)
    expect(names.length).toBeGreaterThan(3)
    for (const name of names) {
      const value = line.metrics[name]!
      const shown = Number.isInteger(value) ? String(value) : value.toFixed(3)
      expect(result.stderr, name).toMatch(new RegExp(`^ {2}${name.replace(/[/.+]/g, "\\$&")} +${shown.replace(/[.+-]/g, "\\$&")}$`, "m"))
    }
  }, 120_000)
})
