/**
 * Checks of a run's inputs that need the file system or the loaded data: the run
 * directory (a new run must not overwrite one; `--resume` needs one), and the
 * problems a data set leaves to train on. They run before the run directory is
 * created, so a rejected run leaves nothing behind.
 *
 * @category constructors
 */
import { promises as fs } from "node:fs"
import * as path from "node:path"
import { Data } from "effect"
import type { RunConfig } from "./RunConfig.js"

/** A run's input (directory, data set) cannot be used; names it and the problem. */
export class RunInputError extends Data.TaggedError("RunInputError")<{ readonly path: string; readonly problem: string }> {
  override get message(): string {
    return `${this.path}: ${this.problem}`
  }
}

const statOf = (p: string) => fs.stat(p).catch((error: NodeJS.ErrnoException) => (error.code === "ENOENT" ? null : Promise.reject(error)))

/**
 * Check the run directory: with `resume`, it must be a run directory an earlier run
 * made (it has config.json); without, it must not hold checkpoints already.
 *
 * @example
 * await checkRunDirectory("runs/g1", { resume: true }) // RunInputError when runs/g1 does not exist
 */
export const checkRunDirectory = async (outDir: string, options: { readonly resume: boolean }): Promise<void> => {
  const dir = await statOf(outDir)
  if (dir !== null && !dir.isDirectory()) throw new RunInputError({ path: outDir, problem: "is a file, not a run directory" })
  if (options.resume) {
    if (dir === null) {
      throw new RunInputError({ path: outDir, problem: "does not exist, so there is no run to resume (leave out --resume to start a new run there)" })
    }
    if ((await statOf(path.join(outDir, "config.json"))) === null) {
      throw new RunInputError({ path: outDir, problem: "is not a run directory (it has no config.json), so there is no run to resume" })
    }
    return
  }
  const checkpoints = await fs.readdir(path.join(outDir, "checkpoints")).catch(() => [])
  if (checkpoints.length > 0) {
    throw new RunInputError({ path: outDir, problem: "already holds checkpoints; pass --resume to continue it or choose another --out" })
  }
}

/**
 * Check that the task leaves problems to train on and to evaluate (a data set's last
 * `evalCount` rows are held out, so a short file can leave none for training).
 *
 * @example
 * checkRunProblems(run, train, heldout)
 */
/** Settings that cannot go together: rollouts on runners need a preset model, and async mode needs runners. */
export const checkRunSettings = (run: RunConfig): void => {
  if (run.cluster.runners === 0) {
    if (run.cluster.mode === "async") {
      throw new RunInputError({ path: "cluster.mode", problem: "async mode overlaps rollouts on runners with training; set cluster.runners to 1 or more" })
    }
    if (run.cluster.listen !== "") {
      throw new RunInputError({
        path: "cluster.listen",
        problem: "the learner would wait for no runner; set cluster.runners to the number of runners that will join",
      })
    }
    return
  }
  if (run.model.path !== "") {
    throw new RunInputError({ path: "cluster.runners", problem: "rollouts on runners use preset models only; model.path is set (set cluster.runners=0)" })
  }
}

export const checkRunProblems = (run: RunConfig, train: ReadonlyArray<unknown>, heldout: ReadonlyArray<unknown>): void => {
  const source = run.task.jsonl === "" ? "the task generator" : run.task.jsonl
  const where = run.task.jsonl === "" ? "task" : run.task.jsonl
  if (heldout.length === 0) throw new RunInputError({ path: where, problem: `${source} gave no held-out problems` })
  if (train.length === 0 && run.train.steps > 0) {
    const rows = train.length + heldout.length
    throw new RunInputError({
      path: where,
      problem:
        `${rows} problem(s), all held out for evaluation (task.evalCount ${run.task.evalCount}), none left to train on; lower task.evalCount or add rows`,
    })
  }
}

const flatten = (value: unknown, prefix: string, out: Map<string, string>): Map<string, string> => {
  if (typeof value === "object" && value !== null && !Array.isArray(value)) {
    for (const [key, inner] of Object.entries(value)) flatten(inner, prefix === "" ? key : `${prefix}.${key}`, out)
  } else {
    out.set(prefix, JSON.stringify(value))
  }
  return out
}

/**
 * The settings a resumed run changes against what its directory recorded (config.json
 * and recipe.json), as `key old -> new` lines; [] when nothing changed or nothing was
 * recorded. A resume with other settings is allowed (a longer run, say), but it no
 * longer ends where the uninterrupted run would, so the run says so.
 *
 * @example
 * await resumedSettingChanges("runs/g1", { run, recipe: Recipe.encode(recipe) }) // ["train.steps 2 -> 3"]
 */
export const resumedSettingChanges = async (outDir: string, current: { readonly run: unknown; readonly recipe: unknown }): Promise<Array<string>> => {
  const read = (file: string) =>
    fs.readFile(path.join(outDir, file), "utf8").then(
      (text) => JSON.parse(text) as unknown,
      () => undefined,
    )
  const changes: Array<string> = []
  for (const [file, now] of [["config.json", current.run], ["recipe.json", current.recipe]] as const) {
    const before = await read(file).catch(() => undefined)
    if (before === undefined) continue
    const old = flatten(before, "", new Map())
    const next = flatten(JSON.parse(JSON.stringify(now)) as unknown, "", new Map())
    for (const key of new Set([...old.keys(), ...next.keys()])) {
      if (old.get(key) !== next.get(key)) changes.push(`${key} ${old.get(key) ?? "(unset)"} -> ${next.get(key) ?? "(unset)"}`)
    }
  }
  return changes
}
