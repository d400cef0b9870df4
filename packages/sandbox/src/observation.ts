/**
 * What a guest did, as the host reports it, and the capped output buffer that
 * collects it inside a worker (shared with the host).
 *
 * The observation and error types are the ones of the DSL's `Sandbox` service, so
 * the runtime implementation and the rollout agree on one shape. Output is capped in
 * bytes: a guest printing 10 MB keeps the first `limit` bytes and the rest is
 * counted and replaced by a marker `…[truncated N bytes]`.
 *
 * @category models
 */
export type { Observation, SandboxRequest } from "@turnwise/dsl"
export { SandboxError } from "@turnwise/dsl"

/** Interpreters a sandbox offers. */
export type Language = "js" | "python"

/** Every language, in a fixed order. */
export const languages: ReadonlyArray<Language> = ["js", "python"]

/** Why a guest failed (the `kind` of a failed observation). */
export type FailureKind = "timeout" | "memory" | "crash" | "error"

/**
 * The marker that replaces dropped output.
 *
 * @example
 * truncationMarker(10) // "…[truncated 10 bytes]"
 */
export const truncationMarker = (droppedBytes: number): string => `…[truncated ${droppedBytes} bytes]`

const encoder = new TextEncoder()
const decoder = new TextDecoder("utf-8", { fatal: false })

// Layout of a capture's buffer: the bytes kept (Int32, read and written with Atomics, so a
// reader on another thread sees every byte it counts), 4 bytes of padding, the bytes
// dropped (Float64), then the kept bytes themselves.
const headerBytes = 16

/**
 * A byte-capped output buffer. A worker's capture lives in a `SharedArrayBuffer` that
 * the host holds too: when the host has to terminate a worker (a guest that outlived
 * its deadline, a crash), it still reads what the guest printed before that. No message
 * per write is needed, and what a guest prints past the cap is only counted.
 *
 * @example
 * const out = OutputCapture.shared(4)
 * out.write("hello\n")
 * out.text() // "hell…[truncated 2 bytes]"
 */
export class OutputCapture {
  private readonly kept: Int32Array // one element
  private readonly dropped: Float64Array // one element
  private readonly bytes: Uint8Array

  /** A capture of `limitBytes` in shared memory, for a worker and its host. */
  static shared(limitBytes: number): OutputCapture {
    return new OutputCapture(new SharedArrayBuffer(headerBytes + Math.max(0, Math.floor(limitBytes))))
  }

  /** A view of a buffer made by {@link OutputCapture.shared} (the worker's side). */
  constructor(readonly buffer: SharedArrayBuffer) {
    this.kept = new Int32Array(buffer, 0, 1)
    this.dropped = new Float64Array(buffer, 8, 1)
    this.bytes = new Uint8Array(buffer, headerBytes)
  }

  /** Forget everything written so far. */
  reset(): void {
    this.dropped[0] = 0
    Atomics.store(this.kept, 0, 0)
  }

  /** Append text or raw bytes; what does not fit is only counted. */
  write(chunk: string | Uint8Array): void {
    const kept = Atomics.load(this.kept, 0)
    const room = this.bytes.length - kept
    // Measure a string before encoding so a 100 MB string past the cap is never copied.
    const size = typeof chunk === "string" ? Buffer.byteLength(chunk, "utf8") : chunk.length
    if (room <= 0) {
      this.dropped[0]! += size
      return
    }
    const bytes = typeof chunk === "string" ? encoder.encode(size <= room ? chunk : chunk.slice(0, room)) : chunk
    const take = Math.min(room, bytes.length)
    this.bytes.set(bytes.subarray(0, take), kept)
    // Published after the bytes, so a reader never counts bytes not yet copied.
    Atomics.store(this.kept, 0, kept + take)
    this.dropped[0]! += size - take
  }

  /** Bytes written since the last reset, kept or dropped. */
  get totalBytes(): number {
    return Atomics.load(this.kept, 0) + this.dropped[0]!
  }

  /** The kept output, followed by the truncation marker when anything was dropped. */
  text(): string {
    // slice() copies into an unshared buffer, which TextDecoder accepts.
    const body = decoder.decode(this.bytes.slice(0, Atomics.load(this.kept, 0)))
    const dropped = this.dropped[0]!
    return dropped > 0 ? body + truncationMarker(dropped) : body
  }
}

/**
 * Cap one string to `limitBytes` UTF-8 bytes with the truncation marker.
 *
 * @example
 * capText("abcdef", 3) // "abc…[truncated 3 bytes]"
 */
export const capText = (text: string, limitBytes: number): string => {
  const size = Buffer.byteLength(text, "utf8")
  if (size <= limitBytes) return text
  const kept = encoder.encode(text.slice(0, limitBytes)).subarray(0, limitBytes)
  return decoder.decode(kept) + truncationMarker(size - kept.length)
}
