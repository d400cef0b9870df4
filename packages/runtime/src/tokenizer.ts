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
import type { TokenizerShape } from "@turnwise/dsl"

/**
 * The byte tokenizer.
 *
 * @example
 * const t = new ByteTokenizer()
 * t.encode("é")            // [195, 169]
 * t.decode(t.encode("🙂")) // "🙂"
 */
export class ByteTokenizer implements TokenizerShape {
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
export const byteTokenizer: TokenizerShape = new ByteTokenizer()
