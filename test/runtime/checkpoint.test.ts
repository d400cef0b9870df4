import * as tf from "@tensorflow/tfjs"
import type { TrainingSequence } from "@turnwise/core"
import { createHash } from "node:crypto"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import { afterEach, beforeAll, describe, expect, it } from "vitest"
import { CheckpointError, FileCheckpointStore } from "../../packages/runtime/src/checkpoint/store.js"
import { encodeSafetensors } from "../../packages/runtime/src/model/safetensors.js"
import { Rng } from "../../packages/core/src/rng.js"
import { createTrainer, type Trainer } from "../../packages/runtime/src/train/trainer.js"
import { clippedSurrogate, createTinyModel, maxDiff, sequence, snapshot, type TinyModel, useBackend } from "./fixtures/tiny-model.js"

beforeAll(async () => {
  await useBackend("cpu")
})

const dirs: Array<string> = []
const tempRoot = async (): Promise<string> => {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), "turnwise-ckpt-"))
  dirs.push(dir)
  return dir
}
afterEach(async () => {
  for (const d of dirs.splice(0)) await fs.rm(d, { recursive: true, force: true })
})

/** The batch for training step `i`: fixed by i alone, as a data loader would replay it. */
const batchFor = (i: number): Array<TrainingSequence> => {
  const rng = Rng.fromSeed(1000 + i)
  return Array.from({ length: 6 }, () => {
    const tokens = Array.from({ length: 3 + rng.int(5) }, () => rng.int(8))
    return sequence(tokens, 1, rng.normal(), -1.5 - rng.next())
  })
}

const makeTrainer = (model: TinyModel, rng: Rng): Trainer =>
  createTrainer(model, {
    loss: clippedSurrogate(0.2),
    schedule: { peakLr: 0.02, warmupSteps: 3, totalSteps: 20, decay: "cosine", minLr: 0.001 },
    epochs: 2,
    microBatchSize: 2,
    rng,
    log: () => {},
  })

describe("FileCheckpointStore", () => {
  it("saves weights, optimizer, RNG, step and config with checksums, and restores them", async () => {
    const root = await tempRoot()
    const store = new FileCheckpointStore(root)
    const model = createTinyModel({ seed: 1 })
    const rng = Rng.fromSeed(9)
    const trainer = makeTrainer(model, rng)
    await trainer.step(batchFor(0))
    const dir = await store.save({
      weights: model.variables,
      optimizer: trainer.optimizer.state(),
      rngState: rng.state(),
      step: 10,
      config: { recipe: "gtpo", lr: 0.02 },
    })
    expect(path.basename(dir)).toBe("step-000010")
    expect((await fs.readFile(path.join(root, "latest"), "utf8")).trim()).toBe("step-000010")
    const state = JSON.parse(await fs.readFile(path.join(dir, "state.json"), "utf8"))
    for (const file of ["model.safetensors", "optimizer.safetensors"]) {
      const bytes = await fs.readFile(path.join(dir, file))
      expect(state.files[file].sha256).toBe(createHash("sha256").update(bytes).digest("hex"))
    }

    const fresh = createTinyModel({ seed: 2 })
    const freshTrainer = makeTrainer(fresh, Rng.fromSeed(0))
    expect(maxDiff(snapshot(model.variables), snapshot(fresh.variables))).toBeGreaterThan(0.01)
    const restored = await store.restore({ variables: fresh.variables, optimizer: freshTrainer.optimizer })
    expect(restored).toEqual({ path: dir, step: 10, rngState: rng.state(), config: { recipe: "gtpo", lr: 0.02 } })
    expect(maxDiff(snapshot(model.variables), snapshot(fresh.variables))).toBe(0)
    expect(freshTrainer.optimizer.step).toBe(2)
    expect(maxDiff(snapshot(trainer.optimizer.state().tensors), snapshot(freshTrainer.optimizer.state().tensors))).toBe(0)
    for (const t of [trainer, freshTrainer]) t.dispose()
    for (const m of [model, fresh]) m.dispose()
  })

  it("resumes exactly: 4 steps, save, restore into a fresh model, 3 steps == 7 uninterrupted steps", async () => {
    const root = await tempRoot()
    const store = new FileCheckpointStore(root)

    const straightModel = createTinyModel({ seed: 31 })
    const straight = makeTrainer(straightModel, Rng.fromSeed(77))
    for (let i = 0; i < 7; i++) await straight.step(batchFor(i))

    const firstModel = createTinyModel({ seed: 31 })
    const firstRng = Rng.fromSeed(77)
    const first = makeTrainer(firstModel, firstRng)
    for (let i = 0; i < 4; i++) await first.step(batchFor(i))
    await store.save({ weights: firstModel.variables, optimizer: first.optimizer.state(), rngState: firstRng.state(), step: 4, config: null })
    first.dispose()
    firstModel.dispose()

    // A fresh process: different initial weights, a throwaway RNG, an empty optimizer.
    const resumedModel = createTinyModel({ seed: 99 })
    const probe = makeTrainer(resumedModel, Rng.fromSeed(0))
    const restored = await store.restore({ variables: resumedModel.variables, optimizer: probe.optimizer })
    if (restored === null) throw new Error("no checkpoint found")
    const resumed = createTrainer(resumedModel, {
      loss: clippedSurrogate(0.2),
      schedule: { peakLr: 0.02, warmupSteps: 3, totalSteps: 20, decay: "cosine", minLr: 0.001 },
      epochs: 2,
      microBatchSize: 2,
      rng: Rng.fromState(restored.rngState),
      log: () => {},
    })
    await store.restore({ variables: resumedModel.variables, optimizer: resumed.optimizer })
    for (let i = restored.step; i < 7; i++) await resumed.step(batchFor(i))

    expect(resumed.optimizer.step).toBe(straight.optimizer.step)
    expect(maxDiff(snapshot(straightModel.variables), snapshot(resumedModel.variables))).toBeLessThan(1e-6)
    // Without the optimizer state the continuation differs, so the comparison above has teeth.
    const naiveModel = createTinyModel({ seed: 99 })
    await store.restore({ variables: naiveModel.variables })
    const naive = makeTrainer(naiveModel, Rng.fromState(restored.rngState))
    for (let i = restored.step; i < 7; i++) await naive.step(batchFor(i))
    expect(maxDiff(snapshot(straightModel.variables), snapshot(naiveModel.variables))).toBeGreaterThan(1e-3)
    for (const t of [straight, probe, resumed, naive]) t.dispose()
    for (const m of [straightModel, resumedModel, naiveModel]) m.dispose()
  })

  describe("damaged checkpoints raise a CheckpointError naming the file and leave the model untouched", () => {
    const setup = async () => {
      const root = await tempRoot()
      const store = new FileCheckpointStore(root)
      const model = createTinyModel({ seed: 1 })
      const trainer = makeTrainer(model, Rng.fromSeed(1))
      const dir = await store.save({ weights: model.variables, optimizer: trainer.optimizer.state(), rngState: [1, 2, 3, 4], step: 3, config: {} })
      const target = createTinyModel({ seed: 2 })
      const before = snapshot(target.variables)
      const check = async (pattern: RegExp) => {
        const attempt = store.restore({ variables: target.variables, optimizer: trainer.optimizer })
        await expect(attempt).rejects.toThrow(CheckpointError)
        await expect(store.restore({ variables: target.variables })).rejects.toThrow(pattern)
        expect(maxDiff(before, snapshot(target.variables))).toBe(0)
        trainer.dispose()
        model.dispose()
        target.dispose()
      }
      return { dir, check }
    }

    it("a flipped byte in model.safetensors", async () => {
      const { dir, check } = await setup()
      const file = path.join(dir, "model.safetensors")
      const bytes = await fs.readFile(file)
      bytes[bytes.length - 5] = (bytes[bytes.length - 5] ?? 0) ^ 0x40
      await fs.writeFile(file, bytes)
      await check(/model\.safetensors: SHA-256 [0-9a-f]{64} does not match [0-9a-f]{64} recorded in state\.json; the file is corrupted/)
    })

    it("a truncated optimizer.safetensors", async () => {
      const { dir, check } = await setup()
      const file = path.join(dir, "optimizer.safetensors")
      const bytes = await fs.readFile(file)
      await fs.writeFile(file, bytes.subarray(0, bytes.length - 10))
      await check(/optimizer\.safetensors: is \d+ bytes, state\.json records \d+; the file is truncated/)
    })

    it("a truncated state.json", async () => {
      const { dir, check } = await setup()
      const file = path.join(dir, "state.json")
      const text = await fs.readFile(file, "utf8")
      await fs.writeFile(file, text.slice(0, text.length / 2))
      await check(/state\.json: is not valid JSON .*truncated or corrupted/)
    })

    it("a malformed safetensors file whose checksum was recorded", async () => {
      const { dir, check } = await setup()
      const file = path.join(dir, "model.safetensors")
      const junk = encodeSafetensors(new Map([["w", { dtype: "F32", shape: [2], data: new Float32Array(2) }]])).subarray(0, 20)
      await fs.writeFile(file, junk)
      const state = JSON.parse(await fs.readFile(path.join(dir, "state.json"), "utf8"))
      state.files["model.safetensors"] = { sha256: createHash("sha256").update(junk).digest("hex"), bytes: junk.length }
      await fs.writeFile(path.join(dir, "state.json"), JSON.stringify(state))
      await check(/model\.safetensors: safetensors .*header length \d+ runs past the end of the file/)
    })

    it("weights whose shapes do not fit the model", async () => {
      const { check, dir } = await setup()
      // Rewrite the checkpoint's weights for a wider model, with consistent checksums.
      const wide = createTinyModel({ seed: 3, dim: 7 })
      const bytes = encodeSafetensors(
        new Map([...wide.variables].map(([n, v]) => [n, { dtype: "F32" as const, shape: v.shape, data: Float32Array.from(v.dataSync()) }])),
      )
      wide.dispose()
      await fs.writeFile(path.join(dir, "model.safetensors"), bytes)
      const state = JSON.parse(await fs.readFile(path.join(dir, "state.json"), "utf8"))
      state.files["model.safetensors"] = { sha256: createHash("sha256").update(bytes).digest("hex"), bytes: bytes.length }
      await fs.writeFile(path.join(dir, "state.json"), JSON.stringify(state))
      await check(/model\.safetensors: tensor "embed\.weight" has shape \[8, 7\], the model expects \[8, 6\]/)
    })
  })

  it("a crash mid-save leaves the previous checkpoint loadable, and the next save cleans up", async () => {
    const root = await tempRoot()
    const store = new FileCheckpointStore(root)
    const model = createTinyModel({ seed: 5 })
    const trainer = makeTrainer(model, Rng.fromSeed(5))
    await trainer.step(batchFor(0))
    const good = snapshot(model.variables)
    await store.save({ weights: model.variables, optimizer: trainer.optimizer.state(), rngState: [5, 6, 7, 8], step: 2, config: null })
    // The killed save of step 4: a temporary directory with a half-written weights file.
    const partial = path.join(root, ".tmp-step-000004-deadbeef0000")
    await fs.mkdir(partial)
    const full = await fs.readFile(path.join(root, "step-000002", "model.safetensors"))
    await fs.writeFile(path.join(partial, "model.safetensors"), full.subarray(0, full.length / 2))

    const target = createTinyModel({ seed: 6 })
    const restored = await store.restore({ variables: target.variables })
    expect(restored?.step).toBe(2)
    expect(maxDiff(good, snapshot(target.variables))).toBe(0)
    expect((await store.list()).map((c) => c.step)).toEqual([2])

    // Killed between the directory rename and the pointer update: `latest` still names step 2, which is whole.
    await trainer.step(batchFor(1))
    await store.save({ weights: model.variables, optimizer: trainer.optimizer.state(), rngState: [5, 6, 7, 8], step: 4, config: null })
    expect(await fs.readdir(root)).not.toContain(".tmp-step-000004-deadbeef0000")
    await fs.writeFile(path.join(root, "latest"), "step-000002\n")
    expect((await store.restore({ variables: target.variables }))?.step).toBe(2)
    // No pointer at all: the newest complete directory.
    await fs.rm(path.join(root, "latest"))
    expect((await store.restore({ variables: target.variables }))?.step).toBe(4)
    trainer.dispose()
    model.dispose()
    target.dispose()
  })

  it("keeps the last K checkpoints and returns null when there are none", async () => {
    const root = await tempRoot()
    const store = new FileCheckpointStore(root, { keepLast: 2 })
    const model = createTinyModel({ seed: 1 })
    expect(await store.restore({ variables: model.variables })).toBeNull()
    const optimizerState = { step: 0, tensors: new Map<string, tf.Tensor>() }
    for (const step of [1, 2, 3, 4]) await store.save({ weights: model.variables, optimizer: optimizerState, rngState: [1, 1, 1, 1], step, config: null })
    expect((await store.list()).map((c) => c.step)).toEqual([3, 4])
    expect(await store.latest()).toBe(path.join(root, "step-000004"))
    model.dispose()
  })
})
