/**
 * The `Tokenizer` service: text to token ids and back.
 *
 * The default implementation (in @turnwise/runtime) is byte-level; a tokenizer.json
 * implementation is provided for pretrained models. Rollouts keep the exact ids
 * the policy sampled and only ever encode new context (prompts, tool feedback).
 *
 * @category services
 */
import { Context } from "effect"

/** What a tokenizer offers. */
export interface TokenizerShape {
  readonly vocabSize: number
  readonly bos: number
  readonly eos: number
  readonly pad: number
  readonly encode: (text: string) => ReadonlyArray<number>
  readonly decode: (ids: ReadonlyArray<number>) => string
  /**
   * How a task's prompt text is wrapped before it is encoded, e.g. a pretrained chat
   * model's chat template (a user message, then the assistant turn opened). The
   * prompt is used as is when absent.
   */
  readonly formatPrompt?: (text: string) => string
}

/**
 * @example
 * const ids = Effect.gen(function* () { const tok = yield* Tokenizer; return tok.encode("Q: 2+2=?\n") })
 */
export class Tokenizer extends Context.Service<Tokenizer, TokenizerShape>()("turnwise/dsl/Tokenizer") {}
