/**
 * Byte-level tokenizer: every UTF-8 byte is a token, so any string encodes and no
 * text is ever out of vocabulary. Ids 0-255 are the bytes; 256, 257 and 258 are the
 * BOS, EOS and PAD specials (vocabulary size 259).
 *
 * Decoding is lenient: a sampled sequence may stop in the middle of a multi-byte
 * character, or contain byte sequences that are not valid UTF-8; those decode to
 * U+FFFD instead of throwing. Special ids decode to nothing.
 *
 * @category models
 */

/**
 * What the sampler and the trainer need from a tokenizer.
 *
 * @example
 * const ids = [tokenizer.bos, ...tokenizer.encode("2+2=")]
 */
export interface Tokenizer {
  /** Number of ids (the model's vocabulary size must match). */
  readonly vocabSize: number
  /** Beginning-of-sequence id. */
  readonly bos: number
  /** End-of-sequence id. */
  readonly eos: number
  /** Padding id. */
  readonly pad: number
  /** Text to ids (no specials added). */
  encode(text: string): Array<number>
  /** Ids to text (specials dropped, malformed bytes replaced by U+FFFD). */
  decode(ids: ReadonlyArray<number>): string
  /** Wrap a task's prompt text before encoding (a chat template); absent = use it as is. */
  formatPrompt?(text: string): string
}

/**
 * The byte tokenizer.
 *
 * @example
 * const t = new ByteTokenizer()
 * t.encode("é")            // [195, 169]
 * t.decode(t.encode("🙂")) // "🙂"
 */
export class ByteTokenizer implements Tokenizer {
  readonly vocabSize = 259
  readonly bos = 256
  readonly eos = 257
  readonly pad = 258
  private readonly encoder = new TextEncoder()
  // fatal: false turns malformed or truncated UTF-8 into U+FFFD rather than throwing.
  private readonly decoder = new TextDecoder("utf-8", { fatal: false })

  encode(text: string): Array<number> {
    return Array.from(this.encoder.encode(text))
  }

  decode(ids: ReadonlyArray<number>): string {
    const bytes = new Uint8Array(ids.length)
    let n = 0
    for (const id of ids) if (id >= 0 && id < 256) bytes[n++] = id
    return this.decoder.decode(bytes.subarray(0, n))
  }
}

/** A shared {@link ByteTokenizer} (it holds no state). */
export const byteTokenizer: Tokenizer = new ByteTokenizer()
