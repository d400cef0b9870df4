/**
 * Loading a Hugging Face Llama/Qwen2 model directory into Turnwise's decoder.
 *
 * Turnwise's transformer names its weights exactly as HF Llama/Qwen2 checkpoints do, in
 * the same [out, in] layout, so the mapping is by name: every parameter the config
 * implies must be in the weight files with the implied shape. Everything is checked
 * before any weight is allocated. A stored tensor the decoder does not have is an error
 * (it would mean config.json describes a different network), except rotary
 * `inv_freq` buffers, which older checkpoints carry, and an `lm_head.weight` beside
 * tied embeddings, which Transformers ignores as well.
 *
 * @category constructors
 */
import * as path from "node:path"
import * as tf from "@tensorflow/tfjs"
import { parameterShapes, Transformer } from "../transformer.js"
import { HfFormatError, HfMissingTensorError, HfShapeMismatchError } from "./errors.js"
import { readHfConfig } from "./hf-config.js"
import type { HfConfig, HfConfigOptions } from "./hf-config.js"
import { openHfWeights } from "./hf-weights.js"

/** A loaded model and the config.json it was built from. */
export interface HfLoadedModel {
  readonly model: Transformer
  readonly config: HfConfig
  /** The directory it was loaded from. */
  readonly dir: string
}

/** Stored buffers that are not parameters. */
const IGNORED = /(^|\.)rotary_emb\.inv_freq$/

/**
 * Build a {@link Transformer} from `dir` (config.json and its safetensors files).
 *
 * @example
 * const { model, config } = await loadHfModel("models/Qwen2.5-0.5B-Instruct", { maxSeqLen: 1024 })
 * config.architecture // "Qwen2ForCausalLM"
 */
export const loadHfModel = async (dir: string, options: HfConfigOptions = {}): Promise<HfLoadedModel> => {
  const config = await readHfConfig(dir, options)
  const weights = await openHfWeights(dir)
  const variables = new Map<string, tf.Variable>()
  try {
    const expected = parameterShapes(config.model)
    const fileOf = (name: string) => path.join(dir, weights.fileOf(name) ?? weights.files.join(", "))
    for (const { name, shape } of expected) {
      const actual = weights.shape(name)
      if (actual === undefined) throw new HfMissingTensorError({ dir, tensor: name, files: weights.files })
      if (!tf.util.arraysEqual([...actual], [...shape])) throw new HfShapeMismatchError({ file: fileOf(name), tensor: name, expected: shape, actual })
    }
    const known = new Set(expected.map((p) => p.name))
    for (const name of weights.names) {
      if (known.has(name) || IGNORED.test(name) || (name === "lm_head.weight" && config.model.tieEmbeddings)) continue
      throw new HfFormatError({
        file: fileOf(name),
        problem: `tensor "${name}" is not a parameter of ${config.architecture} as config.json describes it, so the model cannot be loaded exactly`,
      })
    }
    for (const { name, shape } of expected) {
      const data = await weights.read(name)
      variables.set(
        name,
        tf.tidy(() => tf.variable(tf.tensor(data, [...shape], "float32"), true)),
      )
    }
  } catch (error) {
    tf.dispose([...variables.values()])
    throw error
  } finally {
    await weights.close()
  }
  return { model: new Transformer(config.model, variables), config, dir }
}
