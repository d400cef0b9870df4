/**
 * A run's inputs are checked before its directory is created, `train.steps=0` is an
 * evaluation-only run, and a resumed run keeps its "before" figures and elapsed time.
 * Runs call `runTrain` directly with tiny sizes.
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs"
import { cp } from "node:fs/promises"
import { tmpdir } from "node:os"
import * as path from "node:path"
import { describe, expect, it } from "vitest"
import { recipes } from "@turnwise/recipes"
import { defaultRunConfig, resolveRun } from "../../packages/cli/src/run/resolve.js"
import { runTrain } from "../../packages/cli/src/run/train.js"

const tempDir = (prefix: string): string => mkdtempSync(path.join(tmpdir(), `turnwise-${prefix}-`))

/** Tiny sizes: the tiny preset, a few short rollouts, two held-out problems. */
const tiny = [
  "model.preset=tiny",
  "train.promptsPerStep=2",
  "rollout.groupSize=2",
  "rollout.maxNewTokensPerTurn=12",
  "rollout.maxTurns=1",
  "task.trainCount=8",
  "task.evalCount=2",
  "train.evalEvery=0",
  "train.checkpointEvery=1",
  "sandboxWorkers=1",
]

const train = async (sets: ReadonlyArray<string>, outDir: string, resume = false) => {
  const { recipe, run } = resolveRun(recipes.gtpo!, defaultRunConfig, { file: {}, sets: [...tiny, ...sets] })
  const lines: Array<string> = []
  const result = await runTrain({ recipe, run, outDir, resume, evalBefore: true, log: (line) => void lines.push(line), tty: false })
  return { result, lines }
}

const records = (dir: string) =>
  readFileSync(path.join(dir, "metrics.jsonl"), "utf8")
    .trim()
    .split("\n")
    .map((line) => JSON.parse(line) as { step: number; phase: string; metrics: Record<string, number>; elapsedSeconds: number })

/** Runs `train` expecting a rejection; returns its message. */
const rejection = async (sets: ReadonlyArray<string>, outDir: string, resume = false): Promise<string> => {
  const error = await train(sets, outDir, resume).then(
    () => undefined,
    (e: unknown) => e,
  )
  expect(error, "the run should have been rejected").toBeInstanceOf(Error)
  return (error as Error).message
}

describe("runTrain checks every input before the run directory exists", () => {
  it("rejects --resume on a directory that does not exist, naming it, and creates nothing", async () => {
    const out = path.join(tempDir("resume-missing"), "no-such-run")
    expect(await rejection([], out, true)).toMatch(new RegExp(`${out.replace(/[/\\]/g, ".")}: does not exist, so there is no run to resume`))
    expect(existsSync(out)).toBe(false)
  })

  it("rejects --resume on a directory that is not a run directory", async () => {
    const out = tempDir("resume-empty")
    expect(await rejection([], out, true)).toMatch(/is not a run directory \(it has no config\.json\)/)
    expect(readdirSync(out)).toEqual([])
  })

  it("rejects a model.init that is not a checkpoint, and creates nothing", async () => {
    const out = path.join(tempDir("bad-init"), "run")
    expect(await rejection(["model.init=/nonexistent/warm"], out)).toMatch(/\/nonexistent\/warm\/state\.json: not found/)
    expect(existsSync(out)).toBe(false)
  })

  it("rejects a corrupted model.init checkpoint by file, and creates nothing", async () => {
    const root = tempDir("corrupt-init")
    const init = path.join(root, "warm")
    await cp("assets/warm-start", init, { recursive: true })
    const step = readFileSync(path.join(init, "latest"), "utf8").trim()
    const file = path.join(init, step, "model.safetensors")
    const bytes = readFileSync(file)
    bytes[bytes.length - 5] = bytes[bytes.length - 5]! ^ 0xff
    writeFileSync(file, bytes)
    const out = path.join(root, "run")
    expect(await rejection([`model.init=${init}`, "model.preset=compact"], out)).toMatch(/model\.safetensors.*(SHA-256|corrupted)/)
    expect(existsSync(out)).toBe(false)
  })

  it("rejects a JSONL file that leaves nothing to train on, and creates nothing", async () => {
    const root = tempDir("short-jsonl")
    const data = path.join(root, "two.jsonl")
    writeFileSync(data, "{\"question\":\"1+1=?\",\"answer\":\"2\"}\n{\"question\":\"2+2=?\",\"answer\":\"4\"}\n")
    const out = path.join(root, "run")
    expect(await rejection([`task.jsonl=${data}`, "task.evalCount=2", "train.steps=1"], out)).toMatch(
      /two\.jsonl: 2 problem\(s\), all held out .*none left to train on/,
    )
    expect(existsSync(out)).toBe(false)
  })

  it("rejects a JSONL file with a bad line, naming the line, and creates nothing", async () => {
    const root = tempDir("bad-jsonl")
    const data = path.join(root, "bad.jsonl")
    writeFileSync(data, "{\"question\":\"1+1=?\",\"answer\":\"2\"}\nnot json\n")
    const out = path.join(root, "run")
    expect(await rejection([`task.jsonl=${data}`], out)).toMatch(/bad\.jsonl:2/)
    expect(existsSync(out)).toBe(false)
  })
})

describe("train.steps=0", () => {
  it("evaluates the starting weights, logs it, and writes a report without training", async () => {
    const out = path.join(tempDir("zero"), "run")
    const { result, lines } = await train(["train.steps=0", "model.init="], out)
    expect(result.steps).toBe(0)
    expect(result.before["outcome/accuracy"]).toBeTypeOf("number")
    expect(result.after).toEqual(result.before)
    expect(records(out).map((r) => [r.phase, r.step])).toEqual([["eval", 0]])
    expect(existsSync(path.join(out, "report.html"))).toBe(true)
    expect(existsSync(path.join(out, "checkpoints"))).toBe(false)
    expect(lines.join("\n")).toMatch(/starting from the initial weights of preset tiny \(seed 0\) \(model\.init is ""\)/)
    expect(lines.join("\n")).toMatch(/evaluating 2 held-out problems of the starting weights/)
    expect(lines.join("\n")).toMatch(/held-out accuracy of the starting weights \(train\.steps is 0\): \d\.\d{3}/)
  }, 120_000)
})

describe("a resumed run", () => {
  it("keeps its before figures, its elapsed time and one record per step; the report plots step 0", async () => {
    const out = path.join(tempDir("resume"), "run")
    const first = await train(["train.steps=2", "train.evalEvery=1"], out)
    expect(first.lines.join("\n")).toMatch(/held-out accuracy at step 1: \d\.\d{3}/)
    const firstRecords = records(out)
    const lastElapsed = Math.max(...firstRecords.map((r) => r.elapsedSeconds))
    const second = await train(["train.steps=3", "train.evalEvery=1"], out, true)
    expect(second.lines.join("\n")).toMatch(/recorded in metrics\.jsonl before this run resumed/)
    expect(second.lines.filter((line) => line.startsWith("resuming with a changed setting"))).toEqual(["resuming with a changed setting: train.steps 2 -> 3"])
    expect(second.lines.join("\n")).not.toMatch(/evaluating 2 held-out problems before training/)
    expect(second.result.before).toEqual(first.result.before)
    expect(Object.keys(second.result.before).length).toBeGreaterThan(0)
    expect(second.result.seconds).toBeGreaterThan(lastElapsed)
    const saved = JSON.parse(readFileSync(path.join(out, "results.json"), "utf8")) as { before: Record<string, number>; seconds: number }
    expect(saved.before).toEqual(first.result.before)
    expect(records(out).map((r) => `${r.phase}:${r.step}`)).toEqual(["eval:0", "train:1", "eval:1", "train:2", "eval:2", "train:3", "eval:3"])
    const html = readFileSync(path.join(out, "report.html"), "utf8")
    expect(html).not.toMatch(/<td>NaN<\/td>/)
    const heldOutChart = /<svg[^>]*aria-label="Held-out accuracy">.*?<\/svg>/s.exec(html)?.[0] ?? ""
    expect(heldOutChart).toMatch(/font-size="10">0<\/text>/)
  }, 180_000)
})
