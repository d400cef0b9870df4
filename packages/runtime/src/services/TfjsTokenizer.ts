/**
 * The DSL's `Tokenizer` service over a runtime tokenizer (the byte tokenizer, or a
 * pretrained model's tokenizer.json with its chat template).
 *
 * @example
 * program.pipe(Effect.provide(TfjsTokenizer.layer(byteTokenizer)))
 *
 * @category layers
 */
import { Layer } from "effect"
import { Tokenizer } from "@turnwise/dsl"
import type { TokenizerShape } from "@turnwise/dsl"

/** The `Tokenizer` service over `tokenizer` (its prompt format too, when it has one). */
export const layer = (tokenizer: TokenizerShape): Layer.Layer<Tokenizer> =>
  Layer.succeed(Tokenizer, {
    vocabSize: tokenizer.vocabSize,
    bos: tokenizer.bos,
    eos: tokenizer.eos,
    pad: tokenizer.pad,
    encode: (text) => tokenizer.encode(text),
    decode: (ids) => tokenizer.decode(ids),
    ...(tokenizer.formatPrompt === undefined ? {} : { formatPrompt: (text: string) => tokenizer.formatPrompt?.(text) ?? text }),
  })
