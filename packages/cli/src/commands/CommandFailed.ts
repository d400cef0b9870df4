/**
 * A command started its work and the work failed (a bad setting found while
 * resolving the run, a missing file, a corrupted checkpoint): printed as one
 * `error: ...` line, exit code 1. Mistakes in the command line itself are effect/cli's
 * errors, printed with the usage, exit code 2.
 *
 * @category errors
 */
import { Data, Effect } from "effect"

/** The readable message of anything thrown, including Effect failures wrapped in an Error. */
export const describeError = (error: unknown): string => {
  if (error instanceof Error) {
    const cause = (error as { readonly cause?: unknown }).cause
    const message = error.message
    if ((message === "" || /An error has occurred/.test(message)) && cause !== undefined) return describeError(cause)
    return message
  }
  return String(error)
}

/**
 * The work of a command failed; `cause` is what the run code threw.
 *
 * @category errors
 */
export class CommandFailed extends Data.TaggedError("CommandFailed")<{ readonly cause: unknown }> {
  override get message(): string {
    return describeError(this.cause)
  }
}

/**
 * Run a Promise-returning step of a command; a rejection becomes {@link CommandFailed}.
 *
 * @example
 * const path = yield* attempt(() => writeRunReport(dir))
 *
 * @category constructors
 */
export const attempt = <A>(work: () => Promise<A>): Effect.Effect<A, CommandFailed> =>
  Effect.tryPromise({ try: work, catch: (cause) => new CommandFailed({ cause }) })
