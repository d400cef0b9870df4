/**
 * Recipes: a training algorithm as a record of stages plus rollout and optimiser
 * settings.
 *
 * {@link make} checks at compile time that the stages fit together: the reward's
 * level (per turn or per trajectory) must be the shaper's and the return
 * estimator's input level, and the return estimator's output level must be the
 * advantage estimator's input level. {@link derive} builds a variant by replacing
 * stages ("GTPO without shaping" is one line). A recipe round-trips through JSON
 * ({@link encode} / {@link decode}); decoding checks names against a catalogue, options
 * against each entry's Schema and levels against each other, and reports the path of
 * the bad field. {@link applyOverrides} implements the CLI's `--set key=value`.
 *
 * @category models
 */
import { Result, Schema, SchemaIssue } from "effect"
import { setting, UnknownComponentError } from "@turnwise/core"
import type { AdvantageEstimator, Level, PolicyLoss, ReturnEstimator, RewardAssigner, SampleFilter, Shaper } from "@turnwise/core"
import { builtinCatalogue, lookup } from "./Catalogue.js"
import type { Catalogue, StageKind } from "./Catalogue.js"
import { OptimizerConfig, RolloutConfig } from "./Config.js"
import { ConfigError, decodeOptions, decodeSection, encodeStage } from "./Stage.js"
import type { EncodedStage, Use } from "./Stage.js"

/**
 * A training algorithm. The type parameters are the levels flowing between stages:
 * R (rewards, also the shaper's), T (returns), A (advantages).
 */
export interface Recipe<R extends Level = Level, T extends Level = Level, A extends Level = Level> {
  readonly name: string
  readonly description: string
  readonly reward: Use<RewardAssigner<R, unknown>>
  readonly shaper: Use<Shaper<R, unknown>>
  readonly returns: Use<ReturnEstimator<R, T, unknown>>
  readonly advantage: Use<AdvantageEstimator<T, A, unknown>>
  readonly filter: Use<SampleFilter<unknown>>
  readonly loss: Use<PolicyLoss<unknown>>
  readonly rollout: RolloutConfig
  readonly optimizer: OptimizerConfig
}

/** What {@link make} accepts: stages are required, settings may be partial. */
export interface RecipeSpec<R extends Level, T extends Level, A extends Level>
  extends Omit<Recipe<R, T, A>, "rollout" | "optimizer" | "description" | "shaper" | "returns" | "advantage">
{
  readonly description?: string
  readonly shaper: Recipe<NoInfer<R>, T, A>["shaper"]
  readonly returns: Recipe<NoInfer<R>, T, A>["returns"]
  readonly advantage: Recipe<R, NoInfer<T>, A>["advantage"]
  readonly rollout?: Partial<RolloutConfig>
  readonly optimizer?: Partial<OptimizerConfig>
}

/**
 * Build a recipe; stage levels are checked by the compiler, settings by their Schemas.
 *
 * @example
 * const gtpo = Recipe.make({
 *   name: "gtpo",
 *   reward: use(rewardAssigners["turn-level"]),
 *   shaper: use(shapers["code-similarity"]),
 *   returns: use(returnEstimators.discounted, { gamma: 0.9 }),
 *   advantage: use(advantageEstimators["normalized-returns"]),
 *   filter: use(sampleFilters.none),
 *   loss: use(policyLosses["clipped-surrogate"]),
 * })
 */
export const make = <R extends Level, T extends Level, A extends Level>(spec: RecipeSpec<R, T, A>): Recipe<R, T, A> => {
  checkLevels(spec, "recipe")
  return {
    ...spec,
    description: spec.description ?? "",
    rollout: decodeSection(RolloutConfig, spec.rollout ?? {}, "rollout"),
    optimizer: decodeSection(OptimizerConfig, spec.optimizer ?? {}, "optimizer"),
  }
}

/**
 * A variant of a recipe with some stages or settings replaced; the result is checked
 * like a new recipe.
 *
 * @example
 * const noShaping = Recipe.derive(gtpo, { name: "gtpo-no-shaping", shaper: use(shapers.none) })
 */
export const derive = <R extends Level, T extends Level, A extends Level, R2 extends Level = R, T2 extends Level = T, A2 extends Level = A>(
  base: Recipe<R, T, A>,
  changes: Partial<RecipeSpec<R2, T2, A2>> & { readonly name: string },
): Recipe<R2, T2, A2> => {
  const merged = {
    ...base,
    ...changes,
    rollout: { ...base.rollout, ...changes.rollout },
    optimizer: { ...base.optimizer, ...changes.optimizer },
  }
  // The spread loses the link between levels; make() re-checks them at run time.
  return make(merged as unknown as RecipeSpec<R2, T2, A2>)
}

/** The JSON form of a recipe. */
export interface EncodedRecipe {
  readonly name: string
  readonly description: string
  readonly reward: EncodedStage
  readonly shaper: EncodedStage
  readonly returns: EncodedStage
  readonly advantage: EncodedStage
  readonly filter: EncodedStage
  readonly loss: EncodedStage
  readonly rollout: RolloutConfig
  readonly optimizer: OptimizerConfig
}

/** Encode a recipe as JSON-compatible data. */
export const encode = (recipe: Recipe): EncodedRecipe => ({
  name: recipe.name,
  description: recipe.description,
  reward: encodeStage(recipe.reward),
  shaper: encodeStage(recipe.shaper),
  returns: encodeStage(recipe.returns),
  advantage: encodeStage(recipe.advantage),
  filter: encodeStage(recipe.filter),
  loss: encodeStage(recipe.loss),
  rollout: { ...recipe.rollout },
  optimizer: { ...recipe.optimizer },
})

/** What a recipe's JSON says of a stage: a catalogue name and its options (checked by the entry's Schema once the name is found). */
const StageJson = Schema.Struct({
  name: Schema.String.annotate({ message: "expected a string" }),
  options: Schema.optionalKey(Schema.Unknown),
}).annotate({ message: "expected { name, options }", messageUnexpectedKey: "unknown key; a stage has name and options" }).pipe(
  Schema.annotateKey({ messageMissingKey: "missing; expected { name, options }" }),
)

const stageFields = {
  reward: StageJson,
  shaper: StageJson,
  returns: StageJson,
  advantage: StageJson,
  filter: StageJson,
  loss: StageJson,
} satisfies Record<StageKind, typeof StageJson>

/** A settings section as the recipe's JSON gives it; its fields are decoded by the section's own Schema. */
const SectionJson = Schema.optionalKey(Schema.Record(Schema.String, Schema.Unknown).annotate({ message: "expected an object" }))

const recipeFields = {
  name: Schema.String.annotate({ message: "expected a non-empty string" }).check(Schema.isNonEmpty({ message: "expected a non-empty string" })).pipe(
    Schema.annotateKey({ messageMissingKey: "missing; expected a non-empty string" }),
  ),
  description: setting(Schema.String.annotate({ message: "expected a string" }), "", "What the recipe is for, in a sentence"),
  ...stageFields,
  rollout: SectionJson,
  optimizer: SectionJson,
}

/** The top level of a recipe's JSON: every key it may have, once; any other key is refused by name. */
const RecipeJson = Schema.Struct(recipeFields).annotate({
  message: "expected an object",
  messageUnexpectedKey: `unknown key; recipe keys are ${Object.keys(recipeFields).join(", ")}`,
})

const formatIssue = SchemaIssue.makeFormatterStandardSchemaV1()

/**
 * Decode a recipe from untrusted JSON against a catalogue. Throws {@link ConfigError}
 * naming the bad field's path: an unknown key, an unknown component name (with the
 * valid names), invalid options, or stages whose levels do not fit.
 */
export const decode = (raw: unknown, catalogue: Catalogue = builtinCatalogue): Recipe => {
  const decoded = Schema.decodeUnknownResult(RecipeJson)(raw, { onExcessProperty: "error" })
  if (Result.isFailure(decoded)) {
    const first = formatIssue(decoded.failure.issue).issues[0]
    throw new ConfigError({
      path: first === undefined || first.path === undefined || first.path.length === 0 ? "recipe" : first.path.map(String).join("."),
      problem: first?.message ?? "invalid recipe",
    })
  }
  const json = decoded.success
  const stage = <K extends StageKind>(kind: K) => decodeStage(catalogue, kind, json[kind])
  const recipe = {
    name: json.name,
    description: json.description,
    reward: stage("reward"),
    shaper: stage("shaper"),
    returns: stage("returns"),
    advantage: stage("advantage"),
    filter: stage("filter"),
    loss: stage("loss"),
    rollout: decodeSection(RolloutConfig, json.rollout ?? {}, "rollout"),
    optimizer: decodeSection(OptimizerConfig, json.optimizer ?? {}, "optimizer"),
  }
  checkLevels(recipe, "recipe")
  return recipe
}

const decodeStage = <K extends StageKind>(catalogue: Catalogue, kind: K, json: typeof StageJson.Type): Use<Catalogue[K][string]> => {
  let entry: Catalogue[K][string]
  try {
    entry = lookup(catalogue, kind, json.name)
  } catch (error) {
    if (error instanceof UnknownComponentError) throw new ConfigError({ path: `${kind}.name`, problem: error.message })
    throw error
  }
  return { name: json.name, entry, options: decodeOptions(entry, json.options, `${kind}.options`) }
}

interface LevelledStages {
  readonly reward: { readonly entry: { readonly level: Level } }
  readonly shaper: { readonly entry: { readonly level: Level } }
  readonly returns: { readonly entry: { readonly inputLevel: Level; readonly outputLevel: Level } }
  readonly advantage: { readonly entry: { readonly inputLevel: Level } }
}

/** The run-time twin of the compile-time level check (for recipes decoded from JSON). */
const checkLevels = (recipe: LevelledStages, path: string): void => {
  const rewardLevel = recipe.reward.entry.level
  const fail = (where: string, problem: string) => {
    throw new ConfigError({ path: `${path}.${where}`, problem })
  }
  if (recipe.shaper.entry.level !== rewardLevel) {
    fail("shaper", `shapes ${recipe.shaper.entry.level}-level rewards but the reward assigner gives ${rewardLevel}-level rewards`)
  }
  if (recipe.returns.entry.inputLevel !== rewardLevel) {
    fail("returns", `takes ${recipe.returns.entry.inputLevel}-level rewards but the reward assigner gives ${rewardLevel}-level rewards`)
  }
  if (recipe.advantage.entry.inputLevel !== recipe.returns.entry.outputLevel) {
    fail(
      "advantage",
      `takes ${recipe.advantage.entry.inputLevel}-level returns but the return estimator gives ${recipe.returns.entry.outputLevel}-level returns`,
    )
  }
}

/**
 * Apply `key=value` overrides (the CLI's `--set`) to an encoded recipe. Keys are dotted
 * paths (`returns.options.gamma=1`, `rollout.groupSize=4`); values are parsed as JSON
 * when they parse, else taken as strings. The result must still be decoded.
 *
 * @example
 * decode(applyOverrides(encode(gtpo), ["returns.options.gamma=1"]))
 */
export const applyOverrides = (encoded: unknown, sets: ReadonlyArray<string>): unknown => {
  const root = structuredClone(encoded) as Record<string, unknown>
  for (const assignment of sets) {
    const eq = assignment.indexOf("=")
    if (eq <= 0) throw new ConfigError({ path: assignment, problem: "expected key=value" })
    const path = assignment.slice(0, eq).split(".")
    const text = assignment.slice(eq + 1)
    let value: unknown
    try {
      value = JSON.parse(text)
    } catch {
      value = text
    }
    let node: Record<string, unknown> = root
    path.slice(0, -1).forEach((key, i) => {
      const next = node[key]
      if (next === undefined) node[key] = {}
      else if (typeof next !== "object" || next === null || Array.isArray(next)) {
        throw new ConfigError({ path: path.slice(0, i + 1).join("."), problem: "is not an object, cannot set a field inside it" })
      }
      node = node[key] as Record<string, unknown>
    })
    node[path[path.length - 1]!] = value
  }
  return root
}
