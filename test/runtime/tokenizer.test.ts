import { describe, expect, it } from "vitest"
import { Rng } from "../../packages/core/src/rng.js"
import { ByteTokenizer, byteTokenizer } from "../../packages/runtime/src/tokenizer.js"

/** A random well-formed string mixing ASCII, 2-, 3- and 4-byte code points. */
const randomText = (rng: Rng, length: number): string => {
  const ranges: Array<[number, number]> = [
    [0x20, 0x7e],
    [0x00, 0x1f],
    [0xa0, 0x7ff],
    [0x800, 0xd7ff],
    [0xe000, 0xfffd],
    [0x10000, 0x10ffff],
  ]
  let s = ""
  for (let i = 0; i < length; i++) {
    const [lo, hi] = ranges[rng.int(ranges.length)] ?? [0x20, 0x7e]
    s += String.fromCodePoint(lo + rng.int(hi - lo + 1))
  }
  return s
}

describe("ByteTokenizer", () => {
  it("has 256 byte ids then BOS, EOS, PAD", () => {
    const t = new ByteTokenizer()
    expect([t.vocabSize, t.bos, t.eos, t.pad]).toEqual([259, 256, 257, 258])
  })

  it("encodes UTF-8 bytes", () => {
    expect(byteTokenizer.encode("Az")).toEqual([65, 122])
    expect(byteTokenizer.encode("é")).toEqual([0xc3, 0xa9])
    expect(byteTokenizer.encode("€")).toEqual([0xe2, 0x82, 0xac])
    expect(byteTokenizer.encode("🙂")).toEqual([0xf0, 0x9f, 0x99, 0x82])
    expect(byteTokenizer.encode("")).toEqual([])
  })

  it("round-trips fixed and random unicode strings", () => {
    for (const s of ["", "hello\nworld", "naïve café", "日本語テキスト", "emoji 🙂👍🏽 and flags 🇫🇷", "<code>print(1)</code>"]) {
      expect(byteTokenizer.decode(byteTokenizer.encode(s))).toBe(s)
    }
    const rng = Rng.fromSeed(11)
    for (let i = 0; i < 200; i++) {
      const s = randomText(rng, 1 + rng.int(40))
      expect(byteTokenizer.decode(byteTokenizer.encode(s))).toBe(s)
    }
  })

  it("drops special ids when decoding", () => {
    const t = byteTokenizer
    expect(t.decode([t.bos, 104, 105, t.eos, t.pad])).toBe("hi")
  })

  it("decodes an incomplete UTF-8 tail to U+FFFD instead of throwing", () => {
    const emoji = byteTokenizer.encode("a🙂")
    expect(byteTokenizer.decode(emoji.slice(0, 3))).toBe("a\uFFFD")
    expect(byteTokenizer.decode([0xff, 65])).toBe("\uFFFDA")
  })
})
