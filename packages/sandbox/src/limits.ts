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

/** Limits applied to each execution. */
export interface SandboxLimits {
  /** Wall-clock deadline per call, in milliseconds. */
  readonly timeoutMs: number
  /** Memory the guest may allocate per call or session, in MiB. */
  readonly memoryMb: number
  /** Captured output (stdout, stderr, final value) kept per call, in bytes; the rest is dropped with a marker. */
  readonly outputLimitBytes: number
  /** Milliseconds after the deadline before a guest that ignored the interrupt has its worker terminated. */
  readonly graceMs: number
  /** Python recursion limit (`sys.setrecursionlimit`) set before every call. */
  readonly pythonRecursionLimit: number
  /** QuickJS interpreter stack, in bytes (deep recursion raises a catchable stack-overflow error). */
  readonly jsStackBytes: number
}

/**
 * The defaults: 5 s, 256 MiB, 64 KiB of output, 500 ms of grace.
 *
 * @example
 * const limits = { ...defaultLimits, timeoutMs: 2_000 }
 */
export const defaultLimits: SandboxLimits = {
  timeoutMs: 5_000,
  memoryMb: 256,
  outputLimitBytes: 64 * 1024,
  graceMs: 500,
  pythonRecursionLimit: 1_000,
  jsStackBytes: 512 * 1024,
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
