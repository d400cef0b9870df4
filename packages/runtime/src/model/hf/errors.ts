/**
 * What can go wrong loading or saving a model directory in the Hugging Face layout,
 * one tagged error per kind, each with a message that names the file, the tensor or
 * the value at fault.
 *
 * @category errors
 */
import { Data } from "effect"

/** The architectures Turnwise's decoder implements. */
export const supportedArchitectures = ["LlamaForCausalLM", "Qwen2ForCausalLM"] as const

/** One of {@link supportedArchitectures}. */
export type HfArchitecture = (typeof supportedArchitectures)[number]

/**
 * A file the model directory needs is not there.
 *
 * @example
 * throw new HfMissingFileError({ dir: "models/qwen", file: "config.json", hint: "" })
 */
export class HfMissingFileError extends Data.TaggedError("HfMissingFileError")<{
  readonly dir: string
  /** The missing file, relative to `dir`. */
  readonly file: string
  /** Why it was looked for, or "" (e.g. "listed in model.safetensors.index.json"). */
  readonly hint: string
}> {
  override get message(): string {
    return `Hugging Face model ${this.dir}: ${this.file} not found${this.hint === "" ? "" : ` (${this.hint})`}`
  }
}

/**
 * config.json names an architecture Turnwise's decoder does not implement.
 *
 * @example
 * throw new HfArchitectureError({ file: "m/config.json", architecture: "MistralForCausalLM" })
 */
export class HfArchitectureError extends Data.TaggedError("HfArchitectureError")<{
  readonly file: string
  readonly architecture: string
}> {
  override get message(): string {
    return `${this.file}: architecture "${this.architecture}" is not supported; supported architectures: ${supportedArchitectures.join(", ")}`
  }
}

/**
 * A weight file holds a tensor whose shape differs from the one config.json implies.
 *
 * @example
 * throw new HfShapeMismatchError({ file: "m/model.safetensors", tensor: "lm_head.weight", expected: [272, 16], actual: [272, 8] })
 */
export class HfShapeMismatchError extends Data.TaggedError("HfShapeMismatchError")<{
  readonly file: string
  readonly tensor: string
  readonly expected: ReadonlyArray<number>
  readonly actual: ReadonlyArray<number>
}> {
  override get message(): string {
    return `${this.file}: tensor "${this.tensor}" has shape [${this.actual.join(", ")}], config.json implies [${this.expected.join(", ")}]`
  }
}

/**
 * The weight files lack a tensor the model needs.
 *
 * @example
 * throw new HfMissingTensorError({ dir: "m", tensor: "model.norm.weight", files: ["model.safetensors"] })
 */
export class HfMissingTensorError extends Data.TaggedError("HfMissingTensorError")<{
  readonly dir: string
  readonly tensor: string
  /** The weight files searched. */
  readonly files: ReadonlyArray<string>
}> {
  override get message(): string {
    return `Hugging Face model ${this.dir}: no tensor "${this.tensor}" in ${this.files.join(", ")}, and the model needs it`
  }
}

/**
 * A file is there but its contents are malformed or ask for something Turnwise does
 * not implement (an unknown field value, an unsupported option, invalid JSON).
 *
 * @example
 * throw new HfFormatError({ file: "m/config.json", problem: "hidden_act \"gelu\" is not supported (silu only)" })
 */
export class HfFormatError extends Data.TaggedError("HfFormatError")<{
  readonly file: string
  readonly problem: string
}> {
  override get message(): string {
    return `${this.file}: ${this.problem}`
  }
}

/**
 * A chat template failed to render (it raised an exception, or used something the
 * template engine lacks).
 *
 * @example
 * throw new ChatTemplateError({ file: "m/tokenizer_config.json", problem: "Conversation roles must alternate" })
 */
export class ChatTemplateError extends Data.TaggedError("ChatTemplateError")<{
  readonly file: string
  readonly problem: string
}> {
  override get message(): string {
    return `chat template of ${this.file}: ${this.problem}`
  }
}

/** Any error of this module. */
export type HfModelError = HfMissingFileError | HfArchitectureError | HfShapeMismatchError | HfMissingTensorError | HfFormatError | ChatTemplateError
