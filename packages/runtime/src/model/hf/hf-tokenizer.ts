/**
 * A pretrained model's tokenizer (tokenizer.json, run by @huggingface/tokenizers)
 * behind Turnwise's {@link Tokenizer} interface, plus its chat template.
 *
 * - `encode` adds no special tokens (the rollout prepends `bos` itself), but special
 *   token strings in the text (such as `<|im_start|>` in a rendered chat prompt) become
 *   their ids, as in Transformers.
 * - `decode` drops special tokens and ids the tokenizer does not know (models pad their
 *   embedding beyond the tokenizer's vocabulary, and a sampler may pick such a row).
 * - `bos`, `eos`, `pad`: the tokens tokenizer_config.json names, else config.json's
 *   ids. A model without a BOS token (Qwen2) uses config.json's `bos_token_id`, else
 *   its EOS; without a pad token, EOS pads (padding is masked out of every loss).
 * - `vocabSize` is the model's `vocab_size` when given (it may exceed the tokenizer's).
 *
 * @category models
 */
import * as path from "node:path"
import { Tokenizer as TokenizerJs } from "@huggingface/tokenizers"
import type { TokenizerShape } from "@turnwise/dsl"
import { HfFormatError } from "./errors.js"
import { ChatTemplate, findChatTemplate } from "./hf-chat-template.js"
import type { ChatMessage, ChatRenderOptions } from "./hf-chat-template.js"
import type { HfConfig } from "./hf-config.js"
import { fileExists, readJsonObject } from "./hf-files.js"

/** A special token as tokenizer_config.json gives it: a string, an AddedToken object, or null. */
const tokenString = (value: unknown): string | null => {
  if (typeof value === "string") return value
  if (typeof value === "object" && value !== null && typeof (value as { content?: unknown }).content === "string") return (value as { content: string }).content
  return null
}

/**
 * The tokenizer of a Hugging Face model directory. Build one with {@link loadHfTokenizer}.
 *
 * @example
 * const tok = await loadHfTokenizer("models/qwen", { vocabSize: 151936 })
 * tok.decode(tok.encode("Hello")) // "Hello"
 * tok.formatPrompt("Q: 2+2?\n") // "<|im_start|>user\nQ: 2+2?\n<|im_end|>\n<|im_start|>assistant\n"
 */
export class HfTokenizer implements TokenizerShape {
  constructor(
    private readonly inner: TokenizerJs,
    readonly vocabSize: number,
    readonly bos: number,
    readonly eos: number,
    readonly pad: number,
    /** The BOS token's text, or null when the tokenizer has none. */
    readonly bosToken: string | null,
    /** The chat template, or null when the model has none. */
    readonly chatTemplate: ChatTemplate | null,
  ) {}

  encode(text: string): Array<number> {
    return [...this.inner.encode(text, { add_special_tokens: false }).ids]
  }

  decode(ids: ReadonlyArray<number>): string {
    const known = ids.filter((id) => Number.isInteger(id) && id >= 0 && this.inner.id_to_token(id) !== undefined)
    // The library refuses an empty list; nothing decodes to "".
    return known.length === 0 ? "" : this.inner.decode(known, { skip_special_tokens: true })
  }

  /**
   * Render messages with the chat template (HfFormatError when the model has none).
   *
   * @example
   * tok.applyChatTemplate([{ role: "system", content: "Be brief." }, { role: "user", content: "Hi" }])
   */
  applyChatTemplate(messages: ReadonlyArray<ChatMessage>, options: ChatRenderOptions = {}): string {
    if (this.chatTemplate === null) throw new HfFormatError({ file: "tokenizer_config.json", problem: "the model has no chat template" })
    return this.chatTemplate.render(messages, options)
  }

  /**
   * The prompt for a task's text: one user message through the chat template with
   * the assistant turn opened, minus a leading BOS token string (the rollout prepends
   * the BOS id itself). Without a chat template, the text unchanged.
   *
   * @example
   * tok.formatPrompt("Q: 12*34=?\n")
   */
  formatPrompt(text: string): string {
    if (this.chatTemplate === null) return text
    const rendered = this.chatTemplate.render([{ role: "user", content: text }], { addGenerationPrompt: true })
    return this.bosToken !== null && rendered.startsWith(this.bosToken) ? rendered.slice(this.bosToken.length) : rendered
  }
}

/** Options of {@link loadHfTokenizer}. */
export interface HfTokenizerOptions {
  /** The model's vocab_size (default: the tokenizer's largest id + 1). */
  readonly vocabSize?: number
  /** config.json's token ids, used where tokenizer_config.json names no token. */
  readonly config?: Pick<HfConfig, "bosTokenId" | "eosTokenId" | "padTokenId">
}

/**
 * Load `dir/tokenizer.json` (required) with `dir/tokenizer_config.json` (optional) and
 * the chat template.
 *
 * @example
 * const { config } = await loadHfModel(dir)
 * const tok = await loadHfTokenizer(dir, { vocabSize: config.model.vocabSize, config })
 */
export const loadHfTokenizer = async (dir: string, options: HfTokenizerOptions = {}): Promise<HfTokenizer> => {
  const tokenizerJson = await readJsonObject(dir, "tokenizer.json", "the model's tokenizer")
  const configFile = path.join(dir, "tokenizer_config.json")
  const tokenizerConfig = (await fileExists(configFile)) ? await readJsonObject(dir, "tokenizer_config.json") : {}
  const jsonFile = path.join(dir, "tokenizer.json")
  let inner: TokenizerJs
  try {
    inner = new TokenizerJs(tokenizerJson, tokenizerConfig)
  } catch (error) {
    throw new HfFormatError({ file: jsonFile, problem: `cannot be used (${error instanceof Error ? error.message : String(error)})` })
  }

  const named = (field: string): { id: number; token: string } | null => {
    const token = tokenString(tokenizerConfig[field])
    if (token === null) return null
    const id = inner.token_to_id(token)
    if (id === undefined) throw new HfFormatError({ file: configFile, problem: `${field} ${JSON.stringify(token)} is not in tokenizer.json's vocabulary` })
    return { id, token }
  }
  const fromConfig = (id: number | null | undefined) => (id === null || id === undefined ? null : { id, token: inner.id_to_token(id) ?? null })
  const eos = named("eos_token") ?? fromConfig(options.config?.eosTokenId)
  if (eos === null) {
    throw new HfFormatError({ file: configFile, problem: "names no eos_token, and config.json has no eos_token_id; generation could never stop" })
  }
  const bosNamed = named("bos_token")
  const bos = bosNamed ?? fromConfig(options.config?.bosTokenId) ?? eos
  const pad = named("pad_token") ?? fromConfig(options.config?.padTokenId) ?? eos

  let largest = -1
  for (const id of inner.get_vocab(true).values()) largest = Math.max(largest, id)
  const vocabSize = options.vocabSize ?? largest + 1
  if (largest >= vocabSize) throw new HfFormatError({ file: jsonFile, problem: `holds token id ${largest}, beyond the model's vocab_size ${vocabSize}` })
  for (const [what, special] of [["bos", bos], ["eos", eos], ["pad", pad]] as const) {
    if (special.id >= vocabSize) {
      throw new HfFormatError({ file: configFile, problem: `${what} id ${special.id} is beyond the model's vocab_size ${vocabSize}` })
    }
  }

  const found = await findChatTemplate(dir, tokenizerConfig)
  const specials = {
    bos_token: bos.token,
    eos_token: eos.token,
    pad_token: pad.token,
    unk_token: tokenString(tokenizerConfig["unk_token"]),
  }
  const template = found === null ? null : new ChatTemplate(found.source, specials, found.file)
  return new HfTokenizer(inner, vocabSize, bos.id, eos.id, pad.id, bosNamed?.token ?? null, template)
}
