/**
 * `turnwise report <run-dir>`: rebuild a run's report.html from its files.
 *
 * @category constructors
 */
import { Effect } from "effect"
import { Argument, Command } from "effect/cli"
import { CommandIo } from "../io.js"
import { writeRunReport } from "../run/report.js"
import { attempt } from "./CommandFailed.js"
import { withUsage } from "./usage.js"

/** The `report` command. */
export const report = Command.make(
  "report",
  { dir: Argument.String("run-dir").pipe(Argument.withDescription("A run directory (holds metrics.jsonl)")) },
  Effect.fn("turnwise.report")(function*({ dir }) {
    const io = yield* CommandIo
    io.log(`report: ${yield* attempt(() => writeRunReport(dir))}`)
  }),
).pipe(
  Command.withDescription("Rebuild report.html of a run directory from its metrics and results"),
  withUsage({ synopsis: "turnwise report <run-dir>", needs: "report needs a run directory" }),
)
