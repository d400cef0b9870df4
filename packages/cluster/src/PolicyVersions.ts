/**
 * Policy versions as safetensors files the learner publishes and workers fetch.
 *
 * The learner writes the weights of each new version once, as `v000003.safetensors`
 * in a directory every runner can read (written to a temporary name and renamed,
 * so a reader never sees a partial file). A worker fetches a version by number
 * when a prompt asks for one it does not hold, and assigns the tensors to its own
 * copy of the model by name; workers never train. Local runners read the file from
 * the run directory; runners on other machines ask the learner's coordinator for
 * the same bytes.
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
 * The bytes of a published version's file.
 *
 * @example
 * const bytes = await readVersionFile("runs/x/policy", 3)
 */
export const readVersionFile = async (dir: string, version: number): Promise<Uint8Array> => {
  const file = versionFile(dir, version)
  const bytes = await fs.readFile(file).catch((error: unknown) => {
    throw new PolicyVersionError({ version, dir, problem: `cannot read ${file}: ${error instanceof Error ? error.message : String(error)}` })
  })
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength)
}

/**
 * Assign a version's safetensors bytes to a worker's model (names and shapes must
 * match exactly); `from` says where the bytes came from, for errors.
 *
 * @example
 * assignVersion(bytes, 3, "learner 10.0.0.5:7400", workerModel)
 */
export const assignVersion = (bytes: Uint8Array, version: number, from: string, model: Transformer): void => {
  const decoded = decodeSafetensors(bytes, `policy version ${version} from ${from}`).tensors
  for (const [name, variable] of model.variables) {
    const w = decoded.get(name)
    if (w === undefined) throw new PolicyVersionError({ version, dir: from, problem: `weight "${name}" is missing` })
    if (w.shape.join(",") !== variable.shape.join(",")) {
      throw new PolicyVersionError({
        version,
        dir: from,
        problem: `weight "${name}" has shape [${w.shape.join(", ")}], the worker's model [${variable.shape.join(", ")}]`,
      })
    }
  }
  for (const [name, variable] of model.variables) {
    const w = decoded.get(name)!
    tf.tidy(() => variable.assign(tf.tensor(w.data, [...w.shape], variable.dtype)))
  }
}

/**
 * Assign the weights of `version`, read from its file in `dir`, to a worker's model.
 *
 * @example
 * await loadVersion("runs/x/policy", 3, workerModel)
 */
export const loadVersion = async (dir: string, version: number, model: Transformer): Promise<void> =>
  assignVersion(await readVersionFile(dir, version), version, dir, model)

/** Where a worker gets the bytes of a version: the run directory's files, or the learner over the network. */
export interface VersionSource {
  /** Where the bytes come from, for errors ("runs/x/cluster/policy", "coordinator 10.0.0.5:7400"). */
  readonly where: string
  readonly read: (version: number) => Promise<Uint8Array>
}

/**
 * The versions published in a directory this process can read.
 *
 * @example
 * WorkerPolicy.layer({ ..., versions: fileVersions("runs/x/cluster/policy") })
 */
export const fileVersions = (dir: string): VersionSource => ({ where: dir, read: (version) => readVersionFile(dir, version) })
