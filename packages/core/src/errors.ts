/**
 * Errors raised by the algorithm catalogue.
 *
 * Core functions are pure and synchronous so that a user can call them from any
 * trainer. Bad input (NaN rewards, empty groups, arrays of mismatched length) never
 * turns into NaN advantages: it raises an {@link AlgorithmInputError} that names the
 * function, the offending place (`group 2, trajectory 0, turn 3`) and what was wrong.
 * The DSL lifts these into the Effect error channel as typed failures.
 *
 * @category errors
 */
import { Data } from "effect"

/**
 * Input to a catalogue function violated its contract.
 *
 * @example
 * throw new AlgorithmInputError({ fn: "discountedReturns", where: "group 0, trajectory 1, turn 2", problem: "reward is NaN" })
 */
export class AlgorithmInputError extends Data.TaggedError("AlgorithmInputError")<{
  /** The catalogue function that rejected its input. */
  readonly fn: string
  /** Where in the input the problem is (a path such as `group 0, trajectory 1`). */
  readonly where: string
  /** What is wrong, in words. */
  readonly problem: string
}> {
  override get message(): string {
    return `${this.fn}: ${this.problem} (at ${this.where})`
  }
}

/**
 * A catalogue lookup named an entry that does not exist.
 *
 * @example
 * throw new UnknownComponentError({ kind: "advantage estimator", name: "grpo2", known: ["grpo", "rloo"] })
 */
export class UnknownComponentError extends Data.TaggedError("UnknownComponentError")<{
  readonly kind: string
  readonly name: string
  readonly known: ReadonlyArray<string>
}> {
  override get message(): string {
    return `unknown ${this.kind} "${this.name}"; known: ${this.known.join(", ")}`
  }
}

/** Every error the core package raises. */
export type CoreError = AlgorithmInputError | UnknownComponentError
