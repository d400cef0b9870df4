/**
 * The component catalogue: every named reward assigner, shaper, return and advantage
 * estimator, sample filter and policy loss a recipe can refer to by name.
 *
 * The catalogue is an immutable record keyed by stage kind and then by name. A user
 * adds their own component by composing a new catalogue with {@link extend} (one
 * function, one entry); nothing global is mutated, so two recipes in one process
 * can use different catalogues.
 *
 * @category models
 */
import { advantageEstimators, policyLosses, returnEstimators, rewardAssigners, sampleFilters, shapers, UnknownComponentError } from "@turnwise/core"
import type { AdvantageEstimator, Level, PolicyLoss, ReturnEstimator, RewardAssigner, SampleFilter, Shaper } from "@turnwise/core"

/** Entries of every kind, by name. */
export interface Catalogue {
  readonly reward: Readonly<Record<string, RewardAssigner<Level, unknown>>>
  readonly shaper: Readonly<Record<string, Shaper<Level, unknown>>>
  readonly returns: Readonly<Record<string, ReturnEstimator<Level, Level, unknown>>>
  readonly advantage: Readonly<Record<string, AdvantageEstimator<Level, Level, unknown>>>
  readonly filter: Readonly<Record<string, SampleFilter<unknown>>>
  readonly loss: Readonly<Record<string, PolicyLoss<unknown>>>
}

/** A stage kind. */
export type StageKind = keyof Catalogue

/** The kinds, in pipeline order. */
export const stageKinds: ReadonlyArray<StageKind> = ["reward", "shaper", "returns", "advantage", "filter", "loss"]

/** Everything @turnwise/core ships. */
export const builtinCatalogue: Catalogue = {
  reward: rewardAssigners,
  shaper: shapers,
  returns: returnEstimators,
  advantage: advantageEstimators,
  filter: sampleFilters,
  loss: policyLosses,
}

/**
 * A new catalogue with extra entries; a name that already exists is an error (to
 * replace a built-in, give yours a new name and point the recipe at it).
 *
 * @example
 * const mine = extend(builtinCatalogue, { reward: { "length-bonus": lengthBonus } })
 */
export const extend = (base: Catalogue, additions: { readonly [K in StageKind]?: Catalogue[K] }): Catalogue => ({
  reward: merge("reward", base.reward, additions.reward),
  shaper: merge("shaper", base.shaper, additions.shaper),
  returns: merge("returns", base.returns, additions.returns),
  advantage: merge("advantage", base.advantage, additions.advantage),
  filter: merge("filter", base.filter, additions.filter),
  loss: merge("loss", base.loss, additions.loss),
})

const merge = <T extends { readonly name: string }>(
  kind: StageKind,
  base: Readonly<Record<string, T>>,
  additions: Readonly<Record<string, T>> | undefined,
): Readonly<Record<string, T>> => {
  const result: Record<string, T> = { ...base }
  for (const [name, entry] of Object.entries(additions ?? {})) {
    if (Object.hasOwn(result, name)) throw new Error(`extend: a ${kind} named "${name}" already exists in the catalogue`)
    if (entry.name !== name) throw new Error(`extend: the ${kind} registered as "${name}" calls itself "${entry.name}"`)
    result[name] = entry
  }
  return result
}

/** Look an entry up by kind and name; fails with the list of valid names. */
export const lookup = <K extends StageKind>(catalogue: Catalogue, kind: K, name: string): Catalogue[K][string] => {
  const entries = catalogue[kind] as Readonly<Record<string, Catalogue[K][string]>>
  const entry = Object.hasOwn(entries, name) ? entries[name] : undefined
  if (entry === undefined) throw new UnknownComponentError({ kind, name, known: Object.keys(entries) })
  return entry
}
