/**
 * The `--set` keys a command accepts, read from the Schemas that decode them: the run
 * config (model, task, train, backend, sandboxWorkers) and a recipe (each stage's
 * name and options, rollout, optimizer). Each key comes with its type and bounds from
 * the Schema's checks, its default from the default value, and its doc from the
 * Schema's `description` annotation when there is one, so the help never lists a key
 * that decoding would reject, nor misses one it accepts.
 *
 * @category constructors
 */
import { Schema, SchemaAST } from "effect"
import { builtinCatalogue, OptimizerConfig, Recipe, RolloutConfig, stageKinds } from "@turnwise/dsl"
import type { RecipeType } from "@turnwise/dsl"
import { defaultRunConfig, RunConfig, runConfigKeys } from "../run/RunConfig.js"
import { defaultServeOptions, ServeOptions } from "../serve/ServeOptions.js"

/** One settable key. */
export interface Setting {
  /** Dotted path, as `--set` takes it: `returns.options.gamma`. */
  readonly key: string
  /** What values decode: `integer >= 1`, `js|python`, `string`. */
  readonly type: string
  /** The default, as it would be written after `=`. */
  readonly defaultValue: string
  /** The Schema's description, if it has one. */
  readonly doc: string | undefined
}

interface Bound {
  readonly side: "lower" | "upper"
  readonly value: string
  readonly inclusive: boolean
}

/** A bound from a check's `expected` text ("a value greater than or equal to 0"). */
const boundOf = (expected: string): Bound | undefined => {
  const patterns: ReadonlyArray<readonly [RegExp, Bound["side"], boolean]> = [
    [/^a value greater than or equal to (.+)$/, "lower", true],
    [/^a value greater than (.+)$/, "lower", false],
    [/^a value less than or equal to (.+)$/, "upper", true],
    [/^a value less than (.+)$/, "upper", false],
  ]
  for (const [pattern, side, inclusive] of patterns) {
    const match = pattern.exec(expected)
    if (match !== null) return { side, value: match[1]!, inclusive }
  }
  return undefined
}

/** `>= 1`, `< 1`, or `in [0, 1)` when both sides are bounded. */
const rangeText = (bounds: ReadonlyArray<Bound>): string | undefined => {
  const lower = bounds.find((b) => b.side === "lower")
  const upper = bounds.find((b) => b.side === "upper")
  if (lower !== undefined && upper !== undefined) return `in ${lower.inclusive ? "[" : "("}${lower.value}, ${upper.value}${upper.inclusive ? "]" : ")"}`
  if (lower !== undefined) return `${lower.inclusive ? ">=" : ">"} ${lower.value}`
  if (upper !== undefined) return `${upper.inclusive ? "<=" : "<"} ${upper.value}`
  return undefined
}

/** The checks of a node, flattened (a group of checks counts as its members). */
const checksOf = (ast: SchemaAST.AST): Array<SchemaAST.Check<unknown>> => {
  const flat: Array<SchemaAST.Check<unknown>> = []
  const visit = (check: SchemaAST.Check<unknown>) => {
    if (check._tag === "FilterGroup") check.checks.forEach(visit)
    else flat.push(check)
  }
  ;(ast.checks ?? []).forEach(visit)
  return flat
}

/** A short description of the values a Schema node accepts. */
export const describeType = (ast: SchemaAST.AST): string => {
  switch (ast._tag) {
    case "Number": {
      const expectations = checksOf(ast).map((c) => c.annotations?.expected).filter((e): e is string => typeof e === "string")
      const base = expectations.includes("an integer") ? "integer" : "number"
      const range = rangeText(expectations.map(boundOf).filter((b): b is Bound => b !== undefined))
      return range === undefined ? base : `${base} ${range}`
    }
    case "String":
      return "string"
    case "Boolean":
      return "true|false"
    case "Literal":
      return String(ast.literal)
    case "Union":
      return ast.types.map(describeType).join("|")
    case "Arrays":
      return `JSON array of ${ast.rest.map(describeType).join(", ") || "values"}`
    default:
      return ast._tag.toLowerCase()
  }
}

const docOf = (ast: SchemaAST.AST): string | undefined => {
  const keyDoc = ast.context?.annotations?.description
  return typeof keyDoc === "string" ? keyDoc : SchemaAST.resolveDescription(ast)
}

/** A default as it would be written after `=`: strings bare unless empty, the rest as JSON. */
const defaultText = (value: unknown): string => {
  if (value === undefined) return "-"
  if (typeof value === "string" && value !== "") return value
  return JSON.stringify(value)
}

/**
 * Every leaf of a Schema struct, with its default taken from `defaults` (a struct
 * without fields, such as the options of a stage that has none, gives no keys).
 *
 * @example
 * settingsOf(RolloutConfig, defaultRollout, "rollout") // [{ key: "rollout.groupSize", type: "integer >= 1", defaultValue: "8", ... }, ...]
 */
export const settingsOf = (schema: Schema.Top, defaults: unknown, prefix: string): Array<Setting> => {
  const walk = (ast: SchemaAST.AST, value: unknown, key: string): Array<Setting> => {
    if (ast._tag === "Objects") {
      const record = (typeof value === "object" && value !== null ? value : {}) as Record<PropertyKey, unknown>
      return ast.propertySignatures.flatMap((property) => walk(property.type, record[property.name], `${key}.${String(property.name)}`))
    }
    return [{ key, type: describeType(ast), defaultValue: defaultText(value), doc: docOf(ast) }]
  }
  return walk(schema.ast, defaults, prefix).map((s) => ({ ...s, key: s.key.replace(/^\./, "") }))
}

/** The run-config keys (`train.steps`, `model.init`, `backend`, ...) with their defaults. */
export const runSettings = (): Array<Setting> => settingsOf(RunConfig, defaultRunConfig, "")

/**
 * The recipe keys with the given recipe's values as defaults: each stage's `name`
 * (any entry of the catalogue) and `options`, then `rollout.*` and `optimizer.*`.
 */
export const recipeSettings = (recipe: RecipeType): Array<Setting> => {
  const encoded = Recipe.encode(recipe)
  const stages = stageKinds.flatMap((kind) => {
    const stage = recipe[kind]
    const names = Object.keys(builtinCatalogue[kind])
    const name: Setting = { key: `${kind}.name`, type: names.join("|"), defaultValue: stage.name, doc: stage.entry.summary }
    return [name, ...settingsOf(stage.entry.options, encoded[kind].options, `${kind}.options`)]
  })
  return [...stages, ...settingsOf(RolloutConfig, recipe.rollout, "rollout"), ...settingsOf(OptimizerConfig, recipe.optimizer, "optimizer")]
}

const table = (settings: ReadonlyArray<Setting>): string => {
  const keyWidth = Math.max(...settings.map((s) => s.key.length)) + 2
  const defaultWidth = Math.min(22, Math.max(...settings.map((s) => s.defaultValue.length)))
  // A doc goes on its own line under the default, so the columns stay narrow.
  return settings
    .map((s) =>
      `  ${s.key.padEnd(keyWidth)}${s.defaultValue.padEnd(defaultWidth)}  ${s.type}${s.doc === undefined ? "" : `\n  ${" ".repeat(keyWidth)}${s.doc}`}`
    )
    .join("\n")
}

/**
 * The SETTINGS section of a command's help: run keys, then recipe keys with the
 * defaults of `recipe`.
 */
export const settingsHelp = (recipe: RecipeType): string =>
  [
    "SETTINGS (--set key=value, repeatable; values are JSON when they parse, else strings)",
    `  Keys under ${runConfigKeys.join(", ")} set the run; every other key sets the recipe.`,
    "  key, default, accepted values:",
    "",
    "RUN KEYS",
    table(runSettings()),
    "",
    `RECIPE KEYS (defaults of the ${recipe.name} recipe; another recipe has its own)`,
    table(recipeSettings(recipe)),
  ].join("\n")

/** The SETTINGS section of `turnwise serve --help`: the endpoint's own keys. */
export const serveSettingsHelp = (): string =>
  [
    "SETTINGS (--set key=value, repeatable; values are JSON when they parse, else strings)",
    "  key, default, accepted values:",
    "",
    table(settingsOf(ServeOptions, defaultServeOptions, "")),
  ].join("\n")
