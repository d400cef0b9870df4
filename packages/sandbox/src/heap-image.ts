/**
 * The WebAssembly heap as a context part: how a Python worker gives every fresh call,
 * and every session, an interpreter of its own (see contexts.ts).
 *
 * Everything CPython knows lives in the WebAssembly linear memory below the program
 * break (`sbrk(0)`): modules, objects, state inside C objects (codec and atexit
 * registries, audit hooks, `functools` caches, the import system's caches), the
 * allocator's own books, and the C stack, which lies below the heap. Copying those
 * bytes back is a complete return to an earlier state, where restoring Python objects
 * one namespace at a time only covers the namespaces it knows of. Restoring the 19 MB
 * of a pristine Pyodide is one memcpy, about 1.3 ms.
 *
 * A saved session keeps only the pages where its heap differs from the pristine one
 * (found with memcmp, about 1 ms), so a session that changed little costs little memory.
 * Memory above the break is never copied: the allocator treats it as unallocated and
 * does not assume it is zeroed (the sandbox tests run allocation-heavy calls after
 * restoring over a heap a memory bomb left behind).
 *
 * @category internals
 */
import type { ContextPart } from "./contexts.js"

/** Bytes per page when comparing a session's heap with the pristine one. */
const pageBytes = 16 * 1024

/** How this module reaches the interpreter's memory. */
export interface HeapAccess {
  /** The heap now (a new view after each growth). */
  readonly bytes: () => Uint8Array
  /** The program break: every allocated byte lies below it. */
  readonly brk: () => number
  /** The C stack pointer (a WebAssembly global; the same between calls, saved all the same). */
  readonly stackPointer: { value: number }
}

/** A heap, as the pages where it differs from the pristine one. */
export interface HeapImage {
  readonly length: number
  readonly stackPointer: number
  readonly pages: Int32Array
  readonly data: Uint8Array
}

/**
 * Record the heap as it is now as the pristine one.
 *
 * @example
 * const heap = heapImages({ bytes: () => module.HEAPU8, brk: () => module._sbrk(0), stackPointer: module.___stack_pointer })
 * const image = heap.save() // ... heap.load(image)
 */
export const heapImages = (access: HeapAccess): ContextPart<HeapImage> => {
  const pristineLength = access.brk()
  const pristine = access.bytes().slice(0, pristineLength)
  const pristineStack = access.stackPointer.value
  const reference = Buffer.from(pristine.buffer, pristine.byteOffset, pristine.byteLength) // for memcmp

  const reset = (): void => {
    access.bytes().set(pristine)
    access.stackPointer.value = pristineStack
  }

  const save = (): HeapImage => {
    const length = access.brk()
    const heap = Buffer.from(access.bytes().buffer, 0, length)
    const dirty: Array<number> = []
    for (let start = 0; start < length; start += pageBytes) {
      const end = Math.min(start + pageBytes, length)
      if (end > pristineLength || heap.compare(reference, start, end, start, end) !== 0) dirty.push(start / pageBytes)
    }
    const data = new Uint8Array(dirty.length * pageBytes)
    dirty.forEach((page, k) => {
      const start = page * pageBytes
      data.set(heap.subarray(start, Math.min(start + pageBytes, length)), k * pageBytes)
    })
    return { length, stackPointer: access.stackPointer.value, pages: Int32Array.from(dirty), data }
  }

  const load = (image: HeapImage): void => {
    const heap = access.bytes() // memory never shrinks, so it still spans image.length
    heap.set(pristine)
    image.pages.forEach((page, k) => {
      const start = page * pageBytes
      const size = Math.min(pageBytes, image.length - start)
      heap.set(image.data.subarray(k * pageBytes, k * pageBytes + size), start)
    })
    access.stackPointer.value = image.stackPointer
  }

  return { save, load, reset, bytes: (image) => image.data.byteLength }
}
