import { describe, expect, it } from "vitest"
import { watchDictVersions } from "../../packages/runtime/src/sandbox/dict-versions.js"

// A fake interpreter heap: "dicts" at 64-byte strides, their version tag at offset 16.
const heapWith = (dicts: number): { heap: ArrayBuffer; bump: (address: number) => void } => {
  const heap = new ArrayBuffer(64 * (dicts + 1))
  const view = new DataView(heap)
  return { heap, bump: (address) => view.setUint32(address + 20, view.getUint32(address + 20, true) + 1, true) }
}

describe("dict version tags", () => {
  it("reports the dicts whose tag changed since the last rebase", () => {
    const { heap, bump } = heapWith(3)
    const probe = 64 * 3
    const versions = watchDictVersions([0, 64, 128], { heap: () => heap, address: probe, touch: () => bump(probe), idle: () => undefined })
    expect(versions.changed()).toEqual([])
    bump(64)
    bump(128)
    expect(versions.changed()).toEqual([1, 2])
    versions.rebase()
    expect(versions.changed()).toEqual([])
  })

  it("reports every dict as possibly changed when a write does not move the probe's tag", () => {
    const { heap } = heapWith(1)
    const versions = watchDictVersions([0], { heap: () => heap, address: 64, touch: () => undefined, idle: () => undefined })
    expect(versions.changed()).toBeNull()
  })

  it("reports every dict as possibly changed when the probe's tag moves without a write", () => {
    const { heap, bump } = heapWith(1)
    const versions = watchDictVersions([0], { heap: () => heap, address: 64, touch: () => bump(64), idle: () => bump(64) })
    expect(versions.changed()).toBeNull()
  })
})
