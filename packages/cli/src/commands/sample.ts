/**
 * `turnwise sample --checkpoint dir --question "12*34=?"`: n transcripts of a
 * checkpoint answering one question in the tool protocol.
 *
 * @category constructors
 */
import { Effect } from "effect"
import { Command, Flag } from "effect/cli"
import { rollout } from "@turnwise/dsl"
import { recipes } from "@turnwise/recipes"
import { exactAnswerTask } from "@turnwise/tasks"
import { CommandIo } from "../io.js"
import { runWith } from "../run/context.js"
import { resolveRun } from "../run/resolve.js"
import { attempt } from "./CommandFailed.js"
import { checkpoint, describedWithDefault, intAtLeast, numberAtLeast, set } from "./flags.js"
import { fromCheckpoint, withScratchRun } from "./scratch-run.js"
import { withUsage } from "./usage.js"

/** The `sample` command. */
export const sample = Command.make(
  "sample",
  {
    checkpoint,
    question: Flag.String("question").pipe(Flag.withMetavar("text"), Flag.withDescription("The question, as the task writes them (\"12*34=?\")")),
    n: intAtLeast("n", 1).pipe(describedWithDefault("How many transcripts", 1)),
    temperature: numberAtLeast("temperature", 0).pipe(describedWithDefault("Sampling temperature; 0 is greedy", 1)),
    seed: Flag.Int("seed").pipe(describedWithDefault("Sampling seed", 0)),
    set,
  },
  Effect.fn("turnwise.sample")(function*(flags) {
    const io = yield* CommandIo
    const problem = { id: "cli", question: flags.question, answer: "", difficulty: 0, family: "cli", tags: {} }
    const batch = yield* attempt(async () => {
      const { recipe, run } = resolveRun(recipes.gtpo, await fromCheckpoint(flags.checkpoint), { file: {}, sets: flags.set })
      const settings = { ...recipe.rollout, groupSize: flags.n, temperature: flags.temperature }
      return withScratchRun(
        "sample",
        run,
        recipe,
        () => {},
        (context) => runWith(context, Effect.scoped(rollout(exactAnswerTask("cli"), [problem], settings, { seed: flags.seed, step: 0 }))),
      )
    })
    for (const trajectory of batch.groups[0]!.trajectories) {
      io.stdout(`--- finish: ${trajectory.finishReason}\nQ: ${problem.question}\n${trajectory.turns.map((t) => t.text + t.feedbackText).join("")}\n`)
    }
  }),
).pipe(
  Command.withDescription("Print n transcripts of a checkpoint answering one question, tool calls and their output included"),
  withUsage({
    synopsis: "turnwise sample --checkpoint dir --question \"12*34=?\" [--n 4] [--temperature 1] [--seed 0] [--set k=v]...",
    needs: "sample needs --checkpoint DIR and --question TEXT",
  }),
)
