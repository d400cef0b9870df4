/**
 * What a guest did, as the host reports it, and the capped output buffer that
 * collects it inside a worker.
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

/**
 * A byte-capped output buffer.
 *
 * @example
 * const out = new OutputCapture(4)
 * out.write("hello\n")
 * out.text() // "hell…[truncated 2 bytes]"
 */
export class OutputCapture {
  private readonly chunks: Array<Uint8Array> = []
  private kept = 0
  private dropped = 0

  constructor(private readonly limitBytes: number) {}

  /** Append text or raw bytes; what does not fit is only counted. */
  write(chunk: string | Uint8Array): void {
    const room = this.limitBytes - this.kept
    if (typeof chunk === "string") {
      // Measure before encoding so a 100 MB string past the cap is never copied.
      const size = Buffer.byteLength(chunk, "utf8")
      if (room <= 0) {
        this.dropped += size
        return
      }
      const bytes = encoder.encode(size <= room ? chunk : chunk.slice(0, room))
      this.keep(bytes.subarray(0, room))
      this.dropped += size - Math.min(room, bytes.length)
      return
    }
    if (room <= 0) {
      this.dropped += chunk.length
      return
    }
    this.keep(chunk.slice(0, room))
    this.dropped += Math.max(0, chunk.length - room)
  }

  /** Bytes written so far, kept or dropped. */
  get totalBytes(): number {
    return this.kept + this.dropped
  }

  /** The kept output, followed by the truncation marker when anything was dropped. */
  text(): string {
    const all = new Uint8Array(this.kept)
    let at = 0
    for (const c of this.chunks) {
      all.set(c, at)
      at += c.length
    }
    const body = decoder.decode(all)
    return this.dropped > 0 ? body + truncationMarker(this.dropped) : body
  }

  private keep(bytes: Uint8Array): void {
    this.chunks.push(bytes)
    this.kept += bytes.length
  }
}

/**
 * Cap one string to `limitBytes` UTF-8 bytes with the truncation marker.
 *
 * @example
 * capText("abcdef", 3) // "abc…[truncated 3 bytes]"
 */
export const capText = (text: string, limitBytes: number): string => {
  const out = new OutputCapture(limitBytes)
  out.write(text)
  return out.text()
}
