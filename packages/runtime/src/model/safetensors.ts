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
 * Supported dtypes: F32 and I32 (read and write), BF16 (read, widened to float32;
 * written from float32 by rounding to nearest even), F16 (read, widened to float32).
 *
 * Besides whole-buffer {@link encodeSafetensors} / {@link decodeSafetensors}, the
 * pieces are exported for files too large to hold twice in memory: {@link
 * parseSafetensorsHeader} validates a header from the file's first bytes, {@link
 * decodeTensorBytes} widens one tensor's bytes, and {@link safetensorsHeader} /
 * {@link encodeTensorBytes} write a file tensor by tensor.
 *
 * @category constructors
 */
import { Data } from "effect"

/** Element types this module reads. */
export type SafetensorsDtype = "F32" | "I32" | "BF16" | "F16"

/** One decoded tensor: its data in row-major order. */
export interface SafetensorsTensor {
  readonly dtype: SafetensorsDtype
  readonly shape: ReadonlyArray<number>
  /** Float32Array for F32, BF16 and F16, Int32Array for I32. */
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

const bytesPer: Record<SafetensorsDtype, number> = { F32: 4, I32: 4, BF16: 2, F16: 2 }

const isDtype = (x: unknown): x is SafetensorsDtype => x === "F32" || x === "I32" || x === "BF16" || x === "F16"

const product = (shape: ReadonlyArray<number>): number => shape.reduce((a, b) => a * b, 1)

/** What {@link safetensorsHeader} needs to know of a tensor. */
export interface SafetensorsSpec {
  readonly dtype: SafetensorsDtype
  readonly shape: ReadonlyArray<number>
}

/**
 * The first bytes of a file holding `specs` (8-byte length, then the space-padded JSON
 * header), the order its tensors' data follows in (name order) and the data's length.
 *
 * @example
 * const { bytes, order } = safetensorsHeader(new Map([["w", { dtype: "F32", shape: [2] }]]))
 */
export const safetensorsHeader = (
  specs: ReadonlyMap<string, SafetensorsSpec>,
  metadata?: Readonly<Record<string, string>>,
): { readonly bytes: Uint8Array; readonly order: ReadonlyArray<string>; readonly dataLength: number } => {
  const order = [...specs.keys()].sort()
  const header: Record<string, unknown> = {}
  if (metadata !== undefined && Object.keys(metadata).length > 0) header["__metadata__"] = { ...metadata }
  let offset = 0
  for (const name of order) {
    const t = specs.get(name)
    if (t === undefined) continue
    if (name === "__metadata__") throw new SafetensorsError({ source: "encode", tensor: name, problem: "this name is reserved for metadata" })
    if (t.dtype === "F16") throw new SafetensorsError({ source: "encode", tensor: name, problem: "writing F16 is not supported; write F32 or BF16" })
    const size = product(t.shape) * bytesPer[t.dtype]
    header[name] = { dtype: t.dtype, shape: [...t.shape], data_offsets: [offset, offset + size] }
    offset += size
  }
  const json = new TextEncoder().encode(JSON.stringify(header))
  const headerLength = Math.ceil(json.length / 8) * 8
  const bytes = new Uint8Array(8 + headerLength)
  new DataView(bytes.buffer).setBigUint64(0, BigInt(headerLength), true)
  bytes.set(json, 8)
  bytes.fill(0x20, 8 + json.length) // space padding keeps the JSON valid
  return { bytes, order, dataLength: offset }
}

/** float32 -> bfloat16 bits, rounding to nearest even (NaN stays a quiet NaN). */
const scratch = new DataView(new ArrayBuffer(4))
const toBf16 = (x: number): number => {
  scratch.setFloat32(0, x, true)
  const bits = scratch.getUint32(0, true)
  if (Number.isNaN(x)) return 0x7fc0
  return ((bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16) & 0xffff
}

/** IEEE half-precision bits -> number. */
const fromF16 = (h: number): number => {
  const sign = h & 0x8000 ? -1 : 1
  const exponent = (h >>> 10) & 0x1f
  const mantissa = h & 0x3ff
  if (exponent === 0) return sign * mantissa * 2 ** -24
  if (exponent === 0x1f) return mantissa === 0 ? sign * Infinity : NaN
  return sign * (1 + mantissa / 1024) * 2 ** (exponent - 15)
}

/**
 * One tensor's data as little-endian bytes of `dtype` (float data for F32 and BF16,
 * integer data for I32).
 *
 * @example
 * encodeTensorBytes("BF16", Float32Array.from([1, -0.5])) // [0x80, 0x3f, 0x00, 0xbf]
 */
export const encodeTensorBytes = (dtype: SafetensorsDtype, data: Float32Array | Int32Array): Uint8Array => {
  const out = new Uint8Array(data.length * bytesPer[dtype])
  const view = new DataView(out.buffer)
  // Write element by element through DataView so the bytes are little-endian on any host.
  if (dtype === "F32") { for (let i = 0; i < data.length; i++) view.setFloat32(4 * i, data[i] ?? 0, true) }
  else if (dtype === "I32") { for (let i = 0; i < data.length; i++) view.setInt32(4 * i, data[i] ?? 0, true) }
  else if (dtype === "BF16") { for (let i = 0; i < data.length; i++) view.setUint16(2 * i, toBf16(data[i] ?? 0), true) }
  else throw new SafetensorsError({ source: "encode", tensor: undefined, problem: `writing ${dtype} is not supported; write F32 or BF16` })
  return out
}

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
  for (const [name, t] of tensors) {
    const count = product(t.shape)
    if (count !== t.data.length) {
      throw new SafetensorsError({
        source: "encode",
        tensor: name,
        problem: `shape [${t.shape.join(", ")}] needs ${count} elements, data has ${t.data.length}`,
      })
    }
  }
  const header = safetensorsHeader(tensors, metadata)
  const out = new Uint8Array(header.bytes.length + header.dataLength)
  out.set(header.bytes, 0)
  let position = header.bytes.length
  for (const name of header.order) {
    const t = tensors.get(name)
    if (t === undefined) continue
    const bytes = encodeTensorBytes(t.dtype, t.data)
    out.set(bytes, position)
    position += bytes.length
  }
  return out
}

/** Where one tensor's bytes lie, relative to the start of the data section. */
export interface SafetensorsEntry {
  readonly name: string
  readonly dtype: SafetensorsDtype
  readonly shape: ReadonlyArray<number>
  readonly begin: number
  readonly end: number
}

/** A validated header: metadata, tensors, and the file offset where data starts. */
export interface SafetensorsLayout {
  readonly metadata: Readonly<Record<string, string>>
  readonly entries: ReadonlyArray<SafetensorsEntry>
  readonly dataStart: number
}

/**
 * The header length N from a file's first 8 bytes, checked against the file's length
 * (so the first 8 + N bytes can then be read and given to {@link parseSafetensorsHeader}).
 *
 * @example
 * const n = safetensorsHeaderLength(first8, size, file)
 */
export const safetensorsHeaderLength = (first: Uint8Array, fileLength: number, source = "buffer"): number => {
  if (fileLength < 8 || first.length < 8) {
    throw new SafetensorsError({ source, tensor: undefined, problem: `file is ${fileLength} bytes, shorter than the 8-byte header length` })
  }
  const headerLength = new DataView(first.buffer, first.byteOffset, first.byteLength).getBigUint64(0, true)
  if (headerLength > BigInt(fileLength - 8)) {
    throw new SafetensorsError({
      source,
      tensor: undefined,
      problem: `header length ${headerLength} runs past the end of the file (${
        fileLength - 8
      } bytes after the length field); the file is truncated or not safetensors`,
    })
  }
  return Number(headerLength)
}

/**
 * Validate a header: `bytes` holds at least the file's first 8 + N bytes, `fileLength`
 * is the whole file's length. Every check of {@link decodeSafetensors} except reading
 * the data runs here.
 *
 * @example
 * const layout = parseSafetensorsHeader(prefix, size, "model-00001-of-00002.safetensors")
 */
export const parseSafetensorsHeader = (bytes: Uint8Array, fileLength: number, source = "buffer"): SafetensorsLayout => {
  const fail = (problem: string, tensor?: string): never => {
    throw new SafetensorsError({ source, tensor, problem })
  }
  const n = safetensorsHeaderLength(bytes, fileLength, source)
  if (bytes.length < 8 + n) fail(`only ${bytes.length} of the header's ${8 + n} bytes were given`)
  let parsed: unknown
  try {
    parsed = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(8, 8 + n)))
  } catch (error) {
    fail(`header is not valid UTF-8 JSON (${error instanceof Error ? error.message : String(error)})`)
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) fail("header is not a JSON object")
  const header = parsed as Record<string, unknown>
  const dataStart = 8 + n
  const dataLength = fileLength - dataStart
  const metadata: Record<string, string> = {}
  const rawMeta = header["__metadata__"]
  if (rawMeta !== undefined) {
    if (typeof rawMeta !== "object" || rawMeta === null || Array.isArray(rawMeta)) fail("__metadata__ is not an object of strings")
    for (const [k, v] of Object.entries(rawMeta as Record<string, unknown>)) {
      if (typeof v !== "string") fail(`__metadata__ entry "${k}" is not a string`)
      metadata[k] = v as string
    }
  }

  const entries: Array<SafetensorsEntry> = []
  for (const [name, raw] of Object.entries(header)) {
    if (name === "__metadata__") continue
    if (typeof raw !== "object" || raw === null) fail("entry is not an object", name)
    const e = raw as Record<string, unknown>
    const dtype = e["dtype"]
    if (!isDtype(dtype)) fail(`dtype ${JSON.stringify(dtype)} is not supported (F32, I32, BF16, F16)`, name)
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

  return { metadata, entries, dataStart }
}

/**
 * Widen one tensor's little-endian bytes to a typed array (Float32Array for F32, BF16
 * and F16; Int32Array for I32).
 *
 * @example
 * decodeTensorBytes("BF16", Uint8Array.from([0x80, 0x3f]), 1) // Float32Array [1]
 */
export const decodeTensorBytes = (dtype: SafetensorsDtype, bytes: Uint8Array, count: number): Float32Array | Int32Array => {
  const ev = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  if (dtype === "F32") {
    const data = new Float32Array(count)
    for (let i = 0; i < count; i++) data[i] = ev.getFloat32(4 * i, true)
    return data
  }
  if (dtype === "I32") {
    const data = new Int32Array(count)
    for (let i = 0; i < count; i++) data[i] = ev.getInt32(4 * i, true)
    return data
  }
  if (dtype === "F16") {
    const data = new Float32Array(count)
    for (let i = 0; i < count; i++) data[i] = fromF16(ev.getUint16(2 * i, true))
    return data
  }
  // bfloat16 is the top half of a float32: shift its 16 bits up.
  const bits = new Uint32Array(count)
  for (let i = 0; i < count; i++) bits[i] = ev.getUint16(2 * i, true) << 16
  return new Float32Array(bits.buffer)
}

/**
 * Decode and validate a safetensors file. `source` names it in errors.
 *
 * @example
 * const { tensors, metadata } = decodeSafetensors(await fs.readFile(path), path)
 * tensors.get("lm_head.weight")?.shape // [256, 64]
 */
export const decodeSafetensors = (bytes: Uint8Array, source = "buffer"): SafetensorsFile => {
  const { metadata, entries, dataStart } = parseSafetensorsHeader(bytes, bytes.length, source)
  const tensors = new Map<string, SafetensorsTensor>()
  for (const e of entries) {
    const data = decodeTensorBytes(e.dtype, bytes.subarray(dataStart + e.begin, dataStart + e.end), product(e.shape))
    tensors.set(e.name, { dtype: e.dtype, shape: e.shape, data })
  }
  return { tensors, metadata }
}
