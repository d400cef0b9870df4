/**
 * Reading the files of a model directory: existence checks and JSON files whose
 * absence or malformation becomes a typed error naming the file.
 *
 * @category constructors
 */
import { promises as fs } from "node:fs"
import * as path from "node:path"
import { HfFormatError, HfMissingFileError } from "./errors.js"

/** Whether `file` exists (any kind of entry). */
export const fileExists = (file: string): Promise<boolean> =>
  fs.access(file).then(
    () => true,
    () => false,
  )

/**
 * Read `dir/file` as a JSON object: HfMissingFileError when it is absent,
 * HfFormatError when it is not a JSON object.
 *
 * @example
 * const raw = await readJsonObject("models/qwen", "config.json")
 */
export const readJsonObject = async (dir: string, file: string, hint = ""): Promise<Record<string, unknown>> => {
  const full = path.join(dir, file)
  let text: string
  try {
    text = await fs.readFile(full, "utf8")
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") throw new HfMissingFileError({ dir, file, hint })
    throw new HfFormatError({ file: full, problem: `cannot be read (${error instanceof Error ? error.message : String(error)})` })
  }
  let raw: unknown
  try {
    raw = JSON.parse(text)
  } catch (error) {
    throw new HfFormatError({ file: full, problem: `is not valid JSON (${error instanceof Error ? error.message : String(error)})` })
  }
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) throw new HfFormatError({ file: full, problem: "is not a JSON object" })
  return raw as Record<string, unknown>
}
