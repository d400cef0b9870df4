/**
 * Resolving what the CLI was asked to run: a recipe (a shipped name, a .ts module
 * exporting one by default, or a recipe.json) and the run config, with a config file
 * and `--set key=value` overrides routed by their first key (run-config sections go to
 * the run config, everything else to the recipe). Every bad field is reported with its
 * path before anything runs.
 *
 * @category constructors
 */
import { promises as fs } from "node:fs"
import * as path from "node:path"
import { pathToFileURL } from "node:url"
import { ConfigError, Recipe } from "@turnwise/dsl"
import type { RecipeType } from "@turnwise/dsl"
import { isShippedRecipe, recipes } from "@turnwise/recipes"
import { decodeRunConfig, defaultRunConfig, runConfigKeys } from "./RunConfig.js"
import type { RunConfig } from "./RunConfig.js"

const isRecipe = (value: unknown): value is RecipeType =>
  typeof value === "object" && value !== null && "reward" in value && "advantage" in value && "loss" in value && "rollout" in value

/** Load a recipe by shipped name, module path or JSON path. */
export const loadRecipe = async (ref: string): Promise<RecipeType> => {
  const shipped = isShippedRecipe(ref) ? recipes[ref] : undefined
  if (shipped !== undefined) return shipped
  const file = path.resolve(ref)
  const exists = await fs.stat(file).then(
    () => true,
    () => false,
  )
  if (!exists) throw new ConfigError({ path: "recipe", problem: `"${ref}" is neither a shipped recipe (${Object.keys(recipes).join(", ")}) nor a file` })
  if (file.endsWith(".json")) {
    let raw: unknown
    try {
      raw = JSON.parse(await fs.readFile(file, "utf8"))
    } catch (error) {
      throw new ConfigError({ path: ref, problem: `not valid JSON (${error instanceof Error ? error.message : String(error)})` })
    }
    return Recipe.decode(raw)
  }
  const module = (await import(pathToFileURL(file).href)) as { readonly default?: unknown }
  if (!isRecipe(module.default)) {
    throw new ConfigError({ path: ref, problem: "the module's default export is not a recipe (use `export default Recipe.make({...})`)" })
  }
  // Round-trip through JSON so a module recipe is validated like a JSON one.
  return Recipe.decode(Recipe.encode(module.default))
}

/** Read a config file: a JSON object whose keys are run-config sections or recipe keys. */
export const readConfigFile = async (file: string): Promise<Record<string, unknown>> => {
  let raw: unknown
  try {
    raw = JSON.parse(await fs.readFile(file, "utf8"))
  } catch (error) {
    throw new ConfigError({ path: file, problem: error instanceof SyntaxError ? `not valid JSON (${error.message})` : "cannot be read" })
  }
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) throw new ConfigError({ path: file, problem: "expected a JSON object" })
  return raw as Record<string, unknown>
}

const deepMerge = (base: unknown, patch: unknown): unknown => {
  if (typeof base !== "object" || base === null || Array.isArray(base) || typeof patch !== "object" || patch === null || Array.isArray(patch)) return patch
  const out: Record<string, unknown> = { ...(base as Record<string, unknown>) }
  for (const [key, value] of Object.entries(patch as Record<string, unknown>)) out[key] = deepMerge(out[key], value)
  return out
}

/**
 * Apply a config file's contents and `--set` overrides to a recipe and a run config.
 *
 * @example
 * resolveRun(gtpo, defaultRunConfig, { file: {}, sets: ["train.steps=10", "returns.options.gamma=1"] })
 */
export const resolveRun = (
  recipe: RecipeType,
  baseRun: RunConfig,
  overrides: { readonly file: Readonly<Record<string, unknown>>; readonly sets: ReadonlyArray<string> },
): { readonly recipe: RecipeType; readonly run: RunConfig } => {
  // A file key ("train") or a `--set` ("train.steps=3", "backend=webgpu"): the part before
  // any "=" and ".".
  const isRunKey = (key: string) => runConfigKeys.includes(key.split("=")[0]!.split(".")[0]!)
  let encodedRecipe: unknown = Recipe.encode(recipe)
  let encodedRun: unknown = baseRun
  for (const [key, value] of Object.entries(overrides.file)) {
    if (isRunKey(key)) encodedRun = deepMerge(encodedRun, { [key]: value })
    else encodedRecipe = deepMerge(encodedRecipe, { [key]: value })
  }
  encodedRecipe = Recipe.applyOverrides(encodedRecipe, overrides.sets.filter((s) => !isRunKey(s)))
  encodedRun = Recipe.applyOverrides(encodedRun, overrides.sets.filter((s) => isRunKey(s)))
  return { recipe: Recipe.decode(encodedRecipe), run: decodeRunConfig(encodedRun) }
}

export { defaultRunConfig }
