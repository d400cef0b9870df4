/**
 * Flags that several commands share, so they are spelled and explained the same way
 * everywhere.
 *
 * @category constructors
 */
import { Option } from "effect"
import { Flag } from "effect/cli"
import { readConfigFile } from "../run/resolve.js"
import { attempt } from "./CommandFailed.js"

/** `--set key=value`, repeatable: one setting of the run or the recipe. */
export const set = Flag.String("set").pipe(
  Flag.withMetavar("key=value"),
  Flag.withDescription("Override one setting (repeatable); the keys, their defaults and accepted values are listed under SETTINGS"),
  Flag.atLeast(0),
)

/** `--config file.json`: a JSON object with the keys `--set` takes. */
export const config = Flag.String("config").pipe(
  Flag.withMetavar("file.json"),
  Flag.withDescription("A JSON object of settings (run sections and recipe keys, as under SETTINGS); --set overrides it"),
  Flag.optional,
)

/** `--out dir`: where the run's files go. */
export const out = (what: string) => Flag.String("out").pipe(Flag.withMetavar("dir"), Flag.withDescription(what), Flag.optional)

/** `--checkpoint dir`: a checkpoint, or a run's checkpoints/ directory (its latest step). */
export const checkpoint = Flag.String("checkpoint").pipe(
  Flag.withMetavar("dir"),
  Flag.withDescription("A checkpoint directory, or a run's checkpoints/ directory (its latest step is used)"),
)

/** An integer flag that must be at least `min`. */
export const intAtLeast = (name: string, min: number) => Flag.Int(name).pipe(Flag.filter((n) => n >= min, () => `an integer of at least ${min}`))

/** A number flag that must be at least `min`. */
export const numberAtLeast = (name: string, min: number) => Flag.Finite(name).pipe(Flag.filter((x) => x >= min, () => `a number of at least ${min}`))

/** A number flag that must be greater than zero. */
export const positiveNumber = (name: string) => Flag.Finite(name).pipe(Flag.filter((x) => x > 0, () => "a positive number"))

/**
 * A description that names the default, and the default itself, so the help shows
 * the value the command uses.
 *
 * @example
 * intAtLeast("seeds", 1).pipe(describedWithDefault("Seeds per recipe", 3))
 */
export const describedWithDefault = <const B>(description: string, value: B) => <A>(flag: Flag.Flag<A>): Flag.Flag<A | B> =>
  flag.pipe(Flag.withDescription(`${description} (default ${String(value)})`), Flag.withDefault(value))

/**
 * The overrides `--config` and `--set` give, as the run resolver takes them.
 *
 * @example
 * const overrides = yield* overridesOf({ config, set })
 */
export const overridesOf = (flags: { readonly config: Option.Option<string>; readonly set: ReadonlyArray<string> }) =>
  attempt(async () => ({
    file: Option.isSome(flags.config) ? await readConfigFile(flags.config.value) : {},
    sets: flags.set,
  }))
