/**
 * Limits a sandbox enforces on every guest, and their defaults.
 *
 * A call may lower or raise `timeoutMs` and `memoryMb`; the output cap and the
 * grace period are pool-wide. The grace period is how long the host waits after the
 * deadline for the in-guest interrupt to stop the code before it terminates the
 * worker (a guest that catches the interrupt and keeps looping, or one blocked in
 * `time.sleep`, is stopped this way).
 *
 * @category models
 */
import { Schema } from "effect"
import { defaultsOf, setting } from "@turnwise/core"
import { SandboxError } from "./observation.js"

const PositiveInt = Schema.Int.check(Schema.isGreaterThanOrEqualTo(1))

/**
 * Limits applied to each execution, with their defaults: 5 s, 256 MiB, 64 KiB of output,
 * 500 ms of grace. (A training rollout passes its own `rollout.timeoutMs` and
 * `rollout.memoryMb` with every call; these defaults serve direct users of the pool.)
 */
export const SandboxLimits = Schema.Struct({
  timeoutMs: setting(PositiveInt, 5_000, "Wall-clock deadline per call, in milliseconds"),
  memoryMb: setting(PositiveInt, 256, "Memory the guest may allocate per call or session, heap and files together, in MiB"),
  outputLimitBytes: setting(PositiveInt, 64 * 1024, "Captured output (stdout, stderr, final value) kept per call, in bytes; the rest is dropped with a marker"),
  graceMs: setting(PositiveInt, 500, "Milliseconds after the deadline before a guest that ignored the interrupt has its worker terminated"),
  pythonRecursionLimit: setting(PositiveInt, 1_000, "Python recursion limit (sys.setrecursionlimit) set before every call"),
  jsStackBytes: setting(PositiveInt, 512 * 1024, "QuickJS interpreter stack, in bytes (deep recursion raises a catchable stack-overflow error)"),
})
export type SandboxLimits = typeof SandboxLimits.Type

/**
 * Every default limit.
 *
 * @example
 * const limits = { ...defaultLimits, timeoutMs: 2_000 }
 */
export const defaultLimits: SandboxLimits = defaultsOf(SandboxLimits)

/**
 * A pool's limits from what its options give (the rest take their defaults); a bad
 * value is a SandboxError naming the field.
 *
 * @example
 * decodeLimits({ timeoutMs: 2_000 }).memoryMb // 256
 */
export const decodeLimits = (given: Partial<SandboxLimits> = {}): SandboxLimits => {
  try {
    return Schema.decodeUnknownSync(SandboxLimits)(given, { onExcessProperty: "error" })
  } catch (error) {
    throw new SandboxError({ reason: `bad sandbox limits: ${(error instanceof Error ? error.message : String(error)).replace(/\s+/g, " ")}` })
  }
}

/** Upper bounds a request may not exceed (a bad request must not disable the limits). */
export const maxTimeoutMs = 10 * 60_000
export const maxMemoryMb = 2_048

/**
 * Clamp a requested limit into [1, max], falling back to the default when absent or not finite.
 *
 * @example
 * clampLimit(undefined, 5000, maxTimeoutMs) // 5000
 */
export const clampLimit = (requested: number | undefined, fallback: number, max: number): number =>
  requested === undefined || !Number.isFinite(requested) ? fallback : Math.min(max, Math.max(1, Math.floor(requested)))
