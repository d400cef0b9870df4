/**
 * Stages: catalogue components with their options fixed, ready to run as Effects.
 *
 * A stage is a value: a name, a JSON-encodable configuration validated by the
 * component's Schema, and an implementation. {@link use} turns a catalogue entry and
 * partial options into a stage; {@link runStage} runs it as an Effect whose failures
 * are typed {@link StageError}s naming the stage (bad input such as NaN rewards
 * surfaces here, never as NaN advantages).
 *
 * @category constructors
 */
import { Data, Effect, Schema } from "effect"
import { AlgorithmInputError } from "@turnwise/core"
import type { Component } from "@turnwise/core"

/** Any catalogue entry (its `run` is a method, so any input type fits `never`). */
export type AnyComponent = Component<never, unknown, unknown>

/** The options type of an entry. */
export type OptionsOf<E> = E extends Component<never, unknown, infer O> ? O : never
/** The input type of an entry. */
export type InputOf<E> = E extends Component<infer I, unknown, unknown> ? I : never
/** The output type of an entry. */
export type OutputOf<E> = E extends Component<never, infer Out, unknown> ? Out : never

/** An entry with its options fixed. */
export interface Use<E extends AnyComponent> {
  readonly name: string
  readonly entry: E
  readonly options: OptionsOf<E>
}

/** A stage failed: its input broke the algorithm's contract, or its options were invalid. */
export class StageError extends Data.TaggedError("StageError")<{
  readonly stage: string
  readonly reason: string
}> {
  override get message(): string {
    return `stage ${this.stage}: ${this.reason}`
  }
}

/** Options could not be decoded; `path` names the bad field (e.g. `returns.options.gamma`). */
export class ConfigError extends Data.TaggedError("ConfigError")<{ readonly path: string; readonly problem: string }> {
  override get message(): string {
    return `config error at ${this.path}: ${this.problem}`
  }
}

/**
 * Decode options for an entry: defaults first, then the given values; unknown keys
 * and wrong types are rejected with the path of the bad field.
 */
export const decodeOptions = <E extends AnyComponent>(entry: E, raw: unknown, path: string): OptionsOf<E> => {
  if (raw !== undefined && (typeof raw !== "object" || raw === null || Array.isArray(raw))) {
    throw new ConfigError({ path, problem: `expected an object of options, got ${JSON.stringify(raw)}` })
  }
  const merged = { ...(entry.defaults as object), ...((raw ?? {}) as object) }
  try {
    return Schema.decodeUnknownSync(entry.options)(merged, { onExcessProperty: "error" }) as OptionsOf<E>
  } catch (error) {
    throw new ConfigError({ path, problem: schemaProblem(error) })
  }
}

/** Decode a settings section with defaults merged in; unknown keys are errors. */
export const decodeSection = <S extends Schema.Codec<unknown, unknown>>(schema: S, raw: unknown, path: string): S["Type"] => {
  try {
    return Schema.decodeUnknownSync(schema)(raw, { onExcessProperty: "error" })
  } catch (error) {
    throw new ConfigError({ path, problem: schemaProblem(error) })
  }
}

/** The readable part of a Schema error (message with the field path). */
export const schemaProblem = (error: unknown): string => (error instanceof Error ? error.message : String(error)).replace(/\s+/g, " ").trim()

/**
 * Fix an entry's options.
 *
 * @example
 * const returns = use(returnEstimators.discounted, { gamma: 0.95 })
 */
export const use = <E extends AnyComponent>(entry: E, options?: Partial<OptionsOf<E>>): Use<E> => ({
  name: entry.name,
  entry,
  options: decodeOptions(entry, options, entry.name),
})

/**
 * Run a stage's algorithm as an Effect.
 *
 * @example
 * const rewards = yield* runStage(recipe.reward, { batch })
 */
export const runStage = <E extends AnyComponent>(stage: Use<E>, input: InputOf<E>): Effect.Effect<OutputOf<E>, StageError> =>
  Effect.try({
    try: () => (stage.entry as Component<InputOf<E>, OutputOf<E>, OptionsOf<E>>).run(input, stage.options),
    catch: (error) =>
      new StageError({
        stage: stage.name,
        reason: error instanceof AlgorithmInputError ? error.message : `unexpected error: ${error instanceof Error ? error.message : String(error)}`,
      }),
  })

/** The JSON form of a stage. */
export interface EncodedStage {
  readonly name: string
  readonly options: Readonly<Record<string, unknown>>
}

/** Encode a stage as `{ name, options }`. */
export const encodeStage = (stage: Use<AnyComponent>): EncodedStage => ({
  name: stage.name,
  options: JSON.parse(JSON.stringify(stage.options)) as Record<string, unknown>,
})
