/**
 * `turnwise start` (also `npm start`): the main job. Warm start, GTPO on the built-in
 * task, the before/after table and the report.
 *
 * @category constructors
 */
import { Effect, Option } from "effect"
import { Command } from "effect/cli"
import { CommandIo } from "../io.js"
import { runStart } from "../run/start.js"
import { attempt } from "./CommandFailed.js"
import { out, set } from "./flags.js"
import { defaultRunDir } from "./format.js"
import { withUsage } from "./usage.js"

/** The `start` command. */
export const start = Command.make(
  "start",
  { set, out: out("The run directory (default runs/start-<time>)") },
  Effect.fn("turnwise.start")(function*(flags) {
    const io = yield* CommandIo
    yield* attempt(() => runStart({ sets: flags.set, outDir: Option.getOrElse(flags.out, () => defaultRunDir("start")), io }))
  }),
).pipe(
  Command.withDescription("The main job: warm start, GTPO on the built-in task, held-out accuracy before and after, and the report"),
  withUsage({ synopsis: "turnwise start [--set k=v]... [--out dir]" }),
)
