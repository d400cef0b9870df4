/**
 * `turnwise serve`: an OpenAI-compatible endpoint backed by the policy being trained,
 * recording token-exact episodes (docs/SERVE.md). Runs until interrupted.
 *
 * @category constructors
 */
import { Effect } from "effect"
import { Command, Flag } from "effect/cli"
import { CommandIo } from "../io.js"
import { runServe, serveOptionsFromSets } from "../serve/index.js"
import { attempt } from "./CommandFailed.js"
import { overridesOf, set } from "./flags.js"
import { withUsage } from "./usage.js"

const config = Flag.String("config").pipe(
  Flag.withMetavar("file.json"),
  Flag.withDescription("A JSON object of serve settings (the keys under SETTINGS); --set overrides it"),
  Flag.optional,
)

/** The `serve` command. */
export const serve = Command.make(
  "serve",
  { set, config },
  Effect.fn("turnwise.serve")(function*(flags) {
    const io = yield* CommandIo
    const { file, sets } = yield* overridesOf(flags)
    const options = yield* attempt(async () => serveOptionsFromSets(sets, file))
    // Resolves when the process is interrupted (SIGINT or SIGTERM), after the server has closed.
    yield* attempt(() => runServe(options, io))
  }),
).pipe(
  Command.withDescription("Serve the policy as an OpenAI-compatible endpoint (chat completions, streaming, tools) that records episodes for training"),
  withUsage({ synopsis: "turnwise serve [--config f.json] [--set k=v]..." }),
)
