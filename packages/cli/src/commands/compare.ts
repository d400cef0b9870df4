/**
 * `turnwise compare <recipeA> <recipeB> ...`: train each recipe on the same start,
 * data and seeds, and summarise over seeds.
 *
 * @category constructors
 */
import { Effect, Option } from "effect"
import { Argument, Command } from "effect/cli"
import { CommandIo } from "../io.js"
import { runCompare } from "../run/compare.js"
import { defaultRunConfig, loadRecipe, resolveRun } from "../run/resolve.js"
import { attempt } from "./CommandFailed.js"
import { config, describedWithDefault, intAtLeast, out, overridesOf, set } from "./flags.js"
import { defaultRunDir } from "./format.js"
import { withUsage } from "./usage.js"

/** The `compare` command. */
export const compare = Command.make(
  "compare",
  {
    recipes: Argument.String("recipe").pipe(
      Argument.withDescription("Recipes to compare (shipped names, .ts modules or recipe.json files), at least two"),
      Argument.atLeast(2),
    ),
    seeds: intAtLeast("seeds", 1).pipe(describedWithDefault("Seeds per recipe; seed k trains with train.seed + k", 3)),
    out: out("The comparison directory (default runs/compare-<time>)"),
    config,
    set,
  },
  Effect.fn("turnwise.compare")(function*(flags) {
    const io = yield* CommandIo
    const overrides = yield* overridesOf(flags)
    const entries = yield* attempt(() => Promise.all(flags.recipes.map(async (ref) => resolveRun(await loadRecipe(ref), defaultRunConfig, overrides))))
    const outDir = Option.getOrElse(flags.out, () => defaultRunDir("compare"))
    yield* attempt(() => runCompare({ entries, seeds: flags.seeds, outDir, io }))
  }),
).pipe(
  Command.withDescription(
    "Train each recipe per seed from the same start and data; prints held-out accuracy (and pass@k with --set train.evalSamples=k) with 95% bootstrap intervals and writes a comparison report with curves banded over seeds",
  ),
  withUsage({
    synopsis: "turnwise compare <recipeA> <recipeB> ... [--seeds N] [--out dir] [--config f.json] [--set k=v]...",
    needs: "compare needs at least two recipes",
  }),
)
