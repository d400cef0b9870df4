/**
 * A ceiling on the WebAssembly memory of a sandbox worker.
 *
 * Both interpreters keep every guest value in one `WebAssembly.Memory` per worker. That
 * memory lies outside V8's heap, so the worker's `resourceLimits` never see it, and
 * QuickJS's own limit misses most of it (built with emscripten, QuickJS cannot measure
 * a block, so its limit counts 8 bytes per allocation: an 8 MB typed array counts as 8
 * bytes). Refusing to grow the memory past a ceiling makes the interpreter's `malloc`
 * fail, which the guest sees as its language's out-of-memory error (`InternalError: out
 * of memory`, `MemoryError`) and the engine reports as kind "memory".
 *
 * @category constructors
 */

/** The ceiling of one worker (there is one per thread: it patches the shared prototype). */
export interface HeapCeiling {
  /**
   * Refuse to grow any WebAssembly memory past `bytes`, less what `reserved()` says is
   * taken elsewhere (the guest's files), until {@link HeapCeiling.lift}; clears `refused`.
   */
  readonly lower: (bytes: number, reserved?: () => number) => void
  /** Allow growth again (the engine's own work between calls must not fail). */
  readonly lift: () => void
  /** Whether a growth was refused since the last {@link HeapCeiling.lower}. */
  readonly refused: () => boolean
}

/** Bytes of a WebAssembly page. */
const pageBytes = 65536

/**
 * Patch `WebAssembly.Memory.prototype.grow` of this thread; call once, before loading the interpreter.
 *
 * @example
 * const ceiling = installHeapCeiling()
 * ceiling.lower(baseline + memoryMb * 1024 * 1024)
 * // ... run the guest ...
 * ceiling.lift()
 */
export const installHeapCeiling = (): HeapCeiling => {
  let ceiling = Number.POSITIVE_INFINITY
  let reservedBytes: () => number = () => 0
  let refused = false
  const grow = WebAssembly.Memory.prototype.grow
  Object.defineProperty(WebAssembly.Memory.prototype, "grow", {
    value: function(this: WebAssembly.Memory, pages: number): number {
      if (this.buffer.byteLength + pages * pageBytes + reservedBytes() > ceiling) {
        refused = true
        throw new RangeError("sandbox memory limit") // emscripten's resize catches this and fails the malloc
      }
      return grow.call(this, pages)
    },
    writable: false,
    configurable: false, // a guest that reaches the JS realm cannot lift it
  })
  return {
    lower: (bytes, reserved) => {
      ceiling = bytes
      reservedBytes = reserved ?? (() => 0)
      refused = false
    },
    lift: () => {
      ceiling = Number.POSITIVE_INFINITY
      reservedBytes = () => 0
    },
    refused: () => refused,
  }
}
