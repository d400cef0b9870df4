/**
 * Checkpoints on disk: weights, optimizer state, RNG state, step and the run's config,
 * written so that a kill at any moment leaves the last good checkpoint loadable.
 *
 * Layout under the store's root:
 *
 *     step-000010/model.safetensors      weights by checkpoint name (F32)
 *     step-000010/optimizer.safetensors  exp_avg/<name>, exp_avg_sq/<name>
 *     step-000010/state.json             step, RNG state, config, SHA-256 and size of each file
 *     latest                             the name of the newest complete checkpoint directory
 *
 * Saving writes everything into a hidden temporary directory, fsyncs each file and the
 * directory, renames it to `step-NNNNNN` (a rename is atomic on POSIX file systems), then
 * replaces `latest` the same way (temporary file, fsync, rename). A crash before the
 * directory rename leaves only a `.tmp-*` directory, which loading ignores and the next
 * save removes; a crash between the two renames leaves `latest` on the previous
 * checkpoint, which is still whole. Older checkpoints beyond `keepLast` are then deleted.
 * One writer per root is assumed.
 *
 * Loading verifies every file's size and SHA-256 against state.json, decodes the
 * safetensors strictly, and checks names and shapes against the live model's variables
 * and the optimizer before assigning anything, so a damaged checkpoint raises a
 * {@link CheckpointError} naming the file and the problem and leaves the model untouched.
 *
 * @category services
 */
import * as tf from "@tensorflow/tfjs"
import { createHash, randomBytes } from "node:crypto"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import { CheckpointError } from "@turnwise/dsl"
import type { RngState } from "@turnwise/core"
import type { AdamW, AdamWState } from "../train/adamw.js"
import { decodeSafetensors, encodeSafetensors, SafetensorsError, type SafetensorsTensor } from "../model/safetensors.js"

export { CheckpointError }

/** What a checkpoint holds. */
export interface CheckpointContents {
  /** Model weights by checkpoint name. */
  readonly weights: ReadonlyMap<string, tf.Tensor>
  /** Optimizer state (AdamW.state()). */
  readonly optimizer: AdamWState
  /** The run's RNG state (Rng.state()). */
  readonly rngState: RngState
  /** Training step the checkpoint was taken after. */
  readonly step: number
  /** The run's config or recipe, as JSON-serialisable data. */
  readonly config: unknown
}

/** A checkpoint restored into a model (and optimizer). */
export interface RestoredCheckpoint {
  readonly path: string
  readonly step: number
  readonly rngState: RngState
  readonly config: unknown
}

/** What `restore` writes into. */
export interface RestoreTarget {
  /** The model's variables; names and shapes must match the checkpoint's weights exactly. */
  readonly variables: ReadonlyMap<string, tf.Variable>
  /** The optimizer to restore, if any. */
  readonly optimizer?: AdamW
}

const FORMAT = "turnwise.checkpoint.v1"
const FILES = ["model.safetensors", "optimizer.safetensors"] as const
const STEP_DIR = /^step-(\d+)$/

/** The directory name of a step: `step-000010`. */
export const checkpointDirName = (step: number): string => `step-${String(step).padStart(6, "0")}`

const sha256 = (bytes: Uint8Array): string => createHash("sha256").update(bytes).digest("hex")

const toSafetensors = async (tensors: ReadonlyMap<string, tf.Tensor>, file: string): Promise<Map<string, SafetensorsTensor>> => {
  const out = new Map<string, SafetensorsTensor>()
  for (const [name, t] of tensors) {
    const values = await t.data()
    if (values instanceof Float32Array) out.set(name, { dtype: "F32", shape: t.shape, data: values })
    else if (values instanceof Int32Array) out.set(name, { dtype: "I32", shape: t.shape, data: values })
    else throw new CheckpointError({ path: file, problem: `tensor "${name}" has dtype ${t.dtype}, which checkpoints do not store` })
  }
  return out
}

/** Write a file and flush it to the device before returning. */
const writeDurable = async (file: string, bytes: Uint8Array | string): Promise<void> => {
  const handle = await fs.open(file, "w")
  try {
    await handle.writeFile(bytes)
    await handle.sync()
  } finally {
    await handle.close()
  }
}

/** Flush a directory's entries (new names, renames) to the device. */
const syncDir = async (dir: string): Promise<void> => {
  const handle = await fs.open(dir, "r")
  try {
    await handle.sync()
  } finally {
    await handle.close()
  }
}

const exists = async (p: string): Promise<boolean> =>
  fs.access(p).then(
    () => true,
    () => false,
  )

interface StateFile {
  readonly format: string
  readonly step: number
  readonly rngState: RngState
  readonly optimizerStep: number
  readonly config: unknown
  readonly files: Record<string, { readonly sha256: string; readonly bytes: number }>
}

const parseState = (text: string, file: string): StateFile => {
  const fail = (problem: string): never => {
    throw new CheckpointError({ path: file, problem })
  }
  let raw: unknown
  try {
    raw = JSON.parse(text)
  } catch (error) {
    return fail(`is not valid JSON (${error instanceof Error ? error.message : String(error)}); the file is truncated or corrupted`)
  }
  if (typeof raw !== "object" || raw === null) return fail("is not a JSON object")
  const s = raw as Record<string, unknown>
  if (s["format"] !== FORMAT) fail(`format is ${JSON.stringify(s["format"])}, expected "${FORMAT}"`)
  const step = s["step"]
  if (typeof step !== "number" || !Number.isInteger(step) || step < 0) fail(`step ${JSON.stringify(step)} is not a non-negative integer`)
  const optimizerStep = s["optimizerStep"]
  if (typeof optimizerStep !== "number" || !Number.isInteger(optimizerStep) || optimizerStep < 0) {
    fail(`optimizerStep ${JSON.stringify(optimizerStep)} is not a non-negative integer`)
  }
  const rng = s["rngState"]
  if (!Array.isArray(rng) || rng.length !== 4 || !rng.every((w) => Number.isInteger(w) && w >= 0 && w <= 0xffffffff)) {
    fail(`rngState ${JSON.stringify(rng)} is not four 32-bit words`)
  }
  const files = s["files"]
  if (typeof files !== "object" || files === null) return fail("has no files record")
  const checked: Record<string, { sha256: string; bytes: number }> = {}
  for (const name of FILES) {
    const f = (files as Record<string, unknown>)[name]
    if (typeof f !== "object" || f === null) return fail(`files has no entry for ${name}`)
    const { sha256: sum, bytes } = f as Record<string, unknown>
    if (typeof sum !== "string" || !/^[0-9a-f]{64}$/.test(sum) || typeof bytes !== "number") {
      return fail(`files entry for ${name} lacks a sha256 and byte count`)
    }
    checked[name] = { sha256: sum, bytes }
  }
  const [a, b, c, d] = rng as Array<number>
  return {
    format: FORMAT,
    step: step as number,
    optimizerStep: optimizerStep as number,
    rngState: [a ?? 0, b ?? 0, c ?? 0, d ?? 0],
    config: s["config"],
    files: checked,
  }
}

/**
 * A directory of checkpoints.
 *
 * @example
 * const store = new FileCheckpointStore("runs/demo/checkpoints", { keepLast: 3 })
 * await store.save({ weights: model.variables, optimizer: opt.state(), rngState: rng.state(), step: 10, config: recipe })
 * const restored = await store.restore({ variables: model.variables, optimizer: opt }) // newest, or null
 */
export class FileCheckpointStore {
  readonly root: string
  readonly keepLast: number

  constructor(root: string, options: { readonly keepLast?: number } = {}) {
    this.root = root
    this.keepLast = Math.max(1, options.keepLast ?? 3)
  }

  /** Complete checkpoints, oldest first. */
  async list(): Promise<Array<{ readonly step: number; readonly path: string }>> {
    const names = await fs.readdir(this.root).catch(() => [] as Array<string>)
    const out: Array<{ step: number; path: string }> = []
    for (const name of names) {
      const m = STEP_DIR.exec(name)
      if (m === null) continue
      out.push({ step: Number(m[1]), path: path.join(this.root, name) })
    }
    return out.sort((x, y) => x.step - y.step)
  }

  /** The newest complete checkpoint's directory, or null when there is none. */
  async latest(): Promise<string | null> {
    const pointer = path.join(this.root, "latest")
    const name = await fs.readFile(pointer, "utf8").then(
      (text) => text.trim(),
      () => null,
    )
    if (name !== null && STEP_DIR.test(name) && (await exists(path.join(this.root, name, "state.json")))) {
      return path.join(this.root, name)
    }
    // No pointer (a crash between the directory rename and the pointer rename, or an old
    // pointer to a pruned directory): step directories are only ever complete, so the newest wins.
    const all = await this.list()
    return all.at(-1)?.path ?? null
  }

  /** Save a checkpoint atomically and return its directory. */
  async save(contents: CheckpointContents): Promise<string> {
    const finalName = checkpointDirName(contents.step)
    const finalDir = path.join(this.root, finalName)
    await fs.mkdir(this.root, { recursive: true })
    await this.removeStaleTemporaries()
    const tmp = path.join(this.root, `.tmp-${finalName}-${randomBytes(6).toString("hex")}`)
    await fs.mkdir(tmp)
    try {
      const model = encodeSafetensors(await toSafetensors(contents.weights, path.join(finalDir, "model.safetensors")), {
        format: "pt",
        producer: "turnwise",
      })
      const optimizer = encodeSafetensors(await toSafetensors(contents.optimizer.tensors, path.join(finalDir, "optimizer.safetensors")), {
        step: String(contents.optimizer.step),
      })
      const state: StateFile = {
        format: FORMAT,
        step: contents.step,
        optimizerStep: contents.optimizer.step,
        rngState: contents.rngState,
        config: contents.config ?? null,
        files: {
          "model.safetensors": { sha256: sha256(model), bytes: model.length },
          "optimizer.safetensors": { sha256: sha256(optimizer), bytes: optimizer.length },
        },
      }
      await writeDurable(path.join(tmp, "model.safetensors"), model)
      await writeDurable(path.join(tmp, "optimizer.safetensors"), optimizer)
      await writeDurable(path.join(tmp, "state.json"), `${JSON.stringify(state, null, 2)}\n`)
      await syncDir(tmp)
      if (await exists(finalDir)) {
        // Saving the same step again: move the old copy aside first (rename cannot replace a non-empty directory).
        const aside = path.join(this.root, `.tmp-old-${finalName}-${randomBytes(6).toString("hex")}`)
        await fs.rename(finalDir, aside)
        await fs.rename(tmp, finalDir)
        await fs.rm(aside, { recursive: true, force: true })
      } else {
        await fs.rename(tmp, finalDir)
      }
      await syncDir(this.root)
    } catch (error) {
      await fs.rm(tmp, { recursive: true, force: true })
      if (error instanceof CheckpointError || error instanceof SafetensorsError) throw error
      throw new CheckpointError({ path: finalDir, problem: `could not be written: ${error instanceof Error ? error.message : String(error)}` })
    }
    const pointerTmp = path.join(this.root, `.tmp-latest-${randomBytes(6).toString("hex")}`)
    await writeDurable(pointerTmp, `${finalName}\n`)
    await fs.rename(pointerTmp, path.join(this.root, "latest"))
    await syncDir(this.root)
    await this.prune(contents.step)
    return finalDir
  }

  /**
   * Verify a checkpoint (the newest when `dir` is omitted) and load it into the model
   * and optimizer. Returns null when no checkpoint exists and no `dir` was given.
   * Nothing is assigned unless every check passes.
   */
  async restore(target: RestoreTarget, dir?: string): Promise<RestoredCheckpoint | null> {
    const chosen = dir ?? (await this.latest())
    if (chosen === null) return null
    const statePath = path.join(chosen, "state.json")
    const stateText = await fs.readFile(statePath, "utf8").catch((error: unknown) => {
      throw new CheckpointError({ path: statePath, problem: `cannot be read (${error instanceof Error ? error.message : String(error)})` })
    })
    const state = parseState(stateText, statePath)

    const decoded = new Map<string, ReadonlyMap<string, { shape: ReadonlyArray<number>; data: Float32Array | Int32Array }>>()
    for (const name of FILES) {
      const file = path.join(chosen, name)
      const bytes = await fs.readFile(file).catch((error: unknown) => {
        throw new CheckpointError({ path: file, problem: `cannot be read (${error instanceof Error ? error.message : String(error)})` })
      })
      const expected = state.files[name]
      if (expected === undefined) throw new CheckpointError({ path: statePath, problem: `files has no entry for ${name}` })
      if (bytes.length !== expected.bytes) {
        throw new CheckpointError({
          path: file,
          problem: `is ${bytes.length} bytes, state.json records ${expected.bytes}; the file is truncated or was replaced`,
        })
      }
      const actual = sha256(bytes)
      if (actual !== expected.sha256) {
        throw new CheckpointError({ path: file, problem: `SHA-256 ${actual} does not match ${expected.sha256} recorded in state.json; the file is corrupted` })
      }
      try {
        decoded.set(name, decodeSafetensors(bytes, file).tensors)
      } catch (error) {
        if (error instanceof SafetensorsError) throw new CheckpointError({ path: file, problem: error.message })
        throw error
      }
    }
    const weights = decoded.get("model.safetensors") ?? new Map()
    const modelPath = path.join(chosen, "model.safetensors")
    for (const [name, v] of target.variables) {
      const w = weights.get(name)
      if (w === undefined) throw new CheckpointError({ path: modelPath, problem: `has no tensor "${name}", which the model needs` })
      if (!tf.util.arraysEqual([...w.shape], v.shape)) {
        throw new CheckpointError({
          path: modelPath,
          problem: `tensor "${name}" has shape [${w.shape.join(", ")}], the model expects [${v.shape.join(", ")}]`,
        })
      }
    }
    for (const name of weights.keys()) {
      if (!target.variables.has(name)) throw new CheckpointError({ path: modelPath, problem: `tensor "${name}" is not a parameter of the model` })
    }

    if (target.optimizer !== undefined) {
      const optPath = path.join(chosen, "optimizer.safetensors")
      const tensors = new Map<string, tf.Tensor>()
      for (const [name, t] of decoded.get("optimizer.safetensors") ?? new Map()) tensors.set(name, tf.tensor(t.data, [...t.shape]))
      try {
        // loadState checks every moment before it assigns any.
        target.optimizer.loadState({ step: state.optimizerStep, tensors })
      } catch (error) {
        throw new CheckpointError({ path: optPath, problem: error instanceof Error ? error.message : String(error) })
      } finally {
        tf.dispose([...tensors.values()])
      }
    }
    for (const [name, v] of target.variables) {
      const w = weights.get(name)
      if (w === undefined) continue
      tf.tidy(() => v.assign(tf.tensor(w.data, [...w.shape], v.dtype)))
    }
    return { path: chosen, step: state.step, rngState: state.rngState, config: state.config }
  }

  /** Remove leftovers of interrupted saves (single writer, so none is in progress). */
  private async removeStaleTemporaries(): Promise<void> {
    const names = await fs.readdir(this.root).catch(() => [] as Array<string>)
    for (const name of names) if (name.startsWith(".tmp-")) await fs.rm(path.join(this.root, name), { recursive: true, force: true })
  }

  /** Keep the newest `keepLast` checkpoints (and always the one just written). */
  private async prune(justWritten: number): Promise<void> {
    const all = await this.list()
    const doomed = all.slice(0, Math.max(0, all.length - this.keepLast)).filter((c) => c.step !== justWritten)
    for (const c of doomed) await fs.rm(c.path, { recursive: true, force: true })
  }
}
