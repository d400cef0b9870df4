/**
 * `turnwise train <recipe>`: train a recipe (a shipped name, a .ts module or a
 * recipe.json) and write a run directory.
 *
 * @category constructors
 */
import { Effect, Option } from "effect"
import { Argument, Command, Flag } from "effect/cli"
import { recipes } from "@turnwise/recipes"
import { CommandIo } from "../io.js"
import { defaultRunConfig, loadRecipe, resolveRun } from "../run/resolve.js"
import { runTrain } from "../run/train.js"
import { attempt } from "./CommandFailed.js"
import { config, out, overridesOf, set } from "./flags.js"
import { defaultRunDir, fixed3 } from "./format.js"
import { withUsage } from "./usage.js"

const recipe = Argument.String("recipe").pipe(
  Argument.withDescription(`A shipped recipe (${Object.keys(recipes).join(", ")}), a .ts module exporting one, or a recipe.json`),
)

/** The `train` command. */
export const train = Command.make(
  "train",
  {
    recipe,
    config,
    set,
    out: out("The run directory (default runs/<recipe>-<time>)"),
    resume: Flag.Boolean("resume").pipe(Flag.withDescription("Continue the run in --out from its latest checkpoint"), Flag.withDefault(false)),
  },
  Effect.fn("turnwise.train")(function*(flags) {
    const io = yield* CommandIo
    const overrides = yield* overridesOf(flags)
    const { recipe, run } = yield* attempt(async () => resolveRun(await loadRecipe(flags.recipe), defaultRunConfig, overrides))
    const outDir = Option.getOrElse(flags.out, () => defaultRunDir(recipe.name))
    io.log(`training ${recipe.name} for ${run.train.steps} steps; run directory ${outDir}`)
    const result = yield* attempt(() => runTrain({ recipe, run, outDir, resume: flags.resume, evalBefore: true, log: io.log, tty: io.tty }))
    io.log(`held-out accuracy: before ${fixed3(result.before["outcome/accuracy"])}, after ${fixed3(result.after["outcome/accuracy"])}`)
    io.log(`report: ${result.reportPath}`)
  }),
).pipe(
  Command.withDescription("Train a recipe on the task the run settings choose; writes metrics, checkpoints and a report to the run directory"),
  withUsage({
    synopsis: "turnwise train <recipe> [--config f.json] [--set k=v]... [--out dir] [--resume]",
    needs: `train needs a recipe: one of ${Object.keys(recipes).join(", ")}, a .ts module or a recipe.json`,
  }),
)
