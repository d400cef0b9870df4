/**
 * Policy versions as safetensors files the learner publishes and workers fetch.
 *
 * The learner writes the weights of each new version once, as `v000003.safetensors`
 * in a directory every runner can read (written to a temporary name and renamed,
 * so a reader never sees a partial file). A worker fetches a version by number
 * when a prompt asks for one it does not hold, and assigns the tensors to its own
 * copy of the model by name; workers never train. Every local runner shares the
 * run directory; runners on other machines would need the same directory mounted
 * (or a fetch over HTTP in place of `readVersion`).
 *
 * @category constructors
 */
import * as fs from "node:fs/promises"
import * as path from "node:path"
import * as tf from "@tensorflow/tfjs"
import { Data } from "effect"
import { decodeSafetensors, encodeSafetensors } from "@turnwise/runtime"
import type { SafetensorsTensor, Transformer } from "@turnwise/runtime"

/** A version could not be written, read, or did not fit the worker's model. */
export class PolicyVersionError extends Data.TaggedError("PolicyVersionError")<{ readonly version: number; readonly dir: string; readonly problem: string }> {
  override get message(): string {
    return `policy version ${this.version} in ${this.dir}: ${this.problem}`
  }
}

/** The file of one version. */
export const versionFile = (dir: string, version: number): string => path.join(dir, `v${String(version).padStart(6, "0")}.safetensors`)

/**
 * Write the model's current weights as `version`.
 *
 * @example
 * await publishVersion("runs/x/policy", 3, runtime.model)
 */
export const publishVersion = async (dir: string, version: number, model: Transformer): Promise<void> => {
  const tensors = new Map<string, SafetensorsTensor>()
  for (const [name, variable] of model.variables) {
    const data = await variable.data()
    if (!(data instanceof Float32Array)) throw new PolicyVersionError({ version, dir, problem: `weight "${name}" is ${variable.dtype}, not float32` })
    tensors.set(name, { dtype: "F32", shape: variable.shape, data })
  }
  const bytes = encodeSafetensors(tensors, { version: String(version) })
  await fs.mkdir(dir, { recursive: true })
  const file = versionFile(dir, version)
  await fs.writeFile(`${file}.tmp`, bytes)
  await fs.rename(`${file}.tmp`, file)
}

/**
 * Assign the weights of `version` to a worker's model (names and shapes must match exactly).
 *
 * @example
 * await loadVersion("runs/x/policy", 3, workerModel)
 */
export const loadVersion = async (dir: string, version: number, model: Transformer): Promise<void> => {
  const file = versionFile(dir, version)
  const bytes = await fs.readFile(file).catch((error: unknown) => {
    throw new PolicyVersionError({ version, dir, problem: `cannot read ${file}: ${error instanceof Error ? error.message : String(error)}` })
  })
  const decoded = decodeSafetensors(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength), file).tensors
  for (const [name, variable] of model.variables) {
    const w = decoded.get(name)
    if (w === undefined) throw new PolicyVersionError({ version, dir, problem: `weight "${name}" is missing` })
    if (w.shape.join(",") !== variable.shape.join(",")) {
      throw new PolicyVersionError({
        version,
        dir,
        problem: `weight "${name}" has shape [${w.shape.join(", ")}], the worker's model [${variable.shape.join(", ")}]`,
      })
    }
  }
  for (const [name, variable] of model.variables) {
    const w = decoded.get(name)!
    tf.tidy(() => variable.assign(tf.tensor(w.data, [...w.shape], variable.dtype)))
  }
}
