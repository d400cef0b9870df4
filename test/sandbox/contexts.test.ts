import { describe, expect, it } from "vitest"
import { contextSwitcher } from "../../packages/sandbox/src/contexts.js"
import type { ContextPart } from "../../packages/sandbox/src/contexts.js"
import { heapImages } from "../../packages/sandbox/src/heap-image.js"

/** A fake interpreter heap: 256 KiB of memory, a break, a stack pointer. */
const fakeHeap = () => {
  const state = { memory: new Uint8Array(256 * 1024), brk: 100_000, stackPointer: { value: 5000 } }
  state.memory.forEach((_, i) => (state.memory[i] = i % 251))
  return { state, access: { bytes: () => state.memory, brk: () => state.brk, stackPointer: state.stackPointer } }
}

describe("heapImages", () => {
  it("saves only the pages that differ from the pristine heap, and loads them back exactly", () => {
    const { state, access } = fakeHeap()
    const pristine = state.memory.slice(0, state.brk)
    const heap = heapImages(access)
    state.memory[40_000] = 7 // page 2 (16 KiB pages)
    state.memory[99_999] = 9 // page 6, the last one below the break
    state.brk = 140_000 // grown: pages 6..8 lie beyond the pristine break
    state.memory.fill(3, 100_000, 140_000)
    state.stackPointer.value = 4000
    const image = heap.save()
    expect([...image.pages]).toEqual([2, 6, 7, 8])
    const expected = state.memory.slice(0, 140_000)
    heap.reset()
    expect(state.memory.slice(0, pristine.length)).toEqual(pristine)
    expect(state.stackPointer.value).toBe(5000)
    state.memory.fill(0xee, 0, 150_000) // whatever another call left behind
    heap.load(image)
    expect(state.memory.slice(0, 140_000)).toEqual(expected)
    expect(state.stackPointer.value).toBe(4000)
  })
})

describe("contextSwitcher", () => {
  /** A part whose state is one string, recording what was done to it. */
  const recordingPart = () => {
    const log: Array<string> = []
    const part: ContextPart<string> & { value: string } = {
      value: "pristine",
      save() {
        log.push(`save ${part.value}`)
        const saved = part.value
        part.value = "taken"
        return saved
      },
      load(saved) {
        log.push(`load ${saved}`)
        part.value = saved
      },
      reset() {
        log.push("reset")
        part.value = "pristine"
      },
      discard(saved) {
        log.push(`discard ${saved}`)
      },
    }
    return { part, log }
  }

  it("gives fresh calls and new sessions the pristine state and brings a session's state back", () => {
    const { part, log } = recordingPart()
    const contexts = contextSwitcher([part])
    expect(contexts.enter(null)).toBe(true) // already pristine: nothing to do
    part.value = "fresh work"
    contexts.leave(null)
    expect(contexts.enter("a")).toBe(true)
    part.value = "a's work"
    contexts.leave("a") // a session stays loaded
    expect(contexts.enter("a")).toBe(false)
    expect(contexts.enter("b")).toBe(true) // saves a, then pristine for b
    part.value = "b's work"
    expect(contexts.enter(null)).toBe(true) // saves b
    expect(part.value).toBe("pristine")
    contexts.leave(null)
    expect(contexts.enter("a")).toBe(false)
    expect(part.value).toBe("a's work")
    expect(contexts.savedSessions()).toBe(1)
    contexts.close("b")
    contexts.close("a")
    expect(part.value).toBe("pristine")
    expect(contexts.savedSessions()).toBe(0)
    expect(log).toEqual(["reset", "save a's work", "reset", "save b's work", "reset", "reset", "load a's work", "discard b's work", "reset"])
  })
})

describe("contextSwitcher's memory budget", () => {
  it("drops the largest saved sessions past maxSavedBytes, and they start again from pristine", () => {
    let value = "pristine"
    const dropped: Array<string> = []
    const part: ContextPart<string> = {
      save: () => value,
      load: (saved) => (value = saved),
      reset: () => (value = "pristine"),
      discard: (saved) => dropped.push(saved),
      bytes: (saved) => saved.length,
    }
    const contexts = contextSwitcher([part], { maxSavedBytes: 12 })
    contexts.enter("a")
    value = "aaaa" // 4 bytes
    contexts.enter("b")
    value = "bbbbbbbbbb" // 10 bytes: 14 > 12 once saved
    contexts.enter("c")
    expect(dropped).toEqual(["bbbbbbbbbb"])
    expect(contexts.savedSessions()).toBe(1)
    expect(contexts.enter("b")).toBe(true) // a new state
    expect(value).toBe("pristine")
    expect(contexts.enter("a")).toBe(false)
    expect(value).toBe("aaaa")
  })
})
