/**
 * `turnwise sft`: supervised warm start on demonstrations of the tool protocol.
 * Without --steps, --batch or --lr it runs the schedule that made the shipped warm
 * start.
 *
 * @category constructors
 */
import { Effect, Option } from "effect"
import { Command, Flag } from "effect/cli"
import { recipes } from "@turnwise/recipes"
import { CommandIo } from "../io.js"
import { defaultRunConfig, resolveRun } from "../run/resolve.js"
import { defaultDemonstrationMix } from "../run/data.js"
import { runSft } from "../run/sft.js"
import { runWarmStart, warmStartStages } from "../run/start.js"
import { attempt, CommandFailed } from "./CommandFailed.js"
import { config, intAtLeast, numberAtLeast, out, overridesOf, positiveNumber, set } from "./flags.js"
import { defaultRunDir, fixed3 } from "./format.js"
import { withUsage } from "./usage.js"

const first = warmStartStages[0]!

/** The `sft` command. */
export const sft = Command.make(
  "sft",
  {
    out: out("The run directory (default runs/sft-<time>); the checkpoint goes to its checkpoints/"),
    steps: intAtLeast("steps", 1).pipe(Flag.withDescription(`Training steps (one stage; default ${first.steps})`), Flag.optional),
    batch: intAtLeast("batch", 1).pipe(Flag.withDescription(`Demonstrations per step (default ${first.batchSize})`), Flag.optional),
    lr: positiveNumber("lr").pipe(Flag.withDescription(`Peak learning rate (default ${first.lr})`), Flag.optional),
    mentalShare: numberAtLeast("mental-share", 0).pipe(
      Flag.filter((x) => x <= 1, () => "a share between 0 and 1"),
      Flag.withDescription("Share of demonstrations answered at once without a tool call (one stage, so with --steps; default 0)"),
      Flag.optional,
    ),
    config,
    set,
  },
  Effect.fn("turnwise.sft")(function*(flags) {
    const io = yield* CommandIo
    const overrides = yield* overridesOf(flags)
    const { run } = yield* attempt(async () => resolveRun(recipes.gtpo, defaultRunConfig, overrides))
    const outDir = Option.getOrElse(flags.out, () => defaultRunDir("sft"))
    if (Option.isNone(flags.steps) && Option.isNone(flags.batch) && Option.isNone(flags.lr)) {
      // The shipped schedule names each stage's data itself; a mix given here would be silently dropped.
      if (Option.isSome(flags.mentalShare)) {
        return yield* new CommandFailed({
          cause: new Error("--mental-share sets the data of one stage: give --steps (and --lr, --batch) with it, or leave it out to run the shipped schedule"),
        })
      }
      io.log(`warm-start checkpoint: ${yield* attempt(() => runWarmStart(run, outDir, io.log))}`)
      return
    }
    const result = yield* attempt(() =>
      runSft({
        run,
        outDir,
        steps: Option.getOrElse(flags.steps, () => first.steps),
        batchSize: Option.getOrElse(flags.batch, () => first.batchSize),
        lr: Option.getOrElse(flags.lr, () => first.lr),
        mix: { ...defaultDemonstrationMix, mentalShare: Option.getOrElse(flags.mentalShare, () => 0) },
        log: io.log,
      })
    )
    io.log(
      `warm-start checkpoint: ${result.checkpoint} (loss ${fixed3(result.finalLoss)}, token accuracy ${fixed3(result.finalAccuracy)}, ${
        result.seconds.toFixed(0)
      } s)`,
    )
  }),
).pipe(
  Command.withDescription(
    "Warm-start a policy on demonstrations of the tool protocol; without --steps, --batch or --lr, the schedule of the shipped warm start",
  ),
  withUsage({ synopsis: "turnwise sft [--out dir] [--steps N --lr x] [--batch N] [--set k=v]...   (no --steps: the shipped warm start's schedule)" }),
)
