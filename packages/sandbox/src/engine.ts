/**
 * The interface an interpreter offers inside a worker: run one cell, forget a session.
 *
 * @category models
 */
import type { GuestOutcome } from "./protocol.js"

/** One cell to run inside a worker. */
export interface Cell {
  readonly code: string
  /** Session id, or null for a fresh interpreter state. */
  readonly session: string | null
  readonly timeoutMs: number
  readonly memoryMb: number
}

/** An interpreter loaded in a worker. */
export interface Engine {
  /** Run a cell synchronously; `retire` asks the host to replace this worker afterwards. */
  readonly run: (cell: Cell) => { readonly outcome: GuestOutcome; readonly retire: boolean }
  /** Drop a session's state; unknown ids are ignored. */
  readonly closeSession: (session: string) => void
  /**
   * Clean-up to do after a call's result has been sent, before the next message is
   * taken (the Python engine restores the pristine interpreter here, off the caller's
   * latency).
   */
  readonly afterCall?: () => void
}
