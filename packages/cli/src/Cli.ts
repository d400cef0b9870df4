/**
 * The `turnwise` command tree.
 *
 *   turnwise start                                  the main job (warm start, GTPO, before/after table)
 *   turnwise train <recipe> [--config f.json] [--set k=v]... [--out dir] [--resume]
 *   turnwise eval  --checkpoint dir [--config f.json] [--set k=v]...
 *   turnwise sample --checkpoint dir --question "12*34=?" [--n 4] [--temperature 1]
 *   turnwise report <run-dir>
 *   turnwise sft [--out dir] [--steps N] [--batch N] [--lr x] [--set k=v]...
 *   turnwise export --checkpoint dir --out dir [--set model.path=src] [--dtype float32|bfloat16]
 *   turnwise compare <recipeA> <recipeB> ... [--seeds N] [--out dir] [--set k=v]...
 *   turnwise exec --lang js|python [--timeout-ms N] [--memory-mb N] [--session]   (code on stdin)
 *
 * Each command validates everything it was given before it starts work, and a bad
 * value is reported with its path (e.g. `config error at train.steps: ...`).
 *
 * @category constructors
 */
import { promises as fs } from "node:fs"
import * as path from "node:path"
import { Effect } from "effect"
import { evaluate, rollout } from "@turnwise/dsl"
import type { RecipeType } from "@turnwise/dsl"
import { recipes } from "@turnwise/recipes"
import { runExecCommand } from "./exec-command.js"
import { exactAnswerTask } from "@turnwise/tasks"
import { checkpointModelPath, openRun, runWith } from "./run/context.js"
import type { RunContext } from "./run/context.js"
import type { RunConfig } from "./run/RunConfig.js"
import { runTask } from "./run/task-source.js"
import { writeRunReport } from "./run/report.js"
import { defaultRunConfig, loadRecipe, readConfigFile, resolveRun } from "./run/resolve.js"
import { runSft } from "./run/sft.js"
import { runExport } from "./run/export.js"
import { runStart, runWarmStart, warmStartStages } from "./run/start.js"
import { runTrain } from "./run/train.js"
import { runCompare } from "./run/compare.js"
import { intFlag, parseArgs, UsageError } from "./args.js"
import type { ParsedArgs } from "./args.js"
import type { Io } from "./io.js"


const timestamp = (): string => new Date().toISOString().replace(/[-:]/g, "").replace(/\..*/, "").replace("T", "-")

const configOverrides = async (args: ParsedArgs) => ({
  file: args.values.config === undefined ? {} : await readConfigFile(args.values.config),
  sets: args.repeated.set ?? [],
})

/** Open a run whose outputs are thrown away (eval, sample), run `use`, and clean up. */
const withScratchRun = async <A>(
  kind: string,
  run: RunConfig,
  recipe: RecipeType,
  log: (line: string) => void,
  use: (context: RunContext) => Promise<A>,
): Promise<A> => {
  const outDir = path.join(".turnwise-tmp", `${kind}-${process.pid}`)
  const context = await openRun({ run, optimizer: recipe.optimizer, outDir, totalSteps: 1, log })
  try {
    return await use(context)
  } finally {
    context.runtime.dispose()
    await fs.rm(outDir, { recursive: true, force: true })
  }
}

const fmt = (x: number | undefined): string => (x === undefined || !Number.isFinite(x) ? "-" : x.toFixed(3))

const commands: Record<string, { readonly usage: string; readonly run: (argv: ReadonlyArray<string>, io: Io) => Promise<number> }> = {
  start: {
    usage: "turnwise start [--set k=v]... [--out dir]",
    run: async (argv, io) => {
      const args = parseArgs(argv, { values: ["out"], repeated: ["set"] })
      await runStart({ sets: args.repeated.set ?? [], outDir: args.values.out ?? path.join("runs", `start-${timestamp()}`), io })
      return 0
    },
  },
  train: {
    usage: "turnwise train <recipe> [--config f.json] [--set k=v]... [--out dir] [--resume]",
    run: async (argv, io) => {
      const args = parseArgs(argv, { values: ["config", "out"], repeated: ["set"], booleans: ["resume"] })
      const ref = args.positionals[0]
      if (ref === undefined) throw new UsageError(`train needs a recipe: one of ${Object.keys(recipes).join(", ")}, a .ts module or a recipe.json`)
      const { recipe, run } = resolveRun(await loadRecipe(ref), defaultRunConfig, await configOverrides(args))
      const outDir = args.values.out ?? path.join("runs", `${recipe.name}-${timestamp()}`)
      io.log(`training ${recipe.name} for ${run.train.steps} steps; run directory ${outDir}`)
      const result = await runTrain({ recipe, run, outDir, resume: args.booleans.has("resume"), evalBefore: true, log: io.log, tty: io.tty })
      io.log(`held-out accuracy: before ${fmt(result.before["outcome/accuracy"])}, after ${fmt(result.after["outcome/accuracy"])}`)
      io.log(`report: ${result.reportPath}`)
      return 0
    },
  },
  eval: {
    usage: "turnwise eval --checkpoint dir [--config f.json] [--set k=v]... [--temperature T]",
    run: async (argv, io) => {
      const args = parseArgs(argv, { values: ["checkpoint", "config", "temperature"], repeated: ["set"] })
      if (args.values.checkpoint === undefined) throw new UsageError("eval needs --checkpoint DIR")
      const resolved = resolveRun(recipes.gtpo!, await fromCheckpoint(args.values.checkpoint), await configOverrides(args))
      const temperature = args.values.temperature === undefined ? 0 : Number(args.values.temperature)
      const { recipe, task, heldout } = runTask(resolved.run, resolved.recipe)
      const run = resolved.run
      const { metrics } = await withScratchRun("eval", run, recipe, io.log, (context) =>
        runWith(context, evaluate(recipe, task, heldout, { seed: run.train.seed, temperature })),
      )
      io.stdout(JSON.stringify({ checkpoint: args.values.checkpoint, problems: heldout.length, temperature, metrics }) + "\n")
      return 0
    },
  },
  sample: {
    usage: 'turnwise sample --checkpoint dir --question "12*34=?" [--n 4] [--temperature 1] [--seed 0]',
    run: async (argv, io) => {
      const args = parseArgs(argv, { values: ["checkpoint", "question", "n", "temperature", "seed"], repeated: ["set"] })
      if (args.values.checkpoint === undefined || args.values.question === undefined) throw new UsageError("sample needs --checkpoint DIR and --question TEXT")
      const { recipe, run } = resolveRun(recipes.gtpo!, await fromCheckpoint(args.values.checkpoint), { file: {}, sets: args.repeated.set ?? [] })
      const n = intFlag(args, "n", 1)
      const temperature = args.values.temperature === undefined ? 1 : Number(args.values.temperature)
      const problem = { id: "cli", question: args.values.question, answer: "", difficulty: 0, family: "cli", tags: {} }
      const batch = await withScratchRun("sample", run, recipe, () => {}, (context) =>
        runWith(
          context,
          Effect.scoped(rollout(exactAnswerTask("cli"), [problem], { ...recipe.rollout, groupSize: n, temperature }, { seed: intFlag(args, "seed", 0), step: 0 })),
        ),
      )
      for (const trajectory of batch.groups[0]!.trajectories) {
        io.stdout(`--- finish: ${trajectory.finishReason}\nQ: ${problem.question}\n${trajectory.turns.map((t) => t.text + t.feedbackText).join("")}\n`)
      }
      return 0
    },
  },
  report: {
    usage: "turnwise report <run-dir>",
    run: async (argv, io) => {
      const args = parseArgs(argv, {})
      const dir = args.positionals[0]
      if (dir === undefined) throw new UsageError("report needs a run directory")
      io.log(`report: ${await writeRunReport(dir)}`)
      return 0
    },
  },
  sft: {
    usage: "turnwise sft [--out dir] [--steps N --lr x] [--batch N] [--set k=v]...   (no --steps: the shipped warm start's schedule)",
    run: async (argv, io) => {
      const args = parseArgs(argv, { values: ["out", "steps", "batch", "lr", "config"], repeated: ["set"] })
      const { run } = resolveRun(recipes.gtpo!, defaultRunConfig, await configOverrides(args))
      const outDir = args.values.out ?? path.join("runs", `sft-${timestamp()}`)
      if (args.values.steps === undefined && args.values.lr === undefined && args.values.batch === undefined) {
        io.log(`warm-start checkpoint: ${await runWarmStart(run, outDir, io.log)}`)
        return 0
      }
      const first = warmStartStages[0]
      const result = await runSft({
        run,
        outDir,
        steps: intFlag(args, "steps", first.steps),
        batchSize: intFlag(args, "batch", first.batchSize),
        lr: args.values.lr === undefined ? first.lr : Number(args.values.lr),
        log: io.log,
      })
      io.log(`warm-start checkpoint: ${result.checkpoint} (loss ${fmt(result.finalLoss)}, token accuracy ${fmt(result.finalAccuracy)}, ${result.seconds.toFixed(0)} s)`)
      return 0
    },
  },
  export: {
    usage: "turnwise export --checkpoint dir --out dir [--set model.path=src] [--dtype float32|bfloat16]   (Hugging Face layout)",
    run: async (argv, io) => {
      const args = parseArgs(argv, { values: ["checkpoint", "out", "dtype", "config"], repeated: ["set"] })
      if (args.values.checkpoint === undefined || args.values.out === undefined) throw new UsageError("export needs --checkpoint DIR and --out DIR")
      const dtype = args.values.dtype ?? "float32"
      if (dtype !== "float32" && dtype !== "bfloat16") throw new UsageError(`--dtype must be float32 or bfloat16, got "${dtype}"`)
      const { run } = resolveRun(recipes.gtpo!, { ...defaultRunConfig, model: { ...defaultRunConfig.model, init: args.values.checkpoint } }, await configOverrides(args))
      const result = await runExport({ run, outDir: args.values.out, dtype, log: io.log })
      io.log(`exported ${args.values.checkpoint} to ${args.values.out}: ${result.files.join(", ")}`)
      return 0
    },
  },
  compare: {
    usage: "turnwise compare <recipeA> <recipeB> ... [--seeds N] [--out dir] [--config f.json] [--set k=v]...",
    run: async (argv, io) => {
      const args = parseArgs(argv, { values: ["seeds", "out", "config"], repeated: ["set"] })
      if (args.positionals.length < 2) throw new UsageError("compare needs at least two recipes")
      const overrides = await configOverrides(args)
      const resolved = await Promise.all(args.positionals.map(async (ref) => resolveRun(await loadRecipe(ref), defaultRunConfig, overrides)))
      const outDir = args.values.out ?? path.join("runs", `compare-${timestamp()}`)
      await runCompare({ entries: resolved, seeds: intFlag(args, "seeds", 3), outDir, io })
      return 0
    },
  },
  exec: {
    usage: "turnwise exec --lang js|python [--timeout-ms N] [--memory-mb N] [--session]",
    run: async (argv, io) => {
      const result = await runExecCommand(argv, await io.readStdin())
      io.stdout(result.stdout)
      return result.exitCode
    },
  },
}

const usage = (): string => `usage:\n${Object.values(commands).map((c) => `  ${c.usage}`).join("\n")}\n`

/**
 * Run the CLI; returns the exit code. Errors are printed as one readable line.
 *
 * @example
 * process.exitCode = await main(process.argv.slice(2), nodeIo)
 */
/**
 * Run defaults for a command that reads a checkpoint (eval, sample): `model.init` is the
 * checkpoint, and `model.path` the pretrained directory its run recorded, if any, so
 * the same model and tokenizer are rebuilt without repeating `--set model.path`.
 */
const fromCheckpoint = async (checkpoint: string): Promise<RunConfig> => ({
  ...defaultRunConfig,
  model: { ...defaultRunConfig.model, init: checkpoint, path: await checkpointModelPath(checkpoint).catch(() => "") },
})

export const main = async (argv: ReadonlyArray<string>, io: Io): Promise<number> => {
  const [name, ...rest] = argv
  if (name === undefined || name === "--help" || name === "help") {
    io.stdout(usage())
    return name === undefined ? 2 : 0
  }
  const command = commands[name]
  if (command === undefined) {
    io.log(`unknown command "${name}"\n${usage()}`)
    return 2
  }
  try {
    return await command.run(rest, io)
  } catch (error) {
    if (error instanceof UsageError) {
      io.log(`${error.message}\nusage: ${command.usage}`)
      return 2
    }
    io.log(`error: ${describeError(error)}`)
    return 1
  }
}

/** The readable message of anything thrown, including Effect failures. */
export const describeError = (error: unknown): string => {
  if (error instanceof Error) {
    const cause = (error as { readonly cause?: unknown }).cause
    const message = error.message
    if ((message === "" || /An error has occurred/.test(message)) && cause !== undefined) return describeError(cause)
    return message
  }
  return String(error)
}
