import { describe, expect, it } from "vitest"
import { decodeSafetensors, encodeSafetensors, SafetensorsError, type SafetensorsTensor } from "../../packages/runtime/src/model/safetensors.js"

/** A file from a header object and raw data bytes, built by hand (header length unpadded). */
const handBuilt = (header: unknown, data: ReadonlyArray<number>): Uint8Array => {
  const json = new TextEncoder().encode(JSON.stringify(header))
  const out = new Uint8Array(8 + json.length + data.length)
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true)
  out.set(json, 8)
  out.set(data, 8 + json.length)
  return out
}

const f32 = (shape: Array<number>, begin: number, end: number) => ({ dtype: "F32", shape, data_offsets: [begin, end] })

describe("safetensors", () => {
  it("round-trips F32 and I32 tensors, scalars, empty tensors and metadata", () => {
    const tensors = new Map<string, SafetensorsTensor>([
      ["model.embed_tokens.weight", { dtype: "F32", shape: [2, 3], data: Float32Array.from([1, -2.5, 3e-8, 4, 5, 6.25]) }],
      ["counts", { dtype: "I32", shape: [3], data: Int32Array.from([-1, 0, 2147483647]) }],
      ["scale", { dtype: "F32", shape: [], data: Float32Array.from([0.5]) }],
      ["empty", { dtype: "F32", shape: [0, 4], data: new Float32Array(0) }],
    ])
    const bytes = encodeSafetensors(tensors, { format: "pt", step: "12" })
    const headerLength = Number(new DataView(bytes.buffer).getBigUint64(0, true))
    expect(headerLength % 8).toBe(0)
    const back = decodeSafetensors(bytes)
    expect(back.metadata).toEqual({ format: "pt", step: "12" })
    expect([...back.tensors.keys()].sort()).toEqual([...tensors.keys()].sort())
    for (const [name, t] of tensors) {
      const u = back.tensors.get(name)
      expect(u?.dtype).toBe(t.dtype)
      expect(u?.shape).toEqual(t.shape)
      expect(Array.from(u?.data ?? [])).toEqual(Array.from(t.data))
      expect(u?.data.constructor).toBe(t.data.constructor)
    }
  })

  it("writes the documented byte layout", () => {
    const bytes = encodeSafetensors(new Map([["w", { dtype: "F32", shape: [2], data: Float32Array.from([1, 2]) }]]))
    const n = Number(new DataView(bytes.buffer).getBigUint64(0, true))
    const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n)))
    expect(header).toEqual({ w: { dtype: "F32", shape: [2], data_offsets: [0, 8] } })
    // 1.0f = 0x3f800000 and 2.0f = 0x40000000, little-endian.
    expect(Array.from(bytes.subarray(8 + n))).toEqual([0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x00, 0x40])
    expect(bytes.length).toBe(8 + n + 8)
  })

  it("reads a hand-built file with F32, BF16 (widened to float32) and I32", () => {
    const bytes = handBuilt(
      {
        __metadata__: { note: "by hand" },
        a: f32([2], 0, 8),
        b: { dtype: "BF16", shape: [2], data_offsets: [8, 12] },
        c: { dtype: "I32", shape: [1], data_offsets: [12, 16] },
      },
      [
        ...[0x00, 0x00, 0xc0, 0x3f, 0x00, 0x00, 0x00, 0xc0], // F32 1.5, -2
        ...[0x80, 0x3f, 0x00, 0xbf], // BF16 1.0 (0x3f80), -0.5 (0xbf00)
        ...[0xfe, 0xff, 0xff, 0xff], // I32 -2
      ],
    )
    const { tensors, metadata } = decodeSafetensors(bytes)
    expect(metadata).toEqual({ note: "by hand" })
    expect(Array.from(tensors.get("a")?.data ?? [])).toEqual([1.5, -2])
    expect(tensors.get("b")?.data).toBeInstanceOf(Float32Array)
    expect(Array.from(tensors.get("b")?.data ?? [])).toEqual([1, -0.5])
    expect(Array.from(tensors.get("c")?.data ?? [])).toEqual([-2])
  })

  describe("rejects malformed files, naming the problem", () => {
    const good = handBuilt({ a: f32([2], 0, 8), b: f32([1], 8, 12) }, new Array(12).fill(0))
    const cases: Array<[string, Uint8Array, RegExp]> = [
      ["a file shorter than 8 bytes", new Uint8Array(5), /shorter than the 8-byte header length/],
      [
        "a truncated file (data cut short)",
        good.subarray(0, good.length - 3),
        /tensor "b": data_offsets \[8, 12\] run past the end of the data \(9 bytes\); the file is truncated/,
      ],
      ["a header length beyond the file", good.subarray(0, 20), /header length \d+ runs past the end of the file/],
      ["malformed JSON", handBuilt("x", []).map((b, i) => (i === 8 ? 0x7b : b)), /header is not valid UTF-8 JSON/],
      ["a header that is not an object", handBuilt([1, 2], []), /header is not a JSON object/],
      [
        "overlapping offsets",
        handBuilt({ a: f32([2], 0, 8), b: f32([1], 4, 8) }, new Array(8).fill(0)),
        /tensor "b": data_offsets \[4, 8\] overlap those of "a"/,
      ],
      [
        "a gap between tensors",
        handBuilt({ a: f32([1], 0, 4), b: f32([1], 8, 12) }, new Array(12).fill(0)),
        /tensor "b": bytes \[4, 8\) before it belong to no tensor/,
      ],
      ["trailing bytes", handBuilt({ a: f32([1], 0, 4) }, new Array(6).fill(0)), /data section has 6 bytes but tensors cover only 4/],
      [
        "a size that does not match shape x dtype",
        handBuilt({ a: f32([3], 0, 8) }, new Array(8).fill(0)),
        /tensor "a": shape \[3\] x F32 needs 12 bytes, data_offsets give 8/,
      ],
      [
        "an unknown dtype",
        handBuilt({ a: { dtype: "F64", shape: [1], data_offsets: [0, 8] } }, new Array(8).fill(0)),
        /tensor "a": dtype "F64" is not supported/,
      ],
      ["a negative dimension", handBuilt({ a: f32([-1], 0, 4) }, new Array(4).fill(0)), /tensor "a": shape \[-1\] is not a list of non-negative integers/],
      ["offsets that end before they begin", handBuilt({ a: f32([0], 4, 0) }, new Array(4).fill(0)), /tensor "a": data_offsets \[4, 0\] end before they begin/],
      ["non-string metadata", handBuilt({ __metadata__: { step: 3 }, a: f32([1], 0, 4) }, new Array(4).fill(0)), /__metadata__ entry "step" is not a string/],
    ]
    for (const [what, bytes, pattern] of cases) {
      it(what, () => {
        expect(() => decodeSafetensors(bytes, "ckpt/model.safetensors")).toThrow(SafetensorsError)
        expect(() => decodeSafetensors(bytes, "ckpt/model.safetensors")).toThrow(pattern)
        expect(() => decodeSafetensors(bytes, "ckpt/model.safetensors")).toThrow(/^safetensors ckpt\/model\.safetensors:/)
      })
    }
    it("accepts the untouched file the cases were cut from", () => {
      expect(decodeSafetensors(good).tensors.size).toBe(2)
    })
  })

  it("refuses to encode data whose length does not match its shape", () => {
    expect(() => encodeSafetensors(new Map([["w", { dtype: "F32", shape: [3], data: new Float32Array(2) }]]))).toThrow(
      /tensor "w": shape \[3\] needs 3 elements, data has 2/,
    )
  })
})
