/**
 * Faults: a training process is killed with SIGKILL at seeded points (in the middle of
 * the first checkpoint's write, after the "before" evaluation and a step were logged;
 * between a checkpoint's rename and its `latest` pointer), resumed
 * with --resume after each kill, and must end with exactly the weights, optimizer
 * state and metrics of an uninterrupted run.
 *
 * Kill points are file-system events counted by test/e2e/fault-hook.mjs, not timers,
 * so the test does the same thing on an idle and on a busy machine.
 */
import { spawn } from "node:child_process"
import { existsSync, mkdtempSync, readdirSync, readFileSync } from "node:fs"
import { tmpdir } from "node:os"
import * as path from "node:path"
import { describe, expect, it } from "vitest"
import { Rng } from "@turnwise/core"
import { decodeSafetensors } from "../../packages/runtime/src/model/safetensors.js"

const bin = path.resolve("packages/cli/bin/turnwise.mjs")
const hook = path.resolve("test/e2e/fault-hook.mjs")

const steps = 3
/** A tiny run from the shipped warm start (model.init "auto"), so rewards differ within groups and the weights move. */
const runArgs = [
  "train",
  "gtpo",
  "--set",
  `train.steps=${steps}`,
  "--set",
  "train.promptsPerStep=2",
  "--set",
  "rollout.groupSize=2",
  "--set",
  "rollout.maxNewTokensPerTurn=16",
  "--set",
  "rollout.maxTurns=2",
  "--set",
  "task.trainCount=8",
  "--set",
  "task.evalCount=1",
  "--set",
  "train.evalEvery=2",
  "--set",
  "train.checkpointEvery=1",
  "--set",
  "optimizer.lr=1e-3",
  "--set",
  "sandboxWorkers=1",
]

interface Exit {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
  readonly stderr: string
}

const train = (outDir: string, options: { readonly resume: boolean; readonly kill?: string }): Promise<Exit> =>
  new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["--import", hook, bin, ...runArgs, "--out", outDir, ...(options.resume ? ["--resume"] : [])], {
      env: { ...process.env, TURNWISE_TEST_KILL: options.kill ?? "" },
      stdio: ["ignore", "ignore", "pipe"],
    })
    let stderr = ""
    child.stderr.on("data", (chunk: Buffer) => void (stderr += chunk.toString()))
    child.on("error", reject)
    child.on("close", (code, signal) => resolve({ code, signal, stderr }))
  })

const tensors = (dir: string, file: string) => {
  const full = path.join(dir, "checkpoints", `step-${String(steps).padStart(6, "0")}`, file)
  return decodeSafetensors(readFileSync(full), full).tensors
}

/** Metrics without wall-clock figures (those differ between any two runs). */
const metrics = (dir: string) =>
  readFileSync(path.join(dir, "metrics.jsonl"), "utf8")
    .trim()
    .split("\n")
    .map((line) => {
      const record = JSON.parse(line) as { step: number; phase: string; metrics: Record<string, number> }
      const kept = Object.entries(record.metrics).filter(([key]) => !/^time\/|seconds|_per_s$/.test(key))
      return { step: record.step, phase: record.phase, metrics: Object.fromEntries(kept) }
    })

describe("a training run killed with SIGKILL and resumed", () => {
  it("ends with the weights, optimizer state and metrics of an uninterrupted run", async () => {
    const root = mkdtempSync(path.join(tmpdir(), "turnwise-faults-"))
    const straight = path.join(root, "straight")
    const faulty = path.join(root, "faulty")
    // Where to kill, drawn once from a fixed seed; each point is one this run reaches.
    const rng = Rng.fromSeed(20261127)
    const kills = [
      // A torn optimizer.safetensors in the first checkpoint's temporary directory: no
      // checkpoint yet, but the "before" evaluation and step 1's records are logged.
      "checkpoint-write:1",
      // A checkpoint directory in place and `latest` still naming the one before
      // (the second or third save of the resumed run, which starts from step 0).
      `latest-pointer:${2 + rng.int(steps - 1)}`,
    ]
    // What each kill left behind, looked at before the next resume.
    const aftermath: Record<string, { torn: Array<string>; latest: string | null; newest: string | undefined }> = {}
    const look = (kill: string) => {
      const dir = path.join(faulty, "checkpoints")
      const names = existsSync(dir) ? readdirSync(dir) : []
      const torn = names
        .filter((name) => name.startsWith(".tmp-step-"))
        .map((name) => readdirSync(path.join(dir, name)).sort().join(","))
      const latest = names.includes("latest") ? readFileSync(path.join(dir, "latest"), "utf8").trim() : null
      aftermath[kill.split(":")[0]!] = { torn, latest, newest: names.filter((name) => name.startsWith("step-")).sort().at(-1) }
    }
    const chain = async (): Promise<Array<Exit>> => {
      const exits: Array<Exit> = []
      for (const [k, kill] of kills.entries()) {
        exits.push(await train(faulty, { resume: k > 0, kill }))
        look(kill)
      }
      exits.push(await train(faulty, { resume: true }))
      return exits
    }
    const [reference, exits] = await Promise.all([train(straight, { resume: false }), chain()])

    expect(reference.code, reference.stderr).toBe(0)
    exits.slice(0, kills.length).forEach((exit, k) => expect(exit.signal, `${kills[k]} did not kill the run:\n${exit.stderr}`).toBe("SIGKILL"))
    // The kills hit where they were meant to: a checkpoint's temporary directory with a
    // partial optimizer file and no state.json; a newer checkpoint than `latest` names.
    expect(aftermath["checkpoint-write"]!.torn).toEqual(["model.safetensors,optimizer.safetensors"])
    const pointer = aftermath["latest-pointer"]!
    expect(pointer.latest).not.toBeNull()
    expect(pointer.newest! > pointer.latest!).toBe(true)
    // Resumed after the first kill, the run kept its "before" evaluation instead of redoing it.
    expect(exits[1]!.stderr).toMatch(/held-out accuracy before training: .*recorded in metrics\.jsonl before this run resumed/)
    const last = exits.at(-1)!
    expect(last.code, last.stderr).toBe(0)
    expect(last.stderr).toMatch(/starting from the shipped warm start/)

    for (const file of ["model.safetensors", "optimizer.safetensors"]) {
      const want = tensors(straight, file)
      const got = tensors(faulty, file)
      expect([...got.keys()].sort()).toEqual([...want.keys()].sort())
      for (const [name, t] of want) expect(Array.from(got.get(name)!.data), `${file} ${name}`).toEqual(Array.from(t.data))
    }
    // The run really trained: the final weights are not the warm start's.
    const warmDir = path.join("assets/warm-start", readFileSync("assets/warm-start/latest", "utf8").trim())
    const warm = decodeSafetensors(readFileSync(path.join(warmDir, "model.safetensors")), warmDir).tensors
    const final = tensors(faulty, "model.safetensors")
    expect([...final].some(([name, t]) => t.data.some((x, i) => x !== warm.get(name)!.data[i]))).toBe(true)

    expect(metrics(faulty)).toEqual(metrics(straight))
    const results = (dir: string) => JSON.parse(readFileSync(path.join(dir, "results.json"), "utf8")) as { before: unknown; after: unknown }
    expect(results(faulty).before).toEqual(results(straight).before)
    expect(results(faulty).after).toEqual(results(straight).after)
    expect(readdirSync(path.join(faulty, "checkpoints")).filter((name) => name.startsWith(".tmp-"))).toEqual([])
    expect(existsSync(path.join(faulty, "report.html"))).toBe(true)
  }, 240_000)
})
