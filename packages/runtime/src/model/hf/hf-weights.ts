/**
 * The weight files of a model directory, read tensor by tensor.
 *
 * Which files: the shards that `model.safetensors.index.json` lists in its
 * `weight_map` when it exists; else `model.safetensors`; else every `*.safetensors`
 * in the directory. Each file's header is read and validated up front (see
 * ../safetensors.ts); a tensor's bytes are read only when asked for, so
 * a model loads with one tensor's raw bytes in memory at a time rather than whole
 * files. F32, BF16 and F16 tensors are widened to float32.
 *
 * @category constructors
 */
import { promises as fs } from "node:fs"
import type { FileHandle } from "node:fs/promises"
import * as path from "node:path"
import { decodeTensorBytes, parseSafetensorsHeader, safetensorsHeaderLength } from "../safetensors.js"
import type { SafetensorsEntry } from "../safetensors.js"
import { HfFormatError, HfMissingFileError, HfMissingTensorError } from "./errors.js"
import { fileExists, readJsonObject } from "./hf-files.js"

/** The index file of a sharded checkpoint. */
export const HF_INDEX_FILE = "model.safetensors.index.json"
/** The weight file of an unsharded checkpoint. */
export const HF_WEIGHTS_FILE = "model.safetensors"

/** An open set of weight files. Close it when done. */
export interface HfWeights {
  /** Weight files, relative to the directory. */
  readonly files: ReadonlyArray<string>
  /** Every tensor name the files hold. */
  readonly names: ReadonlyArray<string>
  /** A tensor's shape, or undefined when no file holds it. */
  shape(name: string): ReadonlyArray<number> | undefined
  /** The file (relative to the directory) that holds a tensor. */
  fileOf(name: string): string | undefined
  /** A tensor's values as float32 (HfMissingTensorError when absent). */
  read(name: string): Promise<Float32Array>
  close(): Promise<void>
}

/** Which weight files a directory has, and what its index says lives where. */
const locateFiles = async (dir: string): Promise<{ files: Array<string>; weightMap: Map<string, string> | null }> => {
  if (await fileExists(path.join(dir, HF_INDEX_FILE))) {
    const index = await readJsonObject(dir, HF_INDEX_FILE)
    const map = index["weight_map"]
    const indexPath = path.join(dir, HF_INDEX_FILE)
    if (typeof map !== "object" || map === null || Array.isArray(map)) {
      throw new HfFormatError({ file: indexPath, problem: "weight_map is missing or not an object" })
    }
    const weightMap = new Map<string, string>()
    for (const [name, file] of Object.entries(map as Record<string, unknown>)) {
      if (typeof file !== "string" || file.includes("/") || file.includes("\\") || file.startsWith(".")) {
        throw new HfFormatError({ file: indexPath, problem: `weight_map entry "${name}" is ${JSON.stringify(file)}, not a file name in the directory` })
      }
      weightMap.set(name, file)
    }
    const files = [...new Set(weightMap.values())].sort()
    for (const file of files) {
      if (!(await fileExists(path.join(dir, file)))) throw new HfMissingFileError({ dir, file, hint: `listed in ${HF_INDEX_FILE}` })
    }
    return { files, weightMap }
  }
  if (await fileExists(path.join(dir, HF_WEIGHTS_FILE))) return { files: [HF_WEIGHTS_FILE], weightMap: null }
  const entries = await fs.readdir(dir).catch(() => [] as Array<string>)
  const files = entries.filter((name) => name.endsWith(".safetensors")).sort()
  if (files.length === 0) throw new HfMissingFileError({ dir, file: HF_WEIGHTS_FILE, hint: `nor ${HF_INDEX_FILE}, nor any other *.safetensors file` })
  return { files, weightMap: null }
}

/** Read exactly `length` bytes at `position`. */
const readAt = async (handle: FileHandle, length: number, position: number): Promise<Uint8Array> => {
  const buffer = new Uint8Array(length)
  let done = 0
  while (done < length) {
    const { bytesRead } = await handle.read(buffer, done, length - done, position + done)
    if (bytesRead === 0) break
    done += bytesRead
  }
  return done === length ? buffer : buffer.subarray(0, done)
}

interface Located {
  readonly file: string
  readonly handle: FileHandle
  readonly dataStart: number
  readonly entry: SafetensorsEntry
}

/**
 * Open a directory's weight files and validate their headers.
 *
 * @example
 * const weights = await openHfWeights("models/qwen")
 * try { const norm = await weights.read("model.norm.weight") } finally { await weights.close() }
 */
export const openHfWeights = async (dir: string): Promise<HfWeights> => {
  const { files, weightMap } = await locateFiles(dir)
  const handles: Array<FileHandle> = []
  const located = new Map<string, Located>()
  try {
    for (const file of files) {
      const full = path.join(dir, file)
      const handle = await fs.open(full, "r")
      handles.push(handle)
      const size = (await handle.stat()).size
      const n = safetensorsHeaderLength(await readAt(handle, 8, 0), size, full)
      const layout = parseSafetensorsHeader(await readAt(handle, 8 + n, 0), size, full)
      for (const entry of layout.entries) {
        const other = located.get(entry.name)
        if (other !== undefined) throw new HfFormatError({ file: full, problem: `tensor "${entry.name}" is also in ${other.file}` })
        located.set(entry.name, { file, handle, dataStart: layout.dataStart, entry })
      }
    }
    if (weightMap !== null) {
      for (const [name, file] of weightMap) {
        const found = located.get(name)
        if (found === undefined) throw new HfMissingTensorError({ dir, tensor: name, files: [file] })
        if (found.file !== file) {
          throw new HfFormatError({ file: path.join(dir, HF_INDEX_FILE), problem: `weight_map puts "${name}" in ${file}, but it is in ${found.file}` })
        }
      }
    }
  } catch (error) {
    await Promise.all(handles.map((h) => h.close()))
    throw error
  }
  return {
    files,
    names: [...located.keys()],
    shape: (name) => located.get(name)?.entry.shape,
    fileOf: (name) => located.get(name)?.file,
    read: async (name) => {
      const found = located.get(name)
      if (found === undefined) throw new HfMissingTensorError({ dir, tensor: name, files })
      const { entry } = found
      if (entry.dtype === "I32") {
        throw new HfFormatError({ file: path.join(dir, found.file), problem: `tensor "${name}" is I32; weights must be F32, BF16 or F16` })
      }
      const count = entry.shape.reduce((a, b) => a * b, 1)
      const bytes = await readAt(found.handle, entry.end - entry.begin, found.dataStart + entry.begin)
      if (bytes.length !== entry.end - entry.begin) {
        throw new HfFormatError({ file: path.join(dir, found.file), problem: `tensor "${name}" could not be read in full; the file changed while loading` })
      }
      return decodeTensorBytes(entry.dtype, bytes, count) as Float32Array
    },
    close: async () => {
      await Promise.all(handles.map((h) => h.close()))
    },
  }
}
