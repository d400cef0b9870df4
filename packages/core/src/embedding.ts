/**
 * Lexical code embeddings for code-similarity shaping, needing no model.
 *
 * {@link charNgramEmbedding} maps a code string to a hashed bag of character
 * n-grams: whitespace runs are collapsed to one space first (so re-indenting code
 * does not change its vector), every n-gram is hashed with 32-bit FNV-1a over its
 * UTF-8 bytes into one of `dims` buckets, and the bucket holds the gram's count.
 * {@link cosine} compares two such vectors.
 *
 * The policy's own embedding (the paper's "self-supervised" choice) lives in the
 * runtime, which has the model; it plugs into shaping through the same
 * {@link Embedder} type.
 *
 * @category constructors
 */
import type { Embedder } from "./component.js"
import { AlgorithmInputError } from "./errors.js"

const FNV_OFFSET = 0x811c9dc5
const FNV_PRIME = 0x01000193
const utf8 = new TextEncoder()

/**
 * 32-bit FNV-1a hash of a string's UTF-8 bytes, as an unsigned integer.
 *
 * @example
 * fnv1a("a") // 0xe40c292c
 */
export const fnv1a = (text: string): number => {
  let hash = FNV_OFFSET
  for (const byte of utf8.encode(text)) {
    hash ^= byte
    hash = Math.imul(hash, FNV_PRIME)
  }
  return hash >>> 0
}

/** Options of {@link charNgramEmbedding}. */
export interface CharNgramOptions {
  /** Characters per gram (>= 1). */
  readonly n: number
  /** Number of hash buckets, the vector's length (>= 1). */
  readonly dims: number
}

/**
 * Hashed bag of character n-grams. A string shorter than n (after collapsing
 * whitespace) is one gram; the empty string is the zero vector.
 *
 * @example
 * const embed = charNgramEmbedding({ n: 3, dims: 2048 })
 * const [a, b] = embed(["print(1 + 2)", "print(1+2)"])
 * cosine(a, b) // high
 */
export const charNgramEmbedding = (options: CharNgramOptions): Embedder => {
  const { n, dims } = options
  return (codes) =>
    codes.map((code) => {
      const vector = new Array<number>(dims).fill(0)
      // Code points, not UTF-16 units, so a gram never splits a surrogate pair.
      const chars = Array.from(code.replace(/\s+/g, " ").trim())
      if (chars.length === 0) return vector
      const grams = Math.max(1, chars.length - n + 1)
      for (let k = 0; k < grams; k++) {
        const bucket = fnv1a(chars.slice(k, k + n).join("")) % dims
        vector[bucket] = vector[bucket]! + 1
      }
      return vector
    })
}

/**
 * Cosine similarity of two vectors of equal length, in [-1, 1]; 0 when either is the
 * zero vector (nothing to compare). Throws {@link AlgorithmInputError} on different
 * lengths.
 *
 * @example
 * cosine([1, 0], [1, 1]) // 0.7071...
 */
export const cosine = (a: ReadonlyArray<number>, b: ReadonlyArray<number>): number => {
  if (a.length !== b.length) {
    throw new AlgorithmInputError({ fn: "cosine", where: "vectors", problem: `lengths differ: ${a.length} and ${b.length}` })
  }
  let dot = 0
  let aa = 0
  let bb = 0
  for (let k = 0; k < a.length; k++) {
    const x = a[k]!
    const y = b[k]!
    dot += x * y
    aa += x * x
    bb += y * y
  }
  if (aa === 0 || bb === 0) return 0
  // Rounding can push |cos| of parallel vectors a hair past 1.
  return Math.max(-1, Math.min(1, dot / Math.sqrt(aa * bb)))
}

/**
 * The built-in embeddings by name, each a constructor from its options.
 *
 * @example
 * const embed = embeddings["char-ngram"]({ n: 3, dims: 2048 })
 */
export const embeddings = {
  "char-ngram": charNgramEmbedding,
} as const

/** The name of a built-in embedding. */
export type EmbeddingName = keyof typeof embeddings
