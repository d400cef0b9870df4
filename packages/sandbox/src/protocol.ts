/**
 * Messages between the pool (host thread) and a sandbox worker.
 *
 * A worker serves one language. It answers `ready` once its interpreter is loaded,
 * then handles one `run` at a time (guest code runs synchronously inside it) and
 * answers each with a `result`. `retire` asks the host to replace the worker after
 * this result, because the interpreter inside it can no longer be trusted (a fatal
 * interpreter error, or a heap that grew far beyond its limit).
 *
 * @category models
 */
import type { FailureKind, Language } from "./observation.js"

/** Data a worker is started with. */
export interface WorkerInit {
  readonly language: Language
  /** Python only: the interrupt flag the host sets at the deadline (Int32, 2 = SIGINT). */
  readonly interrupt: SharedArrayBuffer
  /**
   * The capped output of the current call (an `OutputCapture`), shared with the host
   * so that what a guest printed survives the termination of its worker.
   */
  readonly output: SharedArrayBuffer
  readonly outputLimitBytes: number
  readonly pythonRecursionLimit: number
  readonly jsStackBytes: number
}

/** Host to worker. */
export type HostMessage =
  | {
    readonly type: "run"
    readonly id: number
    readonly code: string
    readonly session: string | null
    readonly timeoutMs: number
    readonly memoryMb: number
  }
  | { readonly type: "close-session"; readonly session: string }

/** What the guest did, as the worker saw it (the host adds the timing). */
export type GuestOutcome =
  | { readonly ok: true; readonly stdout: string; readonly value: string | null }
  | { readonly ok: false; readonly kind: FailureKind; readonly error: string; readonly stdout: string }

/** Worker to host. */
export type WorkerMessage =
  | { readonly type: "ready" }
  | { readonly type: "start-failed"; readonly error: string }
  | { readonly type: "result"; readonly id: number; readonly outcome: GuestOutcome; readonly retire: boolean }
