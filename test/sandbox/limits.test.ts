import { describe, expect, it } from "vitest"
import { SandboxError } from "@turnwise/dsl"
import { createSandboxPool, decodeLimits, defaultLimits } from "@turnwise/sandbox"

describe("sandbox limits", () => {
  it("fill what a pool's options leave out with the declared defaults", () => {
    expect(defaultLimits).toEqual({
      timeoutMs: 5_000,
      memoryMb: 256,
      outputLimitBytes: 65_536,
      graceMs: 500,
      pythonRecursionLimit: 1_000,
      jsStackBytes: 524_288,
    })
    expect(decodeLimits({ timeoutMs: 2_000 })).toEqual({ ...defaultLimits, timeoutMs: 2_000 })
  })

  it("refuse a bad value or an unknown key by name, before any worker starts", () => {
    expect(() => createSandboxPool({ size: 1, limits: { timeoutMs: 0 } })).toThrow(SandboxError)
    expect(() => createSandboxPool({ size: 1, limits: { timeoutMs: 0 } })).toThrow(/timeoutMs/)
    expect(() => decodeLimits({ memoryMB: 64 } as never)).toThrow(/memoryMB/)
  })
})
