/**
 * Saving a model in the Hugging Face layout, so Transformers, vLLM, llama.cpp's
 * converter and Turnwise itself can load the fine-tuned weights:
 * `config.json`, one `model.safetensors` (tensors in name order, float32 or bfloat16)
 * and, when the model came from a directory, that directory's tokenizer files.
 *
 * The weights are written tensor by tensor (one tensor's bytes in memory at a time) to a
 * temporary file that is renamed into place, as is config.json, so an interrupted save
 * never leaves a truncated file under the final name. A `model.safetensors.index.json`
 * already in the target directory is removed, since it would point loaders at other
 * files.
 *
 * @category constructors
 */
import { randomBytes } from "node:crypto"
import { promises as fs } from "node:fs"
import * as path from "node:path"
import { encodeTensorBytes, safetensorsHeader } from "../safetensors.js"
import type { SafetensorsDtype, SafetensorsSpec } from "../safetensors.js"
import type { Transformer } from "../transformer.js"
import { hfConfigJson } from "./hf-config.js"
import type { HfDtype } from "./hf-config.js"
import { fileExists, readJsonObject } from "./hf-files.js"
import { HF_INDEX_FILE, HF_WEIGHTS_FILE } from "./hf-weights.js"

/** Files copied from the source directory when present. */
export const HF_TOKENIZER_FILES: ReadonlyArray<string> = [
  "tokenizer.json",
  "tokenizer_config.json",
  "special_tokens_map.json",
  "chat_template.jinja",
  "generation_config.json",
  "added_tokens.json",
  "vocab.json",
  "merges.txt",
  "tokenizer.model",
]

/** Options of {@link saveHfModel}. */
export interface HfSaveOptions {
  /**
   * The directory the model was loaded from: its config.json is kept (dtype updated,
   * checked to describe the same network) and its tokenizer files are copied. Without
   * it a fresh config.json is written and no tokenizer files.
   */
  readonly source?: string
  /** Storage precision of the weights (default float32). */
  readonly dtype?: HfDtype
}

const temporary = (file: string) => `${file}.tmp-${randomBytes(6).toString("hex")}`

const writeAtomically = async (file: string, write: (tmp: string) => Promise<void>): Promise<void> => {
  const tmp = temporary(file)
  try {
    await write(tmp)
    await fs.rename(tmp, file)
  } catch (error) {
    await fs.rm(tmp, { force: true })
    throw error
  }
}

/**
 * Save `model` under `dir` in the Hugging Face layout; returns the files written.
 *
 * @example
 * await saveHfModel(runtime.model, "out/qwen-gtpo", { source: "models/Qwen2.5-0.5B-Instruct", dtype: "bfloat16" })
 */
export const saveHfModel = async (model: Transformer, dir: string, options: HfSaveOptions = {}): Promise<Array<string>> => {
  const dtype = options.dtype ?? "float32"
  const tensorDtype: SafetensorsDtype = dtype === "bfloat16" ? "BF16" : "F32"
  const base = options.source === undefined ? undefined : await readJsonObject(options.source, "config.json")
  const config = hfConfigJson(model.config, {
    dtype,
    ...(base === undefined ? {} : { base }),
    ...(options.source === undefined ? {} : { file: path.join(options.source, "config.json") }),
  })
  await fs.mkdir(dir, { recursive: true })

  const specs = new Map<string, SafetensorsSpec>([...model.variables].map(([name, v]) => [name, { dtype: tensorDtype, shape: v.shape }]))
  const header = safetensorsHeader(specs, { format: "pt" })
  await writeAtomically(path.join(dir, HF_WEIGHTS_FILE), async (tmp) => {
    const handle = await fs.open(tmp, "w")
    try {
      await handle.write(header.bytes)
      for (const name of header.order) {
        const variable = model.variables.get(name)
        if (variable === undefined) continue
        await handle.write(encodeTensorBytes(tensorDtype, (await variable.data()) as Float32Array))
      }
      await handle.sync()
    } finally {
      await handle.close()
    }
  })
  await fs.rm(path.join(dir, HF_INDEX_FILE), { force: true })
  await writeAtomically(path.join(dir, "config.json"), (tmp) => fs.writeFile(tmp, `${JSON.stringify(config, null, 2)}\n`))
  const written = ["config.json", HF_WEIGHTS_FILE]

  if (options.source !== undefined && path.resolve(options.source) !== path.resolve(dir)) {
    for (const file of HF_TOKENIZER_FILES) {
      const from = path.join(options.source, file)
      if (!(await fileExists(from))) continue
      await writeAtomically(path.join(dir, file), (tmp) => fs.copyFile(from, tmp))
      written.push(file)
    }
  }
  return written
}
