/**
 * One interpreter per fresh call and per session, on one loaded interpreter.
 *
 * Loading Pyodide takes seconds, so a worker keeps one interpreter and switches what it
 * holds, like an operating system switching processes: before a call, the worker makes
 * the interpreter hold the caller's state (a session's, saved when another call took
 * the worker, or the pristine state for a fresh call or a new session); after a fresh
 * call it goes back to pristine at once. Each kind of state has its own {@link ContextPart}:
 * the WebAssembly heap (heap-image.ts) and the guest's files and open file descriptors
 * (guest-files.ts).
 *
 * @category internals
 */

/** One kind of interpreter state that can be saved, loaded, and reset to pristine (methods, so that parts of different `Saved` types fit one list). */
export interface ContextPart<Saved> {
  /** Take the current state out, for a later {@link ContextPart.load}. */
  save(): Saved
  /** Put a saved state back in place of the current one (which is pristine, saved, or to be discarded). */
  load(saved: Saved): void
  /** Back to the pristine state, discarding the current one. */
  reset(): void
  /** Release a saved state that will never be loaded (when it holds more than memory). */
  discard?(saved: Saved): void
  /** Bytes a saved state holds, counted against {@link SwitcherOptions.maxSavedBytes}. */
  bytes?(saved: Saved): number
}

/** Options of {@link contextSwitcher}. */
export interface SwitcherOptions {
  /**
   * Most bytes the saved sessions may hold together. Past it, the largest saved sessions
   * are dropped and start again from the pristine state on their next call, like a
   * notebook whose kernel restarted (default: no limit).
   */
  readonly maxSavedBytes?: number
}

/** Which interpreter the worker holds. */
export interface Contexts {
  /**
   * Make the interpreter hold `session`'s state (saving the session that was loaded), or
   * the pristine state for a fresh call (`null`) or a new session. Returns whether the
   * state is new: a fresh call, or a session's first call.
   */
  readonly enter: (session: string | null) => boolean
  /** After a call: a fresh call's state is discarded now, so its leftovers do not linger. */
  readonly leave: (session: string | null) => void
  /** Forget a session's state. */
  readonly close: (session: string) => void
  /** How many sessions are saved (not loaded). */
  readonly savedSessions: () => number
}

/**
 * Switch the given parts together. The state when this is called is the pristine one.
 *
 * @example
 * const contexts = contextSwitcher([heapImages(access), guestFiles(fs)])
 * contexts.enter("session-1") // true: its first call
 * contexts.enter(null)        // saves session-1, pristine for a fresh call
 * contexts.leave(null)
 */
export const contextSwitcher = (parts: ReadonlyArray<ContextPart<unknown>>, options: SwitcherOptions = {}): Contexts => {
  const saved = new Map<string, ReadonlyArray<unknown>>()
  const sizeOf = (state: ReadonlyArray<unknown>): number => parts.reduce((sum, part, index) => sum + (part.bytes?.(state[index]) ?? 0), 0)
  const drop = (session: string): void => {
    const state = saved.get(session)
    if (state !== undefined) parts.forEach((part, index) => part.discard?.(state[index]))
    saved.delete(session)
  }
  const keepWithinBudget = (): void => {
    const limit = options.maxSavedBytes ?? Infinity
    const sizes = [...saved].map(([session, state]) => ({ session, bytes: sizeOf(state) })).sort((a, b) => b.bytes - a.bytes)
    let total = sizes.reduce((sum, entry) => sum + entry.bytes, 0)
    for (const { session, bytes } of sizes) {
      if (total <= limit) break
      drop(session)
      total -= bytes
    }
  }
  /** The session whose state is loaded; null when the state is pristine or a fresh call's. */
  let loaded: string | null = null
  let pristine = true

  const reset = (): void => {
    for (const part of parts) part.reset()
    loaded = null
    pristine = true
  }

  return {
    enter: (session) => {
      if (session !== null && session === loaded) return false
      if (loaded !== null) {
        saved.set(loaded, parts.map((part) => part.save()))
        keepWithinBudget()
      }
      const state = session === null ? undefined : saved.get(session)
      if (state === undefined || session === null) {
        if (!pristine) reset()
        loaded = session
        pristine = false
        return true
      }
      saved.delete(session)
      parts.forEach((part, index) => part.load(state[index]))
      loaded = session
      pristine = false
      return false
    },
    leave: (session) => {
      if (session === null) reset()
    },
    close: (session) => {
      drop(session)
      if (loaded === session) reset()
    },
    savedSessions: () => saved.size,
  }
}
