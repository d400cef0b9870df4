/**
 * `turnwise eval --checkpoint dir`: held-out metrics of a checkpoint, as one JSON line
 * on stdout and a table on stderr. With `--set train.evalSamples=k` the metrics also
 * hold `eval/pass@k` and `eval/pass@1` of k samples per problem at the recipe's
 * rollout temperature, beside the greedy (or `--temperature`) accuracy.
 *
 * @category constructors
 */
import { Effect } from "effect"
import { Command } from "effect/cli"
import { evaluate } from "@turnwise/dsl"
import { recipes } from "@turnwise/recipes"
import { CommandIo } from "../io.js"
import { runWith } from "../run/context.js"
import { resolveRun } from "../run/resolve.js"
import { runTask } from "../run/task-source.js"
import { attempt } from "./CommandFailed.js"
import { checkpoint, config, describedWithDefault, numberAtLeast, overridesOf, set } from "./flags.js"
import { fromCheckpoint, withScratchRun } from "./scratch-run.js"
import { withUsage } from "./usage.js"

/**
 * Metrics as an aligned two-column table, sorted by name; counts print as integers,
 * the rest with three decimals.
 *
 * @example
 * metricsTable({ "outcome/accuracy": 0.5, "batch/trajectories": 6 })
 * // "  batch/trajectories      6\n  outcome/accuracy    0.500"
 */
export const metricsTable = (metrics: Readonly<Record<string, number>>): string => {
  const names = Object.keys(metrics).sort()
  const text = (x: number) => (Number.isInteger(x) ? String(x) : Number.isFinite(x) ? x.toFixed(3) : String(x))
  const width = Math.max(0, ...names.map((n) => n.length))
  const valueWidth = Math.max(0, ...names.map((n) => text(metrics[n]!).length))
  return names.map((n) => `  ${n.padEnd(width)}  ${text(metrics[n]!).padStart(valueWidth)}`).join("\n")
}

/** The `eval` command. */
export const evalCommand = Command.make(
  "eval",
  {
    checkpoint,
    config,
    set,
    temperature: numberAtLeast("temperature", 0).pipe(describedWithDefault("Sampling temperature; 0 is greedy", 0)),
  },
  Effect.fn("turnwise.eval")(function*(flags) {
    const io = yield* CommandIo
    const overrides = yield* overridesOf(flags)
    const { problems, metrics, samples, samplingTemperature } = yield* attempt(async () => {
      const resolved = resolveRun(recipes.gtpo, await fromCheckpoint(flags.checkpoint), overrides)
      const { recipe, task, heldout } = runTask(resolved.run, resolved.recipe)
      const seed = resolved.run.train.seed
      const samples = resolved.run.train.evalSamples
      const { metrics } = await withScratchRun(
        "eval",
        resolved.run,
        recipe,
        io.log,
        (context) => runWith(context, evaluate(recipe, task, heldout, { seed, temperature: flags.temperature, samples })),
      )
      return { problems: heldout.length, metrics, samples, samplingTemperature: recipe.rollout.temperature }
    })
    const sampled = samples === 0 ? "" : `; pass@${samples} and pass@1 from ${samples} samples per problem at temperature ${samplingTemperature}`
    io.log(`held-out evaluation of ${flags.checkpoint}: ${problems} problems, temperature ${flags.temperature}${sampled}\n${metricsTable(metrics)}`)
    io.stdout(
      JSON.stringify({
        checkpoint: flags.checkpoint,
        problems,
        temperature: flags.temperature,
        ...(samples === 0 ? {} : { samples, samplingTemperature }),
        metrics,
      }) + "\n",
    )
  }),
).pipe(
  Command.withDescription("Evaluate a checkpoint on the held-out problems: a table on stderr, one JSON line on stdout"),
  withUsage({
    synopsis: "turnwise eval --checkpoint dir [--config f.json] [--set k=v]... [--temperature T] [--set train.evalSamples=K]",
    needs: "eval needs --checkpoint DIR",
  }),
)
