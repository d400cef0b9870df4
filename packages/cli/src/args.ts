/**
 * A small, strict argument parser: `--flag value`, `--flag=value`, boolean flags,
 * repeatable flags, positionals. Unknown flags are errors that list the known ones.
 *
 * @category constructors
 */

/** What a command accepts. */
export interface FlagSpec {
  /** Flags that take a value. */
  readonly values?: ReadonlyArray<string>
  /** Flags that take a value and may repeat (collected in order). */
  readonly repeated?: ReadonlyArray<string>
  /** Flags without a value. */
  readonly booleans?: ReadonlyArray<string>
}

/** Parsed arguments. */
export interface ParsedArgs {
  readonly positionals: ReadonlyArray<string>
  readonly values: Readonly<Record<string, string>>
  readonly repeated: Readonly<Record<string, ReadonlyArray<string>>>
  readonly booleans: ReadonlySet<string>
}

/** A command line could not be understood. */
export class UsageError extends Error {
  override readonly name = "UsageError"
}

/** Parse `argv` against a spec. */
export const parseArgs = (argv: ReadonlyArray<string>, spec: FlagSpec): ParsedArgs => {
  const positionals: Array<string> = []
  const values: Record<string, string> = {}
  const repeated: Record<string, Array<string>> = {}
  const booleans = new Set<string>()
  const known = [...(spec.values ?? []), ...(spec.repeated ?? []), ...(spec.booleans ?? [])]
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!
    if (!arg.startsWith("--")) {
      positionals.push(arg)
      continue
    }
    const eq = arg.indexOf("=")
    const name = arg.slice(2, eq < 0 ? undefined : eq)
    const inline = eq < 0 ? undefined : arg.slice(eq + 1)
    if (spec.booleans?.includes(name)) {
      if (inline !== undefined) throw new UsageError(`--${name} takes no value`)
      booleans.add(name)
      continue
    }
    const takesValue = spec.values?.includes(name) || spec.repeated?.includes(name)
    if (!takesValue) throw new UsageError(`unknown flag --${name}; known: ${known.map((k) => `--${k}`).join(", ") || "none"}`)
    const value = inline ?? argv[++i]
    if (value === undefined) throw new UsageError(`--${name} needs a value`)
    if (spec.repeated?.includes(name)) (repeated[name] ??= []).push(value)
    else values[name] = value
  }
  return { positionals, values, repeated, booleans }
}

/** An integer flag value, or the default. */
export const intFlag = (args: ParsedArgs, name: string, fallback: number): number => {
  const raw = args.values[name]
  if (raw === undefined) return fallback
  const n = Number(raw)
  if (!Number.isInteger(n)) throw new UsageError(`--${name} must be an integer, got "${raw}"`)
  return n
}
