/**
 * A model's chat template: the Jinja program in its tokenizer files that turns a list
 * of messages into the prompt text the model was tuned on, rendered with
 * @huggingface/jinja (which provides `raise_exception` and `strftime_now` to
 * templates, as Transformers does).
 *
 * The template comes from `chat_template.jinja` when the directory has one (newer
 * Transformers save it there), else from `chat_template` in tokenizer_config.json: a
 * string, or a list of named templates of which "default" is used.
 *
 * @category models
 */
import { promises as fs } from "node:fs"
import * as path from "node:path"
import { Template } from "@huggingface/jinja"
import { ChatTemplateError, HfFormatError } from "./errors.js"
import { fileExists } from "./hf-files.js"

/** One chat message. */
export interface ChatMessage {
  readonly role: string
  readonly content: string
}

/** Options of {@link ChatTemplate.render}. */
export interface ChatRenderOptions {
  /** Open an assistant turn at the end, so generation continues as the assistant (default true). */
  readonly addGenerationPrompt?: boolean
  /** More variables for the template (e.g. `tools`, `enable_thinking`). */
  readonly extra?: Readonly<Record<string, unknown>>
}

/** The special-token strings templates refer to (`bos_token`, `eos_token`, ...). */
export interface ChatSpecialTokens {
  readonly bos_token: string | null
  readonly eos_token: string | null
  readonly pad_token: string | null
  readonly unk_token: string | null
}

/**
 * A compiled chat template.
 *
 * @example
 * const template = new ChatTemplate(source, specials, "m/tokenizer_config.json")
 * template.render([{ role: "user", content: "2+2?" }]) // "<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n"
 */
export class ChatTemplate {
  private readonly template: Template

  constructor(
    /** The Jinja source. */
    readonly source: string,
    readonly specials: ChatSpecialTokens,
    /** The file it came from (named in errors). */
    readonly file: string,
  ) {
    try {
      this.template = new Template(source)
    } catch (error) {
      throw new HfFormatError({ file, problem: `chat template does not parse (${error instanceof Error ? error.message : String(error)})` })
    }
  }

  /** Render messages to prompt text. */
  render(messages: ReadonlyArray<ChatMessage>, options: ChatRenderOptions = {}): string {
    try {
      return this.template.render({
        ...Object.fromEntries(Object.entries(this.specials).filter(([, v]) => v !== null)),
        ...options.extra,
        messages: messages.map((m) => ({ role: m.role, content: m.content })),
        add_generation_prompt: options.addGenerationPrompt ?? true,
      })
    } catch (error) {
      throw new ChatTemplateError({ file: this.file, problem: error instanceof Error ? error.message : String(error) })
    }
  }
}

/**
 * The chat template source of a model directory, or null when it has none.
 * `tokenizerConfig` is the parsed tokenizer_config.json.
 *
 * @example
 * const found = await findChatTemplate("models/qwen", tokenizerConfig)
 */
export const findChatTemplate = async (
  dir: string,
  tokenizerConfig: Readonly<Record<string, unknown>>,
): Promise<{ readonly source: string; readonly file: string } | null> => {
  const jinjaFile = path.join(dir, "chat_template.jinja")
  if (await fileExists(jinjaFile)) return { source: await fs.readFile(jinjaFile, "utf8"), file: jinjaFile }
  const file = path.join(dir, "tokenizer_config.json")
  const value = tokenizerConfig["chat_template"]
  if (value === undefined || value === null) return null
  if (typeof value === "string") return { source: value, file }
  if (Array.isArray(value)) {
    const named = value.filter((t): t is { name: string; template: string } =>
      typeof t === "object" && t !== null && typeof t.name === "string" && typeof t.template === "string"
    )
    const chosen = named.find((t) => t.name === "default") ?? named[0]
    if (chosen === undefined) throw new HfFormatError({ file, problem: "chat_template is a list without a {name, template} entry" })
    return { source: chosen.template, file }
  }
  throw new HfFormatError({ file, problem: `chat_template is ${JSON.stringify(value).slice(0, 60)} (expected a string or a list of {name, template})` })
}
