/**
 * `turnwise export --checkpoint dir --out dir`: write a checkpoint in the Hugging Face
 * layout (config.json, model.safetensors, tokenizer files).
 *
 * @category constructors
 */
import { Effect } from "effect"
import { Command, Flag } from "effect/cli"
import { recipes } from "@turnwise/recipes"
import { CommandIo } from "../io.js"
import { runExport } from "../run/export.js"
import { defaultRunConfig, resolveRun } from "../run/resolve.js"
import { attempt } from "./CommandFailed.js"
import { checkpoint, config, describedWithDefault, overridesOf, set } from "./flags.js"
import { withUsage } from "./usage.js"

/** The `export` command. */
export const exportCommand = Command.make(
  "export",
  {
    checkpoint,
    out: Flag.String("out").pipe(Flag.withMetavar("dir"), Flag.withDescription("The model directory to write")),
    dtype: Flag.Literals("dtype", ["float32", "bfloat16"]).pipe(describedWithDefault("Weight type of model.safetensors", "float32")),
    config,
    set,
  },
  Effect.fn("turnwise.export")(function*(flags) {
    const io = yield* CommandIo
    const overrides = yield* overridesOf(flags)
    const result = yield* attempt(async () => {
      const base = { ...defaultRunConfig, model: { ...defaultRunConfig.model, init: flags.checkpoint } }
      const { run } = resolveRun(recipes.gtpo, base, overrides)
      return runExport({ run, outDir: flags.out, dtype: flags.dtype, log: io.log })
    })
    io.log(`exported ${flags.checkpoint} to ${flags.out}: ${result.files.join(", ")}`)
  }),
).pipe(
  Command.withDescription("Write a checkpoint as a Hugging Face model directory; --set model.path=src for one trained from a pretrained model"),
  withUsage({
    synopsis: "turnwise export --checkpoint dir --out dir [--set model.path=src] [--dtype float32|bfloat16]   (Hugging Face layout)",
    needs: "export needs --checkpoint DIR and --out DIR",
  }),
)
