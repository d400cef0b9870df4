/**
 * The safetensors file format, written and read in plain TypeScript.
 *
 * Layout: 8 bytes little-endian unsigned header length N; N bytes of UTF-8 JSON mapping
 * each tensor name to `{ dtype, shape, data_offsets: [begin, end] }` (offsets relative
 * to the end of the header) plus an optional `__metadata__` map of strings; then the
 * raw little-endian tensor bytes. Files written here pad the header with spaces to a
 * multiple of 8 bytes and place tensors in name order, as the reference implementation
 * does, so Python's `safetensors.torch.load_file` reads them.
 *
 * Reading is strict, because a checkpoint that loads garbage silently is worse than
 * one that fails: the header length must fit the file, the JSON must parse to the
 * expected shape, each tensor's byte range must match its shape x dtype size, and the
 * ranges must tile the data section exactly (no overlap, no gap, nothing past the end).
 * Any violation raises a {@link SafetensorsError} naming the tensor and the problem.
 *
 * Supported dtypes: F32 and I32 (read and write), BF16 (read, widened to float32).
 *
 * @category constructors
 */
import { Data } from "effect"

/** Element types this module reads. */
export type SafetensorsDtype = "F32" | "I32" | "BF16"

/** One decoded tensor: its data in row-major order. */
export interface SafetensorsTensor {
  readonly dtype: SafetensorsDtype
  readonly shape: ReadonlyArray<number>
  /** Float32Array for F32 and BF16, Int32Array for I32. */
  readonly data: Float32Array | Int32Array
}

/** A decoded file. */
export interface SafetensorsFile {
  readonly tensors: ReadonlyMap<string, SafetensorsTensor>
  readonly metadata: Readonly<Record<string, string>>
}

/**
 * A safetensors buffer that is malformed or does not match what it claims.
 *
 * @example
 * throw new SafetensorsError({ source: "ckpt/model.safetensors", tensor: "lm_head.weight", problem: "needs 64 bytes, offsets give 60" })
 */
export class SafetensorsError extends Data.TaggedError("SafetensorsError")<{
  /** The file (or "buffer") being read or written. */
  readonly source: string
  /** The tensor concerned, or undefined for header-level problems. */
  readonly tensor: string | undefined
  readonly problem: string
}> {
  override get message(): string {
    const what = this.tensor === undefined ? "" : ` tensor "${this.tensor}":`
    return `safetensors ${this.source}:${what} ${this.problem}`
  }
}

const bytesPer: Record<SafetensorsDtype, number> = { F32: 4, I32: 4, BF16: 2 }

const isDtype = (x: unknown): x is SafetensorsDtype => x === "F32" || x === "I32" || x === "BF16"

const product = (shape: ReadonlyArray<number>): number => shape.reduce((a, b) => a * b, 1)

/**
 * Encode tensors (and optional string metadata) as a safetensors file.
 * Data arrays must hold exactly product(shape) elements.
 *
 * @example
 * const bytes = encodeSafetensors(new Map([["w", { dtype: "F32", shape: [2], data: new Float32Array([1, 2]) }]]), { step: "10" })
 */
export const encodeSafetensors = (
  tensors: ReadonlyMap<string, SafetensorsTensor>,
  metadata?: Readonly<Record<string, string>>,
): Uint8Array => {
  const names = [...tensors.keys()].sort()
  const header: Record<string, unknown> = {}
  if (metadata !== undefined && Object.keys(metadata).length > 0) header["__metadata__"] = { ...metadata }
  let offset = 0
  for (const name of names) {
    const t = tensors.get(name)
    if (t === undefined) continue
    if (name === "__metadata__") throw new SafetensorsError({ source: "encode", tensor: name, problem: "this name is reserved for metadata" })
    if (t.dtype === "BF16") throw new SafetensorsError({ source: "encode", tensor: name, problem: "writing BF16 is not supported; write F32" })
    const count = product(t.shape)
    if (count !== t.data.length) {
      throw new SafetensorsError({ source: "encode", tensor: name, problem: `shape [${t.shape.join(", ")}] needs ${count} elements, data has ${t.data.length}` })
    }
    const size = count * bytesPer[t.dtype]
    header[name] = { dtype: t.dtype, shape: [...t.shape], data_offsets: [offset, offset + size] }
    offset += size
  }
  const json = new TextEncoder().encode(JSON.stringify(header))
  const headerLength = Math.ceil(json.length / 8) * 8
  const out = new Uint8Array(8 + headerLength + offset)
  const view = new DataView(out.buffer)
  view.setBigUint64(0, BigInt(headerLength), true)
  out.set(json, 8)
  out.fill(0x20, 8 + json.length, 8 + headerLength) // space padding keeps the JSON valid
  let position = 8 + headerLength
  for (const name of names) {
    const t = tensors.get(name)
    if (t === undefined) continue
    // Write element by element through DataView so the bytes are little-endian on any host.
    if (t.data instanceof Float32Array) {
      for (let i = 0; i < t.data.length; i++) view.setFloat32(position + 4 * i, t.data[i] ?? 0, true)
    } else {
      for (let i = 0; i < t.data.length; i++) view.setInt32(position + 4 * i, t.data[i] ?? 0, true)
    }
    position += t.data.length * 4
  }
  return out
}

interface Entry {
  readonly name: string
  readonly dtype: SafetensorsDtype
  readonly shape: ReadonlyArray<number>
  readonly begin: number
  readonly end: number
}

/**
 * Decode and validate a safetensors file. `source` names it in errors.
 *
 * @example
 * const { tensors, metadata } = decodeSafetensors(await fs.readFile(path), path)
 * tensors.get("lm_head.weight")?.shape // [256, 64]
 */
export const decodeSafetensors = (bytes: Uint8Array, source = "buffer"): SafetensorsFile => {
  const fail = (problem: string, tensor?: string): never => {
    throw new SafetensorsError({ source, tensor, problem })
  }
  if (bytes.length < 8) fail(`file is ${bytes.length} bytes, shorter than the 8-byte header length`)
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const headerLength = view.getBigUint64(0, true)
  if (headerLength > BigInt(bytes.length - 8)) {
    fail(`header length ${headerLength} runs past the end of the file (${bytes.length - 8} bytes after the length field); the file is truncated or not safetensors`)
  }
  const n = Number(headerLength)
  let parsed: unknown
  try {
    parsed = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(8, 8 + n)))
  } catch (error) {
    fail(`header is not valid UTF-8 JSON (${error instanceof Error ? error.message : String(error)})`)
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) fail("header is not a JSON object")
  const header = parsed as Record<string, unknown>
  const dataStart = 8 + n
  const dataLength = bytes.length - dataStart

  const metadata: Record<string, string> = {}
  const rawMeta = header["__metadata__"]
  if (rawMeta !== undefined) {
    if (typeof rawMeta !== "object" || rawMeta === null || Array.isArray(rawMeta)) fail("__metadata__ is not an object of strings")
    for (const [k, v] of Object.entries(rawMeta as Record<string, unknown>)) {
      if (typeof v !== "string") fail(`__metadata__ entry "${k}" is not a string`)
      metadata[k] = v as string
    }
  }

  const entries: Array<Entry> = []
  for (const [name, raw] of Object.entries(header)) {
    if (name === "__metadata__") continue
    if (typeof raw !== "object" || raw === null) fail("entry is not an object", name)
    const e = raw as Record<string, unknown>
    const dtype = e["dtype"]
    if (!isDtype(dtype)) fail(`dtype ${JSON.stringify(dtype)} is not supported (F32, I32, BF16)`, name)
    const shape = e["shape"]
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      fail(`shape ${JSON.stringify(shape)} is not a list of non-negative integers`, name)
    }
    const offsets = e["data_offsets"]
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => Number.isSafeInteger(o) && o >= 0)) {
      fail(`data_offsets ${JSON.stringify(offsets)} is not a pair of non-negative integers`, name)
    }
    const [begin, end] = offsets as [number, number]
    const dims = shape as Array<number>
    if (end < begin) fail(`data_offsets [${begin}, ${end}] end before they begin`, name)
    if (end > dataLength) fail(`data_offsets [${begin}, ${end}] run past the end of the data (${dataLength} bytes); the file is truncated`, name)
    const expected = product(dims) * bytesPer[dtype as SafetensorsDtype]
    if (end - begin !== expected) {
      fail(`shape [${dims.join(", ")}] x ${dtype} needs ${expected} bytes, data_offsets give ${end - begin}`, name)
    }
    entries.push({ name, dtype: dtype as SafetensorsDtype, shape: dims, begin, end })
  }

  // The byte ranges must tile the data section: sorted by start, each begins where the last ended.
  const sorted = [...entries].sort((a, b) => a.begin - b.begin || a.end - b.end)
  let cursor = 0
  let previous: string | undefined
  for (const e of sorted) {
    if (e.begin < cursor) fail(`data_offsets [${e.begin}, ${e.end}] overlap those of "${previous ?? ""}"`, e.name)
    if (e.begin > cursor) fail(`bytes [${cursor}, ${e.begin}) before it belong to no tensor`, e.name)
    cursor = e.end
    previous = e.name
  }
  if (cursor !== dataLength) fail(`data section has ${dataLength} bytes but tensors cover only ${cursor}; trailing bytes belong to no tensor`)

  const tensors = new Map<string, SafetensorsTensor>()
  for (const e of entries) {
    const start = dataStart + e.begin
    const count = product(e.shape)
    const ev = new DataView(bytes.buffer, bytes.byteOffset + start, e.end - e.begin)
    let data: Float32Array | Int32Array
    if (e.dtype === "F32") {
      data = new Float32Array(count)
      for (let i = 0; i < count; i++) data[i] = ev.getFloat32(4 * i, true)
    } else if (e.dtype === "I32") {
      data = new Int32Array(count)
      for (let i = 0; i < count; i++) data[i] = ev.getInt32(4 * i, true)
    } else {
      // bfloat16 is the top half of a float32: shift its 16 bits up.
      const bits = new Uint32Array(count)
      for (let i = 0; i < count; i++) bits[i] = ev.getUint16(2 * i, true) << 16
      data = new Float32Array(bits.buffer)
    }
    tensors.set(e.name, { dtype: e.dtype, shape: e.shape, data })
  }
  return { tensors, metadata }
}
